"""A thin editable view of a ``ModelProto`` for the fast path of built-in structural passes.

At 100k nodes onnx-graphsurgeon's import, export and per-rewrite objects cost most of a run
(about 27 µs a node against 2 µs for the protobuf itself, issue 19). A pass that also has a
``run_proto(graph, ctx)`` can run on this view instead: the nodes as a list of ``NodeProto``
(the caller's own until a pass edits one: copy on write), a name -> consumers index, the
producer of every tensor, initializers, and the types declared in the model. It mirrors what
onnx-graphsurgeon shows a pass (an initializer is a constant, a ``Constant`` node's output is
not; declared shapes plus those the manager lent from inference), so that the fast path writes
the same model as the onnx-graphsurgeon path; ``tests/test_fastpath.py`` holds both to that.
Plugin authors keep seeing onnx-graphsurgeon: this view is for passes shipped with cgsurg.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .cleanup import unused_name
from .errors import PassFailed
from .graphutil import PadInfo, pad_info

Shape = list  # of int, str or None, as onnx-graphsurgeon gives it


def _declared_type(info: onnx.ValueInfoProto) -> tuple[int | None, Shape | None]:
    tt = info.type.tensor_type
    shape = None
    if tt.HasField("shape"):
        shape = [d.dim_param if d.HasField("dim_param") else d.dim_value if d.HasField("dim_value") else None
                 for d in tt.shape.dim]
    return (tt.elem_type or None), shape


def _kept(symbol: str, declared: set[str]) -> bool:  # as core.shapes: inference's own unk__N symbols go
    return bool(symbol) and (symbol in declared or not symbol.startswith("unk__"))


class ProtoGraph:
    def __init__(self, model: onnx.ModelProto, opset: int):
        g = model.graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.inputs = [i.name for i in g.input]
        self.outputs = [o.name for o in g.output]
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        self.declared: dict[str, tuple[int | None, Shape | None]] = {}
        for info in [*g.value_info, *g.input, *g.output]:
            self.declared[info.name] = _declared_type(info)
        self.inferred: dict[str, tuple[int | None, Shape | None]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        # name -> {id(node): [node, how many of its inputs read it]}: a weight shared by every
        # Pad must not cost a scan of all its readers per edit.
        self.consumers: dict[str, dict[int, list]] = {}
        for node in self.nodes:
            self._index(node)
        self._own: set[int] = set()  # nodes this view may edit (copies or its own)
        self._latest: dict[int, tuple[onnx.NodeProto, onnx.NodeProto]] = {}  # a node -> its copy
        self._pos: dict[int, int] | None = None  # a node -> its index in ``nodes``
        self.new: set[int] = set()  # nodes created by the current pass
        self._edited: set[int] = set()  # nodes the current pass wrote
        self.touched: list[onnx.NodeProto] = []
        self._names: set[str] | None = None
        self._constants: dict = {}

    # --- what a pass reads -------------------------------------------------------------------
    def is_initializer(self, name: str) -> bool:
        return name in self.initializers

    def dtype(self, name: str) -> int | None:
        if name in self.initializers:
            return self.initializers[name].data_type
        declared = self.declared.get(name, (None, None))[0]
        return declared if declared is not None else self.inferred.get(name, (None, None))[0]

    def shape(self, name: str) -> Shape | None:
        if name in self.initializers:
            return list(self.initializers[name].dims)
        declared = self.declared.get(name, (None, None))[1]
        return declared if declared is not None else self.inferred.get(name, (None, None))[1]

    def const_value(self, name: str) -> np.ndarray | None:
        """As ``graphutil.const_value``: an initializer, or the ``value`` of a Constant node."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    return numpy_helper.to_array(attr.t)
        return None

    def read_pad(self, node: onnx.NodeProto) -> PadInfo:
        """``graphutil.read_pad`` on a ``NodeProto``."""
        attrs = {a.name: a for a in node.attribute}
        shape = self.shape(node.input[0])

        def operand(k: int) -> tuple[bool, np.ndarray | None]:
            name = present(node, k)
            return bool(name), self.const_value(name) if name else None

        return pad_info(attrs["mode"].s.decode() if "mode" in attrs else "constant",
                        len(shape) if shape is not None else None,
                        list(attrs["pads"].ints) if "pads" in attrs else None,
                        float(attrs["value"].f) if "value" in attrs else 0.0, operand)

    # --- what a pass writes ------------------------------------------------------------------
    def writable(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """``node`` itself if this view owns it, else a copy that replaces it everywhere."""
        if id(node) in self._own:
            self._edited.add(id(node))
            return node
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        self._own.add(id(copy))
        self._latest[id(node)] = (node, copy)  # the original kept alive: its id stays unique
        if self._pos is None:
            self._pos = {id(n): k for k, n in enumerate(self.nodes)}
        k = self._pos.pop(id(node))
        self.nodes[k] = copy
        self._pos[id(copy)] = k
        for name in set(node.input):
            users = self.consumers[name]
            users[id(copy)] = [copy, users.pop(id(node))[1]]
        for name in node.output:
            if self.producer.get(name) is node:
                self.producer[name] = copy
        self._edited.add(id(copy))
        return copy

    def latest(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """The node as it is now (a pass that iterates a snapshot sees earlier edits, as in gs)."""
        while id(node) in self._latest:
            node = self._latest[id(node)][1]
        return node

    def set_input(self, node: onnx.NodeProto, index: int, name: str) -> onnx.NodeProto:
        node = self.writable(node)
        self._unindex(node)
        node.input[index] = name
        self._index(node)
        return node

    def clear_outputs(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """Leave ``node`` dead (cleanup removes it), as ``node.outputs.clear()`` does in gs."""
        node = self.writable(node)
        self._unindex(node)
        del node.output[:]
        self._index(node)
        return node

    def add_node(self, op: str, inputs: list[str], outputs: list[str], name: str, **attrs: Any) -> onnx.NodeProto:
        node = helper.make_node(op, inputs, outputs, name=name, **attrs)
        self._own.add(id(node))
        self.new.add(id(node))
        if self._pos is not None:
            self._pos[id(node)] = len(self.nodes)
        self.nodes.append(node)
        self._index(node)
        return node

    def declare(self, name: str, dtype: int | None, shape: Shape | None = None) -> None:
        self.declared[name] = (dtype, shape)

    def mark(self, node: onnx.NodeProto) -> None:
        self.touched.append(node)

    def fresh_name(self, base: str) -> str:
        """``PassContext.fresh_name``: the same names in the same order of calls."""
        if self._names is None:
            self._names = self.tensor_names() | {n.name for n in self.nodes}
        return unused_name(base, self._names)

    def constant(self, base: str, values: Any, dtype: Any = None) -> str:
        """``PassContext.constant``: one initializer per base, dtype and values within a pass."""
        array = np.asarray(values, dtype=dtype)
        key = (base, array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh_name(base)
            self.initializers[name] = numpy_helper.from_array(array, name)
            self._constants[key] = name
        return str(self._constants[key])

    def tensor_names(self) -> set[str]:
        """The names ``gs.Graph.tensors()`` would list (empty names omitted)."""
        names = set(self.inputs) | set(self.outputs)
        for node in self.nodes:
            names.update(node.input)
            names.update(node.output)
        names.discard("")
        return names

    # --- the manager's side ------------------------------------------------------------------
    def begin_pass(self) -> None:
        self.new.clear()
        self._edited = set()  # ids of the nodes this pass wrote (their inputs may have changed)
        self.touched = []
        self._names = None
        self._constants = {}

    def op_counts(self) -> Counter:
        return Counter(n.op_type for n in self.nodes)

    def lend_inferred(self, verified: onnx.ModelProto) -> None:
        """``InferredShapes.fill``: types inference found for tensors that lack them."""
        self.inferred = {}
        names = self.tensor_names()
        missing = {n for n in names - set(self.initializers)
                   if self.declared.get(n, (None, None))[0] is None or self.declared.get(n, (None, None))[1] is None}
        if not missing:
            return
        declared = {d for n in names for d in (self.shape(n) or []) if isinstance(d, str)}
        for info in list(verified.graph.value_info) + list(verified.graph.output):
            if info.name not in missing or not info.type.HasField("tensor_type"):
                continue
            dtype, shape = self.declared.get(info.name, (None, None))
            tt = info.type.tensor_type
            lent_dtype = tt.elem_type if dtype is None and tt.elem_type else None
            lent_shape = None
            if shape is None and tt.HasField("shape"):
                lent_shape = [d.dim_value if d.HasField("dim_value") else d.dim_param if _kept(d.dim_param, declared)
                              else None for d in tt.shape.dim]
            self.inferred[info.name] = (lent_dtype, lent_shape)

    def clean_and_sort(self, pass_name: str) -> None:
        """``core.cleanup``'s linear cleanup and depth-first sort, by name instead of identity.
        Each node's inputs are read from the protobuf once (a repeated field is a proxy object:
        reading it per visit was a third of the fast path's time at 100k nodes)."""
        producer = self.producer
        inputs = {id(node): tuple(node.input) for node in self.nodes}
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
                stack.extend(inputs[id(node)])
        if len(live) != len(self.nodes):
            for node in self.nodes:
                if id(node) not in live:
                    self._unindex(node)
            self.nodes = [n for n in self.nodes if id(n) in live]
            self._pos = None
        if not self.new and self._still_sorted(inputs):
            return  # the depth-first sort keeps a sorted order as it is: nothing to do
        visiting: set[int] = set()
        placed: set[int] = set()
        order: list[onnx.NodeProto] = []
        for root in self.nodes:
            if id(root) in placed or id(root) in visiting:
                continue
            visiting.add(id(root))
            stack_nodes = [(root, iter(inputs[id(root)]))]
            while stack_nodes:
                node, pending = stack_nodes[-1]
                for name in pending:
                    source = producer.get(name)
                    if source is None or id(source) in placed:
                        continue
                    if id(source) in visiting:
                        raise PassFailed(pass_name, "the graph has a cycle")  # the gs path names it
                    visiting.add(id(source))
                    stack_nodes.append((source, iter(inputs[id(source)])))
                    break
                else:
                    stack_nodes.pop()
                    visiting.discard(id(node))
                    placed.add(id(node))
                    order.append(node)
        self.nodes = order
        self._pos = None

    def _still_sorted(self, inputs: dict[int, tuple[str, ...]]) -> bool:
        """Whether the order is still topological after a pass that added no node: only the
        nodes it wrote can read a tensor made after them."""
        edited = [k for k, node in enumerate(self.nodes) if id(node) in self._edited]
        if not edited:
            return True
        position = {id(node): k for k, node in enumerate(self.nodes)}
        for k in edited:
            for name in inputs[id(self.nodes[k])]:
                source = self.producer.get(name)
                if source is not None and position[id(source)] >= k:
                    return False
        return True

    def users(self, name: str) -> list[onnx.NodeProto]:
        """The nodes that read ``name``, once per input that reads it (as gs ``tensor.outputs``)."""
        return [node for node, count in self.consumers.get(name, {}).values() for _ in range(count)]

    def _index(self, node: onnx.NodeProto) -> None:
        for name in node.input:
            entry = self.consumers.setdefault(name, {}).setdefault(id(node), [node, 0])
            entry[1] += 1
        for name in node.output:
            self.producer[name] = node

    def _unindex(self, node: onnx.NodeProto) -> None:
        for name in node.input:
            users = self.consumers.get(name, {})
            entry = users.get(id(node))
            if entry is not None:
                entry[1] -= 1
                if not entry[1]:
                    del users[id(node)]
        for name in node.output:
            if self.producer.get(name) is node:
                del self.producer[name]

    def to_model(self, template: onnx.ModelProto) -> onnx.ModelProto:
        """What ``gs.export_onnx`` writes for this graph: used initializers and value_info in
        the order ``tensors()`` walks, declared types only."""
        g = template.graph
        model = onnx.ModelProto()
        model.ir_version = template.ir_version
        model.opset_import.extend(template.opset_import)
        graph = model.graph
        graph.name = g.name
        if g.doc_string:  # as onnx.helper.make_graph: an empty one is left unset
            graph.doc_string = g.doc_string
        graph.node.extend(self.nodes)
        for node in graph.node:
            if node.doc_string:  # onnx-graphsurgeon does not import node doc strings
                node.doc_string = ""
        graph.input.extend(self._info(n) for n in self.inputs)
        graph.output.extend(self._info(n) for n in self.outputs)
        ordered = list(dict.fromkeys([*self.inputs, *(t for n in self.nodes for t in [*n.input, *n.output]),
                                      *self.outputs]))
        graph.initializer.extend(self.initializers[n] for n in ordered if n in self.initializers)
        io = set(self.inputs) | set(self.outputs)
        graph.value_info.extend(self._info(n) for n in ordered
                                if n and n not in io and n not in self.initializers and
                                self.declared.get(n, (None, None)) != (None, None))
        return model

    def _info(self, name: str) -> onnx.ValueInfoProto:
        dtype, shape = self.declared.get(name, (None, None))
        if dtype is None:
            return helper.make_empty_tensor_value_info(name)
        return helper.make_tensor_value_info(name, dtype, shape)


def present(node: onnx.NodeProto, index: int) -> str | None:
    """Optional input ``index`` of ``node``, or None when absent or given as ''."""
    return node.input[index] if index < len(node.input) and node.input[index] else None


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default

