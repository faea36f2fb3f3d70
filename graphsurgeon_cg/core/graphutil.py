"""Small helpers that passes share: constant values, the operands of Pad, taking out a no-op
node, and exporting around outputs that are also inputs."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .base import nodes_with_graphs


def const_value(tensor: gs.Tensor | None) -> np.ndarray | None:
    """The value of a constant tensor (initializer or ``Constant`` node output), else None."""
    if tensor is None:
        return None
    if isinstance(tensor, gs.Constant):
        return np.asarray(tensor.values)
    if len(tensor.inputs) == 1 and tensor.inputs[0].op == "Constant":
        value = tensor.inputs[0].attrs.get("value")
        if isinstance(value, gs.Constant):
            return np.asarray(value.values)
    return None


def present(node: gs.Node, index: int) -> gs.Tensor | None:
    """Optional input ``index`` of ``node``, or None when absent or given as ''."""
    if index < len(node.inputs) and node.inputs[index].name:
        return node.inputs[index]
    return None


def export_without_aliased_outputs(graph: gs.Graph) -> tuple[onnx.ModelProto, dict[int, str]]:
    """``graph`` exported without the outputs that are graph inputs (their positions and names
    returned): tools that rebuild the whole graph (ORT's float16 converter, its quantiser) give
    such a name a second producer or find a cycle. ``graph`` itself is left as it was."""
    inputs = {id(t) for t in graph.inputs}
    aliased = {index: t.name for index, t in enumerate(graph.outputs) if id(t) in inputs}
    outputs = list(graph.outputs)
    graph.outputs = [t for index, t in enumerate(outputs) if index not in aliased]
    try:
        return gs.export_onnx(graph), aliased
    finally:
        graph.outputs = outputs


def restore_aliased_outputs(graph: gs.Graph, aliased: dict[int, str]) -> None:
    """Put back, at their positions, the outputs ``export_without_aliased_outputs`` set aside."""
    by_name = {t.name: t for t in graph.inputs}
    for index, name in sorted(aliased.items()):
        graph.outputs.insert(index, by_name[name])


def type_name(dtype) -> str:
    """An onnx-graphsurgeon element type for messages: a numpy dtype, an ONNX type code (types
    numpy lacks, like bfloat16), or None."""
    if dtype is None:
        return "untyped"
    if isinstance(dtype, int):
        return onnx.TensorProto.DataType.Name(dtype).lower()
    return np.dtype(dtype).name


def int64(ctx, base: str, values) -> gs.Constant:
    """An int64 initializer, as Slice/Pad/Resize operands need (shared within the pass)."""
    return ctx.constant(base, values, np.int64)


def append_node(ctx, op: str, inputs: list, dtype, attrs: dict | None = None, prefix: str = "") -> gs.Variable:
    """Add ``op(inputs)`` to the pass's graph with a freshly named output of ``dtype``."""
    base = f"{prefix}{op.lower()}"
    out = gs.Variable(ctx.fresh_name(base), dtype=dtype)
    ctx.graph.nodes.append(gs.Node(op, name=ctx.fresh_name(base), attrs=attrs or {}, inputs=inputs, outputs=[out]))
    return out


def bypass(ctx, node: gs.Node) -> None:
    """Take out ``node``, whose first output equals its first input (a no-op such as a Pad of
    zeros): its consumers read the input instead and the node is left dead for cleanup. Where
    the output is a graph output, its name is the interface: an Identity produces it instead.
    (A subgraph cannot return an outer tensor directly, so rewiring consumers is enough there.)"""
    data, out = node.inputs[0], node.outputs[0]
    node.outputs.clear()
    if any(t is out for t in ctx.graph.outputs):
        ctx.graph.nodes.append(gs.Node("Identity", name=ctx.fresh_name(f"{node.op.lower()}_bypass"),
                                       inputs=[data], outputs=[out]))
        return
    for consumer in list(out.outputs):
        for index, tensor in enumerate(consumer.inputs):
            if tensor is out:
                consumer.inputs[index] = data


@dataclass
class PadInfo:
    """A Pad node's operands, normalised to all axes: ``pads`` is [begins..., ends...]."""

    mode: str
    rank: int | None
    pads: np.ndarray | None = None
    value: float = 0.0
    reason: str | None = None  # why the pads could not be read


def walk_nodes(graph: gs.Graph) -> Iterator[gs.Node]:
    """Every node of ``graph`` and of its If/Loop/Scan bodies."""
    return (node for _, node in nodes_with_graphs(graph))


def any_pad(graph: gs.Graph, needs: Callable[[gs.Node], bool]) -> bool:
    """Whether ``needs`` holds for some Pad node (for ``Pass.needs_shapes`` of Pad passes)."""
    return any(node.op == "Pad" and node.inputs and needs(node) for node in walk_nodes(graph))


def read_pad(node: gs.Node) -> PadInfo:
    mode = node.attrs.get("mode", "constant")
    data = node.inputs[0]

    def operand(k: int) -> tuple[bool, np.ndarray | None]:
        tensor = present(node, k)
        return tensor is not None, const_value(tensor)

    return pad_info(mode.decode() if isinstance(mode, bytes) else mode,
                    len(data.shape) if data.shape is not None else None,
                    node.attrs.get("pads"), float(node.attrs.get("value", 0.0)), operand)


def pad_info(mode: str, rank: int | None, attr_pads: Sequence[int] | None, attr_value: float,
             operand: Callable[[int], tuple[bool, np.ndarray | None]]) -> PadInfo:
    """A Pad's mode, full pads and value from what the IR gives: its ``pads``/``value``
    attributes (opset < 11) or ``operand(k)``, whether input k is present and its constant
    value (None when not constant). Shared by the onnx-graphsurgeon and the protobuf views."""
    if attr_pads is not None:  # opset < 11: pads and value are attributes
        listed = np.asarray(attr_pads, dtype=np.int64)
        return PadInfo(mode, rank or len(listed) // 2, listed, attr_value)
    pads = operand(1)[1]
    if pads is None:
        return PadInfo(mode, rank, reason="pads are not constant (run fold-constants first)")
    value_given, value_array = operand(2)
    if value_given and value_array is None:
        return PadInfo(mode, rank, reason="the constant value is not a constant")
    value = float(value_array.reshape(-1)[0]) if value_array is not None and value_array.size else 0.0
    pads = pads.astype(np.int64).reshape(-1)
    axes_given, axes = operand(3)
    if not axes_given:
        return PadInfo(mode, rank or len(pads) // 2, pads, value)
    if axes is None:
        return PadInfo(mode, rank, reason="axes are not constant")
    if rank is None:
        return PadInfo(mode, rank, reason="the input rank is unknown, so axes cannot be resolved")
    full = np.zeros(2 * rank, dtype=np.int64)
    flat = axes.reshape(-1)
    for i, axis in enumerate(flat):
        full[int(axis) % rank] = pads[i]
        full[int(axis) % rank + rank] = pads[i + len(flat)]
    return PadInfo(mode, rank, full, value)


def graph_fingerprint(graph: gs.Graph) -> int:
    """A hash of the graph's structure: nodes (op, domain, name, attributes, wiring), tensors
    (name, dtype, shape; for constants a strided sample of the values), inputs, outputs and
    opset. Cheap (no full copy of the weights); it runs before each pass that does not report
    ``modified``. An edit inside a weight array that the sample misses goes unseen: such a pass
    must say ``modified=True``."""
    def value_key(value: Any) -> Any:
        if isinstance(value, gs.Constant):
            return ("const", id(value), tuple(value.shape), str(value.dtype), _sample(value))
        if isinstance(value, (gs.Graph, gs.Tensor)):
            return ("obj", id(value))
        if isinstance(value, np.ndarray):
            return ("array", value.shape, zlib.crc32(value.ravel()[:: max(1, value.size // 64)].tobytes()))
        return repr(value)

    parts: list[Any] = [graph.opset, tuple(id(t) for t in graph.inputs), tuple(id(t) for t in graph.outputs)]
    for node in graph.nodes:
        parts.append((id(node), node.op, node.domain, node.name,
                      tuple((k, value_key(v)) for k, v in sorted(node.attrs.items())),
                      tuple(id(t) for t in node.inputs), tuple(id(t) for t in node.outputs)))
    tensors = {id(t): t for t in [*graph.inputs, *graph.outputs]}
    for node in graph.nodes:  # graph.tensors() would also check names: slower, and not needed here
        tensors.update((id(t), t) for t in node.inputs)
        tensors.update((id(t), t) for t in node.outputs)
    for tensor in tensors.values():
        parts.append(value_key(tensor) if isinstance(tensor, gs.Constant)
                     else (id(tensor), tensor.name, str(tensor.dtype), tuple(tensor.shape or ())))
    return hash(tuple(parts))


def _sample(constant: gs.Constant) -> int | None:
    values = constant._values  # not .values: that would load lazily held weights
    if not isinstance(values, np.ndarray):
        return None
    return zlib.crc32(np.ascontiguousarray(values.ravel()[:: max(1, values.size // 64)]).tobytes())
