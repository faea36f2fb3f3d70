"""resize-nearest: Resize/Upsample in linear or cubic mode -> nearest. Lossy.

Ascend ATC supports only nearest and linear Resize, and nearest only with
``nearest_mode=round_prefer_ceil`` (the default here); nearest is also the cheapest mode on
every target. Interpolated values become copies of a neighbour, so outputs change wherever
the upsampled feature map is not flat. Declared bound: cosine >= ``min_cos`` (default 0.9;
model-dependent, measure on real data). The coordinate transformation mode is kept unless
set; cubic-only and antialias attributes are dropped since nearest ignores them. A Resize or
Upsample already in nearest mode is reported as such ("already nearest").
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg import (
    Bound,
    Match,
    NodeRewritePass,
    NoMatch,
    Option,
    PassContext,
    cosine,
    cosine_bound,
    register_pass,
)

NEAREST_MODES = ("round_prefer_ceil", "round_prefer_floor", "floor", "ceil")
COORDINATE_MODES = ("keep", "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                    "asymmetric", "tf_crop_and_resize")


@register_pass
class ResizeNearest(NodeRewritePass):
    name = "resize-nearest"
    summary = "Resize/Upsample linear or cubic -> nearest (lossy; ATC wants round_prefer_ceil)"
    exact = False
    op_types = ("Resize", "Upsample")
    nothing_found = "no Resize or Upsample node"
    min_cos = Option(float, 0.9, "cosine the numeric check requires (model-dependent)", check=cosine())
    nearest_mode = Option(str, "round_prefer_ceil", "rounding of nearest (Resize opset >= 11)", NEAREST_MODES)
    coordinate_mode = Option(str, "keep", "coordinate_transformation_mode to set", COORDINATE_MODES)

    def bound(self) -> Bound:
        return cosine_bound(self.min_cos)

    def match(self, node: gs.Node, ctx: PassContext) -> Match | NoMatch:
        mode = node.attrs.get("mode", "nearest")
        if (mode.decode() if isinstance(mode, bytes) else mode) == "nearest":
            return NoMatch("already nearest: nothing to change")
        return Match(node)

    def rewrite(self, match: Match, ctx: PassContext) -> str | None:
        node = match.node
        node.attrs["mode"] = "nearest"
        for attr in ("cubic_coeff_a", "exclude_outside", "antialias"):
            node.attrs.pop(attr, None)
        ctx.mark(node)
        if node.op == "Resize" and ctx.opset >= 11:
            node.attrs["nearest_mode"] = self.nearest_mode
            if self.coordinate_mode != "keep":
                node.attrs["coordinate_transformation_mode"] = self.coordinate_mode
        elif self.nearest_mode != "round_prefer_floor" or self.coordinate_mode != "keep":
            return f"{node.op} at opset {ctx.opset} has no nearest_mode or coordinate mode; only the mode was changed"
        return None
