"""postproc-fold: the model returns a uint8 image instead of floats in [-1, 1]. Lossy (rounding).

The output side of preproc-fold: ``round(clip((y + 1) * 127.5, 0, 255))`` as uint8, the same
mapping as writing the output as a PNG, done in the graph so the host copies 4x fewer bytes
and converts nothing. Applies to float32 outputs of shape N x C x H x W with C 1 or 3;
``layout=nhwc`` returns N x H x W x C. Needs opset >= 11 (Clip bounds as inputs, Round).
Rounding to the 8-bit grid moves values by at most 0.5 / 127.5 (bound: 0.004). An output
that is also a graph input stays float (its one name cannot be both the float input and a
uint8 output); it is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, IOAdapter, Option, Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import append_node


@dataclass(frozen=True)
class PixelOutputs(IOAdapter):
    """The uint8 pixels the rewritten model returns -> floats in [-1, 1] like the original's."""

    converted: tuple  # output names
    nhwc: bool

    def outputs(self, outputs: dict) -> dict:
        outputs = dict(outputs)
        for name in self.converted:
            pixels = outputs[name]
            if self.nhwc:
                pixels = pixels.transpose(0, 3, 1, 2)
            outputs[name] = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
        return outputs


@register_pass
class PostprocFold(Pass):
    name = "postproc-fold"
    summary = "Return uint8 images (NCHW or NHWC) instead of floats in [-1, 1] (lossy: 8-bit rounding)"
    exact = False
    reports_modified = True
    changes_io_dtypes = True
    layout = Option(str, "nchw", "layout of the uint8 output", ("nchw", "nhwc"))

    def bound(self) -> Bound:
        return Bound(max_abs=0.5 / 127.5 + 1e-6)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        converted: list[str] = []
        if ctx.opset < 11:
            return PassResult(0, [f"opset {ctx.opset} < 11 has no Round and no Clip bounds as inputs"], modified=False)
        reasons = []
        inputs = {id(t) for t in graph.inputs}
        images: dict[int, gs.Variable] = {}  # a tensor listed twice as an output is converted once
        for index, out in enumerate(list(graph.outputs)):
            if id(out) in images:
                graph.outputs[index] = images[id(out)]
                continue
            shape = out.shape or []
            if out.dtype != np.float32 or len(shape) != 4 or shape[1] not in (1, 3):
                reasons.append(f"output '{out.name}' is not a float32 N x C x H x W image with C 1 or 3")
                continue
            if id(out) in inputs:
                reasons.append(f"output '{out.name}' is also a graph input: the name cannot be both a float "
                               "input and a uint8 output, so it stays float")
                continue
            name = out.name
            out.name = ctx.fresh_name(f"{name}_float")

            def const(base, value):
                return gs.Constant(ctx.fresh_name(base), np.asarray(value, np.float32))

            x = append_node(ctx, "Add", [out, const("one", 1.0)], np.float32)
            x = append_node(ctx, "Mul", [x, const("half_range", 127.5)], np.float32)
            x = append_node(ctx, "Clip", [x, const("low", 0.0), const("high", 255.0)], np.float32)
            x = append_node(ctx, "Round", [x], np.float32)
            nhwc = self.layout == "nhwc"
            image = gs.Variable(name, np.uint8, [shape[0], shape[2], shape[3], shape[1]] if nhwc else list(shape))
            if nhwc:
                x = append_node(ctx, "Cast", [x], np.uint8, attrs={"to": onnx.TensorProto.UINT8})
                graph.nodes.append(gs.Node("Transpose", name=ctx.fresh_name("postproc_transpose"),
                                           attrs={"perm": [0, 2, 3, 1]}, inputs=[x], outputs=[image]))
            else:
                graph.nodes.append(gs.Node("Cast", name=ctx.fresh_name("postproc_cast"),
                                           attrs={"to": onnx.TensorProto.UINT8}, inputs=[x], outputs=[image]))
            graph.outputs[index] = images[id(out)] = image
            converted.append(name)
        adapter = PixelOutputs(tuple(converted), self.layout == "nhwc") if converted else None
        return PassResult(len(converted), reasons, modified=bool(converted), adapter=adapter)

