"""reflect2const: reflect Pad -> constant (zero) Pad. Lossy; the vendor guide's workaround.

Some compilers (older Ascend ATC) reject or run reflect padding slowly. Zero padding changes
the values near every padded border, so this pass is lossy: a trained CycleGAN scores a mean
per-pixel cosine of about 0.984 on real photos (worst image 0.913), below the guide's own
0.99 target, with visible edge blur. Declared bound: pixel cosine >= ``min_cos`` (default 0.9,
from the trained model's worst image); it depends on the model and on the image size (a tiny
64x64 random-weight generator scores about 0.8). ``reflect2slice`` gives the same
compiler-friendliness exactly. Unlike the vendor script, only Pad nodes are touched (it
rewrote every attribute named ``mode``).
"""

from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from graphsurgeon_cg.graphutil import present
from graphsurgeon_cg.numeric import Bound
from graphsurgeon_cg.registry import Option, Pass, PassContext, PassResult, register_pass


@register_pass
class Reflect2Const(Pass):
    name = "reflect2const"
    summary = "Reflect Pad -> zero constant Pad (lossy at borders; the vendor guide's workaround)"
    exact = False
    options = {"min_cos": Option(float, 0.9, "pixel cosine the numeric check requires (model-dependent)")}

    @property
    def bound(self) -> Bound:
        return Bound(min_pixel_cos=self.min_cos)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        rewrites = 0
        for node in graph.nodes:
            if node.op != "Pad" or node.attrs.get("mode", "constant") != "reflect":
                continue
            node.attrs["mode"] = "constant"
            if "pads" in node.attrs:  # opset < 11
                node.attrs["value"] = 0.0
            elif present(node, 2) is not None:
                dtype = node.inputs[0].dtype or np.float32
                node.inputs[2] = gs.Constant(ctx.fresh_name("zero"), np.zeros((), dtype=dtype))
            ctx.mark(node)
            rewrites += 1
        return PassResult(rewrites, [] if rewrites else ["no Pad with mode 'reflect'"])
