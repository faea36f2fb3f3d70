"""resize-nearest: Resize/Upsample in linear or cubic mode -> nearest. Lossy.

Ascend ATC supports only nearest and linear Resize, and nearest only with
``nearest_mode=round_prefer_ceil`` (the default here); nearest is also the cheapest mode on
every target. Interpolated values become copies of a neighbour, so outputs change wherever
the upsampled feature map is not flat. Declared bound: pixel cosine >= ``min_cos``
(default 0.9; model-dependent, measure on real data). The coordinate transformation mode is kept unless set; cubic-only and
antialias attributes are dropped since nearest ignores them.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg.numeric import Bound
from graphsurgeon_cg.registry import Option, Pass, PassContext, PassResult, register_pass

NEAREST_MODES = ("round_prefer_ceil", "round_prefer_floor", "floor", "ceil")
COORDINATE_MODES = ("keep", "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_crop_and_resize")


@register_pass
class ResizeNearest(Pass):
    name = "resize-nearest"
    summary = "Resize/Upsample linear or cubic -> nearest (lossy; ATC wants round_prefer_ceil)"
    exact = False
    options = {
        "min_cos": Option(float, 0.9, "pixel cosine the numeric check requires (model-dependent)"),
        "nearest_mode": Option(str, "round_prefer_ceil", "rounding of nearest (Resize opset >= 11)", NEAREST_MODES),
        "coordinate_mode": Option(str, "keep", "coordinate_transformation_mode to set", COORDINATE_MODES),
    }

    @property
    def bound(self) -> Bound:
        return Bound(min_pixel_cos=self.min_cos)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        rewrites, reasons = 0, []
        for node in graph.nodes:
            if node.op not in ("Resize", "Upsample"):
                continue
            mode = node.attrs.get("mode", "nearest")
            if mode == "nearest":
                continue
            node.attrs["mode"] = "nearest"
            for attr in ("cubic_coeff_a", "exclude_outside", "antialias"):
                node.attrs.pop(attr, None)
            if node.op == "Resize" and ctx.opset >= 11:
                node.attrs["nearest_mode"] = self.nearest_mode
                if self.coordinate_mode != "keep":
                    node.attrs["coordinate_transformation_mode"] = self.coordinate_mode
            elif self.nearest_mode != "round_prefer_floor" or self.coordinate_mode != "keep":
                reasons.append(f"{node.name}: {node.op} at opset {ctx.opset} has no nearest_mode or "
                               "coordinate mode; only the mode was changed")
            ctx.mark(node)
            rewrites += 1
        if not rewrites:
            reasons.append("no Resize or Upsample in linear or cubic mode")
        return PassResult(rewrites, reasons)
