"""reflect2slice: reflect Pad -> Slice (step -1) + Concat per padded axis. Exact.

Reflect padding of ``b`` before and ``e`` after on an axis of size ``n`` is the mirror of
elements ``b..1`` in front and ``n-2..n-1-e`` behind (the edge itself is not repeated). Each
mirror is a Slice with step -1; axes are padded one after the other on the already padded
tensor, exactly as ONNX (numpy) defines the corners. Only copies: bit-identical output, and
no reflect Pad left for a compiler that lacks it. A reflect Pad whose pads are all zero is
a no-op: it is taken out (its consumers read its input; an Identity where its output is a
graph output). Needs constant pads (run fold-constants first), non-negative pads smaller than
the axis, and opset >= 10 (Slice steps).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Match, NodeRewritePass, NoMatch, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import PadInfo, any_pad, bypass, int64, read_pad
from graphsurgeon_cg.core.protograph import ProtoGraph, attribute
from graphsurgeon_cg.core.protorules import bypass as proto_bypass
from graphsurgeon_cg.core.protorules import run_rule


@register_pass
class Reflect2Slice(NodeRewritePass):
    name = "reflect2slice"
    summary = "Reflect Pad -> Slice(step -1) + Concat per axis (exact)"
    exact = True
    op_types = ("Pad",)
    nothing_found = "no Pad with mode 'reflect'"

    def needs_shapes(self, graph: gs.Graph) -> bool:  # the sizes of reflect-padded axes
        return any_pad(graph, lambda n: n.attrs.get("mode") in ("reflect", b"reflect") and n.inputs[0].shape is None)

    def match(self, node: gs.Node, ctx: PassContext) -> Match | NoMatch | None:
        if node.attrs.get("mode", "constant") not in ("reflect", b"reflect"):  # other Pads are not read at all
            return None
        pad = read_pad(node)
        if pad.reason:
            return NoMatch(pad.reason)
        refused = _refusal(pad, ctx.opset, node.inputs[0].shape)
        if refused:
            return refused
        return Match(node, pad)

    def rewrite(self, match: Match, ctx: PassContext) -> str | None:
        node, pad = match.node, match.info
        assert isinstance(pad, PadInfo) and pad.rank is not None and pad.pads is not None
        rank = pad.rank
        padded_axes = [a for a in range(rank) if pad.pads[a] or pad.pads[a + rank]]
        if not padded_axes:
            bypass(ctx, node)
            return "all pads are zero: the Pad is a no-op and was taken out"
        current = node.inputs[0]
        for i, axis in enumerate(padded_axes):
            before, after = int(pad.pads[axis]), int(pad.pads[axis + rank])
            parts = []
            if before:  # elements before..1, mirrored
                parts.append(_reverse_slice(ctx, current, before, 0, axis))
            parts.append(current)
            if after:  # elements n-2 down to n-1-after; ends may reach -n-1, clamped to "before 0"
                parts.append(_reverse_slice(ctx, current, -2, -2 - after, axis))
            last = i == len(padded_axes) - 1
            out = node.outputs[0] if last else gs.Variable(ctx.fresh_name("reflect_concat"), dtype=current.dtype)
            ctx.graph.nodes.append(gs.Node("Concat", name=ctx.fresh_name("reflect_concat"), attrs={"axis": axis},
                                           inputs=parts, outputs=[out]))
            current = out
        node.outputs.clear()  # the Pad is now dead; cleanup removes it
        return None

    # The same rule on the protobuf (core.fastpath), step for step: same names, same order.
    def needs_shapes_proto(self, graph: ProtoGraph) -> bool:
        return any(n.op_type == "Pad" and n.input and attribute(n, "mode") == "reflect" and
                   graph.shape(n.input[0]) is None for n in graph.nodes)

    def run_proto(self, graph: ProtoGraph) -> PassResult:
        def match(node) -> Match | NoMatch | None:
            if attribute(node, "mode", "constant") != "reflect":  # before reading the pads: most Pads are zero pads
                return None
            pad = graph.read_pad(node)
            if pad.reason:
                return NoMatch(pad.reason)
            return _refusal(pad, graph.opset, graph.shape(node.input[0])) or Match(node, pad)

        def rewrite(found: Match) -> str | None:
            node, pad = found.node, found.info
            rank = pad.rank
            padded_axes = [a for a in range(rank) if pad.pads[a] or pad.pads[a + rank]]
            if not padded_axes:
                proto_bypass(graph, node)
                return "all pads are zero: the Pad is a no-op and was taken out"
            current, dtype, result = node.input[0], graph.dtype(node.input[0]), node.output[0]
            for i, axis in enumerate(padded_axes):
                before, after = int(pad.pads[axis]), int(pad.pads[axis + rank])
                parts = []
                if before:
                    parts.append(_reverse_slice_proto(graph, current, dtype, before, 0, axis))
                parts.append(current)
                if after:
                    parts.append(_reverse_slice_proto(graph, current, dtype, -2, -2 - after, axis))
                if i == len(padded_axes) - 1:
                    out = result
                    node = graph.clear_outputs(node)
                else:
                    out = graph.fresh_name("reflect_concat")
                    graph.declare(out, dtype)
                graph.add_node("Concat", parts, [out], name=graph.fresh_name("reflect_concat"), axis=axis)
                current = out
            return None

        return run_rule(graph, self.op_types, self.nothing_found, match, rewrite)


def _reverse_slice(ctx: PassContext, data: gs.Tensor, start: int, end: int, axis: int) -> gs.Variable:
    out = gs.Variable(ctx.fresh_name("reflect_slice"), dtype=data.dtype)
    inputs = [data, int64(ctx, "starts", [start]), int64(ctx, "ends", [end]),
              int64(ctx, "axes", [axis]), int64(ctx, "steps", [-1])]
    ctx.graph.nodes.append(gs.Node("Slice", name=ctx.fresh_name("reflect_slice"), inputs=inputs, outputs=[out]))
    return out


def _refusal(pad: PadInfo, opset: int, shape: list | None) -> NoMatch | None:
    if opset < 10:
        return NoMatch(f"opset {opset} has no Slice steps (convert with opset(version=11) first)")
    if pad.rank is None or pad.pads is None or len(pad.pads) != 2 * pad.rank:
        return NoMatch("the input rank is unknown or does not match the pads")
    if (pad.pads < 0).any():
        return NoMatch("negative pads (cropping) are not supported")
    for axis in range(pad.rank):
        size = shape[axis] if shape is not None else None
        widest = max(pad.pads[axis], pad.pads[axis + pad.rank])
        if isinstance(size, int) and widest and widest >= size:
            return NoMatch(f"pad {widest} on axis {axis} is not smaller than its size {size}")
    return None


def _reverse_slice_proto(graph: ProtoGraph, data: str, dtype: int | None, start: int, end: int, axis: int) -> str:
    out = graph.fresh_name("reflect_slice")
    graph.declare(out, dtype)
    inputs = [data, graph.constant("starts", [start], np.int64), graph.constant("ends", [end], np.int64),
              graph.constant("axes", [axis], np.int64), graph.constant("steps", [-1], np.int64)]
    graph.add_node("Slice", inputs, [out], name=graph.fresh_name("reflect_slice"))
    return out
