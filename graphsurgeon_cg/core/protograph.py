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
from itertools import chain
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .cleanup import unused_name
from .graphutil import PadInfo, pad_info
from .protocleanup import ProtoCleanup

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


class ProtoGraph(ProtoCleanup):
    def __init__(self, model: onnx.ModelProto, opset: int):
        g = model.graph
        self.opset = opset
        self.nodes: list[onnx.NodeProto] = list(g.node)
        self.inputs = [i.name for i in g.input]
        self.outputs = [o.name for o in g.output]
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in g.initializer}
        # As onnx-graphsurgeon imports them: repeated value infos merge (the first known dtype
        # and shape kept), then a graph input or output keeps the type its name has already
        # (an input that is also an output is declared by the input).
        self.declared: dict[str, tuple[int | None, Shape | None]] = {}
        for info in g.value_info:
            dtype, shape = _declared_type(info)
            if info.name in self.declared:
                known_dtype, known_shape = self.declared[info.name]
                dtype, shape = known_dtype or dtype, known_shape or shape
            self.declared[info.name] = (dtype, shape)
        for info in [*g.input, *g.output]:
            self.declared.setdefault(info.name, _declared_type(info))
        self.inferred: dict[str, tuple[int | None, Shape | None]] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        # name -> {id(node): [node, how many of its inputs read it]}: a weight shared by every
        # Pad must not cost a scan of all its readers per edit.
        self.consumers: dict[str, dict[int, list]] = {}
        # id(node) -> (inputs, outputs) as tuples: a repeated field is a proxy object, and
        # reading it again per scan was a third of the fast path's time at 100k nodes.
        self._io: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for node in self.nodes:
            self._index(node)
        self._own: set[int] = set()  # nodes this view may edit (copies or its own)
        self._latest: dict[int, tuple[onnx.NodeProto, onnx.NodeProto]] = {}  # a node -> its copy
        self._pos: dict[int, int] | None = None  # a node -> its index in ``nodes``
        self.new: set[int] = set()  # nodes created by the current pass
        self._edited: dict[int, onnx.NodeProto] = {}  # nodes the current pass wrote
        self._lost: list[str] = []  # tensors the current pass took a reader from
        self._clean = False  # every node was live and the order sorted after the last cleanup
        self._outputs_before: list[str] = []
        self._ops: Counter | None = None
        self._types: dict[int, onnx.TypeProto] = {}
        self._arrays: dict[str, np.ndarray] = {}  # initializers read (a view never changes one)
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
        if name in self.initializers:  # read once: a weight shared by every Pad is read per Pad
            array = self._arrays.get(name)
            if array is None:
                array = self._arrays[name] = numpy_helper.to_array(self.initializers[name])
                array.setflags(write=False)
            return array
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
        self._ops = None
        if id(node) in self._own:
            self._edited[id(node)] = node
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
        io = self._io[id(copy)] = self._io.pop(id(node))
        for name in set(io[0]):
            users = self.consumers[name]
            users[id(copy)] = [copy, users.pop(id(node))[1]]
        for name in io[1]:
            if self.producer.get(name) is node:
                self.producer[name] = copy
        self._edited[id(copy)] = copy
        return copy

    def latest(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """The node as it is now (a pass that iterates a snapshot sees earlier edits, as in gs)."""
        while id(node) in self._latest:
            node = self._latest[id(node)][1]
        return node

    def set_input(self, node: onnx.NodeProto, index: int, name: str) -> onnx.NodeProto:
        node = self.writable(node)
        self._unindex(node)
        self._lost.append(node.input[index])
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
        """A new node, as ``onnx.helper.make_node`` builds it (attributes sorted by name)."""
        node = onnx.NodeProto(op_type=op, input=inputs, output=outputs)
        if name:  # onnx's protos are proto2: an empty name set would be written out
            node.name = name
        if attrs:
            node.attribute.extend(helper.make_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
        self._own.add(id(node))
        self.new.add(id(node))
        self._edited[id(node)] = node
        self._ops = None
        if self._pos is not None:
            self._pos[id(node)] = len(self.nodes)
        self.nodes.append(node)
        self._index(node, tuple(inputs), tuple(outputs))
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
        quick = None
        # The same list of ints again: no array built (ints only: 0.0 == -0.0 as keys, not as bytes).
        if dtype is not None and type(values) is list and all(type(v) is int for v in values):
            quick = (base, dtype, tuple(values))
            if quick in self._constants:
                return str(self._constants[quick])
        array = np.asarray(values, dtype=dtype)
        key = (base, array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh_name(base)
            self.initializers[name] = numpy_helper.from_array(array, name)
            self._constants[key] = name
        if quick is not None:
            self._constants[quick] = self._constants[key]
        return str(self._constants[key])

    def tensor_names(self) -> set[str]:
        """The names ``gs.Graph.tensors()`` would list (empty names omitted): read from the
        index, which holds every node of ``nodes``."""
        names = set(self.inputs) | set(self.outputs) | self.producer.keys()
        names.update(name for name, users in self.consumers.items() if users)
        names.discard("")
        return names

    # --- the manager's side ------------------------------------------------------------------
    def begin_pass(self) -> None:
        self.new.clear()
        self._edited = {}
        self._lost = []
        self._outputs_before = list(self.outputs)
        self.touched = []
        self._names = None
        self._constants = {}

    def op_counts(self) -> Counter:
        """How many nodes of each type (counted again only after a node was written, added or removed)."""
        if self._ops is None:
            self._ops = Counter(n.op_type for n in self.nodes)
        return Counter(self._ops)

    def lend_inferred(self, verified: onnx.ModelProto) -> None:
        """``InferredShapes.fill``: types inference found for tensors that lack them, read from
        ``verified`` when a pass first asks (most tensors are never asked about)."""
        names = self.tensor_names()
        declared = {name: known for name, known in self.declared.items()
                    if name in names and name not in self.initializers}
        infos = {info.name: info for info in [*verified.graph.value_info, *verified.graph.output]}
        self.inferred = _Lent(infos, names - self.initializers.keys(), declared)

    def io(self, node: onnx.NodeProto) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """A node's (inputs, outputs) as they are now, without reading the protobuf again."""
        return self._io[id(node)]

    def users(self, name: str) -> list[onnx.NodeProto]:
        """The nodes that read ``name``, once per input that reads it (as gs ``tensor.outputs``)."""
        return [node for node, count in self.consumers.get(name, {}).values() for _ in range(count)]

    def _index(self, node: onnx.NodeProto, ins: tuple[str, ...] | None = None,
               outs: tuple[str, ...] | None = None) -> None:
        """Index ``node`` (its inputs and outputs when the caller has them as tuples already)."""
        key = id(node)
        if ins is None or outs is None:
            ins, outs = tuple(node.input), tuple(node.output)
        self._io[key] = (ins, outs)
        consumers = self.consumers
        for name in ins:
            users = consumers.get(name)
            if users is None:
                users = consumers[name] = {}
            entry = users.get(key)
            if entry is None:
                users[key] = [node, 1]
            else:
                entry[1] += 1
        for name in outs:
            self.producer[name] = node

    def _unindex(self, node: onnx.NodeProto) -> None:
        ins, outs = self._io.pop(id(node))
        for name in ins:
            users = self.consumers.get(name, {})
            entry = users.get(id(node))
            if entry is not None:
                entry[1] -= 1
                if not entry[1]:
                    del users[id(node)]
        for name in outs:
            if self.producer.get(name) is node:
                del self.producer[name]

    def to_model(self, template: onnx.ModelProto, provenance: dict[str, str] | None = None) -> onnx.ModelProto:
        """What ``gs.export_onnx`` writes for this graph: used initializers and value_info in
        the order ``tensors()`` walks, declared types only; with ``provenance`` (node name ->
        doc string), the doc strings ``roundtrip.carry_over`` would write."""
        g = template.graph
        model = onnx.ModelProto()
        model.ir_version = template.ir_version
        model.opset_import.extend(template.opset_import)
        graph = model.graph
        graph.name = g.name
        if g.doc_string:  # as onnx.helper.make_graph: an empty one is left unset
            graph.doc_string = g.doc_string
        # onnx-graphsurgeon does not import node doc strings; the copies are mended, never the
        # caller's nodes.
        docs = provenance or {}
        mend = [(k, want) for k, node in enumerate(self.nodes) if node.doc_string != (want := docs.get(node.name, ""))]
        graph.node.extend(self.nodes)
        for k, want in mend:
            graph.node[k].doc_string = want
        graph.input.extend(self._info(n) for n in self.inputs)
        graph.output.extend(self._info(n) for n in self.outputs)
        io = self._io
        ordered = list(dict.fromkeys(chain(self.inputs, chain.from_iterable(ins + outs for ins, outs in
                                                                            (io[id(n)] for n in self.nodes)),
                                           self.outputs)))
        graph.initializer.extend(self.initializers[n] for n in ordered if n in self.initializers)
        skip = set(self.inputs) | set(self.outputs) | self.initializers.keys()
        graph.value_info.extend(self._info(n) for n in ordered
                                if n and n not in skip and self.declared.get(n, (None, None)) != (None, None))
        return model

    def _info(self, name: str) -> onnx.ValueInfoProto:
        dtype, shape = self.declared.get(name, (None, None))
        if dtype is None:
            return helper.make_empty_tensor_value_info(name)
        if shape is None:  # what make_tensor_value_info builds, from one TypeProto per dtype
            typed = self._types.get(dtype)
            if typed is None:
                typed = self._types[dtype] = helper.make_tensor_type_proto(dtype, None)
            return onnx.ValueInfoProto(name=name, type=typed)
        return helper.make_tensor_value_info(name, dtype, shape)

    def order(self) -> dict[str, int]:
        """Tensor name -> the position of the node that makes it (for ``roundtrip.adopt_types``)."""
        io = self._io
        return {name: k for k, node in enumerate(self.nodes) for name in io[id(node)][1]}


class _Lent(dict):
    """What ``lend_inferred`` lends: name -> (dtype, shape) for a tensor whose declared type or
    shape was missing when lent, inference's own ``unk__N`` symbols dropped, worked out on
    first read. Empty (false) when nothing can be lent."""

    def __init__(self, infos: dict[str, onnx.ValueInfoProto], tensors: set[str],
                 declared: dict[str, tuple[int | None, Shape | None]]):
        super().__init__()
        self._infos = {name: info for name, info in infos.items() if name in tensors and
                       info.type.HasField("tensor_type") and None in declared.get(name, (None, None))}
        self._declared = declared
        self._symbols = {d for _, shape in declared.values() for d in shape or [] if isinstance(d, str)}

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self:
            info = self._infos.get(name)
            if info is None:
                return default
            dtype, shape = self._declared.get(name, (None, None))
            tt = info.type.tensor_type
            lent_shape = None
            if shape is None and tt.HasField("shape"):
                lent_shape = [d.dim_value if d.HasField("dim_value") else d.dim_param
                              if _kept(d.dim_param, self._symbols) else None for d in tt.shape.dim]
            self[name] = (tt.elem_type if dtype is None and tt.elem_type else None, lent_shape)
        return super().get(name, default)

    def __bool__(self) -> bool:
        return bool(self._infos)


def present(node: onnx.NodeProto, index: int) -> str | None:
    """Optional input ``index`` of ``node``, or None when absent or given as ''."""
    return node.input[index] if index < len(node.input) and node.input[index] else None


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default

