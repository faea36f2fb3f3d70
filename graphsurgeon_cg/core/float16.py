"""A float32 model in float16 as a float16 engine compiles it: onnxruntime's float16 converter
(every op in float16 unless kept in float32 by type or by node name, float32 inputs and
outputs kept), with a kept region left float32 throughout. Shared by the ``fp16`` pass and
the float16 simulator (``check.fp16sim``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import onnx
from onnx import TensorProto

FP16_MAX = 65504.0
HALF = TensorProto.FLOAT16
FLOAT = TensorProto.FLOAT


def as_float16(model: onnx.ModelProto, block_ops: Iterable[str] = (),
               keep_nodes: Iterable[str] = ()) -> onnx.ModelProto:
    """``model`` in float16 as an engine compiles it: every op but those of type ``block_ops``
    and the nodes named in ``keep_nodes``, float32 inputs and outputs kept."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(block_ops),
                                        node_block_list=list(keep_nodes))
    join_float32_regions(half)
    _sort(half.graph)
    return half


def _sort(graph: onnx.GraphProto) -> None:
    """Nodes in topological order: the converter appends its Casts at the end, which ONNX
    Runtime accepts and ``onnx.reference`` (and a reader) does not. Hand-written: onnx has no
    sort for a GraphProto, and a round trip through onnx-graphsurgeon would rename nothing but
    cost a copy of the weights."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    todo, done = list(graph.node), []
    while todo:
        rest = [n for n in todo if not all(i in ready for i in n.input)]
        now = [n for n in todo if all(i in ready for i in n.input)]
        if not now:  # a cycle or an input from an outer graph: leave the rest in their order
            now, rest = rest, []
        for n in now:
            done.append(n)
            ready.update(n.output)
        todo = rest
    copies = []
    for n in done:
        c = onnx.NodeProto()
        c.CopyFrom(n)
        copies.append(c)
    del graph.node[:]
    graph.node.extend(copies)


def join_float32_regions(model: onnx.ModelProto) -> None:
    """Between two nodes kept in float32 the converter goes through float16 (Cast to float16,
    Cast back: it wraps each kept node alone), which overflows just as computing in float16
    would: such round trips are removed, so a kept region stays float32 throughout."""
    graph = model.graph
    made = {o: n for n in graph.node for o in n.output}

    def cast_to(node: onnx.NodeProto | None) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node and node.op_type == "Cast" else None

    # Names an If/Loop body reads from this graph: left as they are (a body is not rewritten here)
    outputs = {o.name for o in graph.output} | _read_in_bodies(graph)
    replace = {}
    for node in graph.node:
        first = made.get(node.input[0]) if node.input else None
        if first is not None and cast_to(node) == FLOAT and cast_to(first) == HALF and node.output[0] not in outputs:
            replace[node.output[0]] = first.input[0]
    if not replace:
        return
    for node in graph.node:
        node.input[:] = [replace.get(i, i) for i in node.input]
    used = {i for n in graph.node for i in n.input} | outputs
    while True:  # drop the casts nothing reads any more
        dead = [n for n in graph.node if n.op_type == "Cast" and not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        used = {i for n in graph.node for i in n.input} | outputs


def _read_in_bodies(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name that a node inside an If/Loop/Scan body of ``graph`` reads, at any depth."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                names.update(i for n in body.node for i in n.input)
                names.update(o.name for o in body.output)
                names |= _read_in_bodies(body)
    return names
