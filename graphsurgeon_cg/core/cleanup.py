"""Cleanup and topological sort after a pass: dead nodes dropped, nodes ordered after their
producers, new nodes named. Linear versions for graphs without If/Loop bodies or functions;
onnx-graphsurgeon's own cleanup and sort for those that have them (a body may read outer
tensors that a walk of the outer graph cannot see)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import onnx_graphsurgeon as gs

from .errors import PassFailed


def clean_and_sort(graph: gs.Graph, pass_name: str) -> None:
    """Drop what feeds no output and sort, the way that fits the graph."""
    if has_bodies(graph) or graph.functions:
        graph.cleanup(remove_unused_graph_inputs=False)
        if not _is_sorted(graph):
            _toposort(graph, pass_name)
    else:  # the same, in time linear in the graph (its versions are quadratic on shared weights)
        _drop_dead_nodes(graph)
        _sort_depth_first(graph, pass_name)


def has_bodies(graph: gs.Graph) -> bool:
    """Whether some node has an If/Loop/Scan body."""
    return any(isinstance(v, gs.Graph) for node in graph.nodes for v in node.attrs.values())


def _drop_dead_nodes(graph: gs.Graph) -> None:
    """What onnx-graphsurgeon's cleanup does to a graph without subgraphs or functions: remove
    the producers of graph inputs and every node that feeds no graph output, all at once. Its
    cleanup removes a dead node from each input's consumer list one by one, comparing nodes by
    value: with a weight shared by n nodes (one ``pads`` initializer for every Pad) that is
    quadratic. Here consumer lists are filtered by identity in one go."""
    for tensor in graph.inputs:
        if tensor.inputs:
            tensor.inputs.clear()
    live: set[int] = set()
    seen: set[int] = set()
    stack = list(graph.outputs)
    while stack:  # walk back from the outputs through producers (the order may not be sorted yet)
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        for producer in tensor.inputs:
            if id(producer) not in live:
                live.add(id(producer))
                stack.extend(producer.inputs)
    dead = [n for n in graph.nodes if id(n) not in live]
    if not dead:
        return
    dead_ids = {id(n) for n in dead}
    touched = {id(t): t for node in dead for t in list(node.inputs) + list(node.outputs)}
    for tensor in touched.values():  # plain list methods: no per-element synchronisation
        kept_consumers = [n for n in tensor.outputs if id(n) not in dead_ids]
        kept_producers = [n for n in tensor.inputs if id(n) not in dead_ids]
        list.clear(tensor.outputs)
        list.extend(tensor.outputs, kept_consumers)
        list.clear(tensor.inputs)
        list.extend(tensor.inputs, kept_producers)
    for node in dead:
        list.clear(node.inputs)
        list.clear(node.outputs)
    graph.nodes = [n for n in graph.nodes if id(n) not in dead_ids]


def _sort_depth_first(graph: gs.Graph, pass_name: str) -> None:
    """Sort the nodes topologically, each after its producers, keeping the current order where
    it already is one (a sorted graph stays as it is; a node a pass appended moves up to just
    before its first consumer). Linear; onnx-graphsurgeon's sort is not on long chains."""
    producer = {id(t): node for node in graph.nodes for t in node.outputs}
    state: dict[int, int] = {}  # 1: on the stack, 2: placed
    order: list[gs.Node] = []
    for root in graph.nodes:
        if id(root) in state:
            continue
        state[id(root)] = 1
        stack = [(root, iter(root.inputs))]
        while stack:
            node, pending = stack[-1]
            for tensor in pending:
                source = producer.get(id(tensor))
                if source is None or state.get(id(source)) == 2:
                    continue
                if state.get(id(source)) == 1:
                    _toposort(graph, pass_name)  # a cycle: onnx-graphsurgeon fails, and names it
                    return
                state[id(source)] = 1
                stack.append((source, iter(source.inputs)))
                break
            else:
                stack.pop()
                state[id(node)] = 2
                order.append(node)
    graph.nodes = order


PROVENANCE_PREFIX = "cgsurg:"


def unique_node_name(name: str, op: str, pass_name: str, used: set[str]) -> str:
    """``name``, or ``PASS/OP_k`` when it is empty or taken; recorded in ``used``."""
    if not name or name in used:
        base = f"{pass_name}/{op}"
        k = 0
        while f"{base}_{k}" in used:
            k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def unused_name(base: str, names: set[str]) -> str:
    """``BASE__k`` not in ``names`` (k from the count, so one call is O(1) in a large graph); added to ``names``."""
    k = len(names)
    name = f"{base}__{k}"
    while name in names:
        k += 1
        name = f"{base}__{k}"
    names.add(name)
    return name


def tag_provenance(nodes: Sequence[Any], is_new: Callable[[Any], bool], touched: Sequence[Any], pass_name: str,
                   provenance: dict[str, str], op_of: Callable[[Any], str]) -> None:
    """Name the pass's new nodes (and unnamed ones it touched) uniquely and record which pass
    made or modified them; ``op_of`` reads a node's type (gs nodes and NodeProtos both)."""
    flags = [is_new(n) for n in nodes]
    used = {n.name for n, new in zip(nodes, flags) if not new}
    for node, new in zip(nodes, flags):
        if new:
            node.name = unique_node_name(node.name, op_of(node), pass_name, used)
            provenance[node.name] = f"{PROVENANCE_PREFIX}{pass_name}"
    for node in touched:
        if not node.name:
            node.name = unique_node_name(node.name, op_of(node), pass_name, used)
        provenance.setdefault(node.name, f"{PROVENANCE_PREFIX}{pass_name} (modified)")


def _is_sorted(graph: gs.Graph) -> bool:
    """Whether every node comes after the producers of its inputs (one pass, no sorting)."""
    produced: set[int] = set()
    for node in graph.nodes:
        if any(attr_is_graph for attr_is_graph in (isinstance(v, gs.Graph) for v in node.attrs.values())):
            return False  # subgraphs: leave the ordering to onnx-graphsurgeon
        for tensor in node.inputs:
            if tensor.inputs and id(tensor) not in produced:
                return False
        produced.update(id(t) for t in node.outputs)
    return True


def _toposort(graph: gs.Graph, pass_name: str) -> None:
    try:
        graph.toposort()
    except Exception:
        import networkx as nx

        cycle = nx.find_cycle(_node_digraph(graph))
        names = " -> ".join(a for a, _ in cycle)
        raise PassFailed(pass_name, f"the graph has a cycle: {names}") from None


def _node_digraph(graph: gs.Graph):
    import networkx as nx  # only on this error path: it costs a tenth of start-up

    g = nx.DiGraph()
    for node in graph.nodes:
        for out in node.outputs:
            for consumer in out.outputs:
                g.add_edge(node.name or node.op, consumer.name or consumer.op)
    return g
