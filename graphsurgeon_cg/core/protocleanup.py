"""Cleanup and sort for ``core.protograph.ProtoGraph`` (the fast path's view): what
``core.cleanup`` does on onnx-graphsurgeon, by name instead of identity, and after the first
run only where a pass cut something."""

from __future__ import annotations

from collections import Counter

import onnx

from .errors import PassFailed


class ProtoCleanup:
    """The cleanup half of ``ProtoGraph`` (which sets these fields and keeps the index)."""

    nodes: list[onnx.NodeProto]
    outputs: list[str]
    producer: dict[str, onnx.NodeProto]
    consumers: dict[str, dict[int, list]]
    new: set[int]
    _io: dict[int, tuple[tuple[str, ...], tuple[str, ...]]]
    _edited: dict[int, onnx.NodeProto]
    _lost: list[str]
    _clean: bool
    _outputs_before: list[str]
    _pos: dict[int, int] | None
    _ops: Counter | None

    def _unindex(self, node: onnx.NodeProto) -> None:
        raise NotImplementedError

    def clean_and_sort(self, pass_name: str) -> None:
        """``core.cleanup``'s linear cleanup and depth-first sort, by name instead of identity.
        After the first, a cleanup looks only where the pass cut something (a graph that was
        all live loses exactly the nodes that no longer feed anything, found by counting
        readers back from the cut), and a pass that wrote no node leaves the graph as it was."""
        incremental = self._clean and self.outputs == self._outputs_before
        if incremental and not self._edited and not self._lost:
            return
        dead = self._newly_dead() if incremental else self._unreachable()
        if dead:
            for node in dead.values():
                self._unindex(node)
            self.nodes = [n for n in self.nodes if id(n) not in dead]
            self._pos = None
            self._ops = None
        self._clean = True
        if not self.new and self._still_sorted():
            return  # the depth-first sort keeps a sorted order as it is: nothing to do
        try:
            self.nodes = self._sorted(pass_name)
        except PassFailed:
            if not incremental:
                raise
            self._clean = False  # a cycle the pass left unreachable: the full cleanup drops it
            self.clean_and_sort(pass_name)
            return
        self._pos = None

    def _unreachable(self) -> dict[int, onnx.NodeProto]:
        producer, io = self.producer, self._io
        live: set[int] = set()
        seen: set[str] = set()
        stack = list(self.outputs)
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            node = producer.get(name)
            if node is not None and id(node) not in live:
                live.add(id(node))
                stack.extend(io[id(node)][0])
        return {id(n): n for n in self.nodes if id(n) not in live} if len(live) != len(self.nodes) else {}

    def _newly_dead(self) -> dict[int, onnx.NodeProto]:
        """The nodes that feed nothing any more, in a graph that was all live before this pass
        (a DAG: counting readers finds every node cut off, as the walk from the outputs would)."""
        outputs = set(self.outputs)
        consumers, producer, io = self.consumers, self.producer, self._io
        stack = [*self._edited.values(), *(producer[n] for n in self._lost if n in producer)]
        dead: dict[int, onnx.NodeProto] = {}
        while stack:
            node = stack.pop()
            if id(node) in dead or id(node) not in io:
                continue
            ins, outs = io[id(node)]
            if any(o in outputs or consumers.get(o) for o in outs):
                continue
            dead[id(node)] = node
            for name in ins:  # this node no longer reads them: their producers may be cut off too
                users = consumers.get(name)
                if users is not None:
                    users.pop(id(node), None)
                source = producer.get(name)
                if source is not None:
                    stack.append(source)
        return dead

    def _sorted(self, pass_name: str) -> list[onnx.NodeProto]:
        producer, io = self.producer, self._io
        visiting: set[int] = set()
        placed: set[int] = set()
        order: list[onnx.NodeProto] = []
        for root in self.nodes:
            if id(root) in placed or id(root) in visiting:
                continue
            for name in io[id(root)][0]:  # most nodes come after all their producers: placed at once
                source = producer.get(name)
                if source is not None and id(source) not in placed:
                    break
            else:
                placed.add(id(root))
                order.append(root)
                continue
            visiting.add(id(root))
            stack_nodes = [(root, iter(io[id(root)][0]))]
            while stack_nodes:
                node, pending = stack_nodes[-1]
                for name in pending:
                    source = producer.get(name)
                    if source is None or id(source) in placed:
                        continue
                    if id(source) in visiting:
                        raise PassFailed(pass_name, "the graph has a cycle")  # the gs path names it
                    visiting.add(id(source))
                    stack_nodes.append((source, iter(io[id(source)][0])))
                    break
                else:
                    stack_nodes.pop()
                    visiting.discard(id(node))
                    placed.add(id(node))
                    order.append(node)
        return order

    def _still_sorted(self) -> bool:
        """Whether the order is still topological after a pass that added no node: only the
        nodes it wrote can read a tensor made after them."""
        edited = self._edited
        if not edited:
            return True
        position = {id(node): k for k, node in enumerate(self.nodes)}
        for key in edited:
            k = position.get(key)
            if k is None:
                continue  # removed as dead
            for name in self._io[key][0]:
                source = self.producer.get(name)
                if source is not None and position[id(source)] >= k:
                    return False
        return True
