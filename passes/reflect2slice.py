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

import onnx_graphsurgeon as gs

from graphsurgeon_cg import Match, NodeRewritePass, NoMatch, PassContext, register_pass
from graphsurgeon_cg.core.graphutil import PadInfo, any_pad, bypass, int64, read_pad


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
        pad = read_pad(node)
        if pad.mode != "reflect":
            return None
        if pad.reason:
            return NoMatch(pad.reason)
        if ctx.opset < 10:
            return NoMatch(f"opset {ctx.opset} has no Slice steps (convert with opset(version=11) first)")
        if pad.rank is None or pad.pads is None or len(pad.pads) != 2 * pad.rank:
            return NoMatch("the input rank is unknown or does not match the pads")
        if (pad.pads < 0).any():
            return NoMatch("negative pads (cropping) are not supported")
        shape = node.inputs[0].shape
        for axis in range(pad.rank):
            size = shape[axis] if shape is not None else None
            widest = max(pad.pads[axis], pad.pads[axis + pad.rank])
            if isinstance(size, int) and widest and widest >= size:
                return NoMatch(f"pad {widest} on axis {axis} is not smaller than its size {size}")
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


def _reverse_slice(ctx: PassContext, data: gs.Tensor, start: int, end: int, axis: int) -> gs.Variable:
    out = gs.Variable(ctx.fresh_name("reflect_slice"), dtype=data.dtype)
    inputs = [data, int64(ctx, "starts", [start]), int64(ctx, "ends", [end]),
              int64(ctx, "axes", [axis]), int64(ctx, "steps", [-1])]
    ctx.graph.nodes.append(gs.Node("Slice", name=ctx.fresh_name("reflect_slice"), inputs=inputs, outputs=[out]))
    return out
