"""nearest-half-pixel: an integer-factor nearest Resize whose rounding does not matter. Exact.

Ascend's ATC implements nearest Resize only as ``round_prefer_ceil`` (its plug-in never reads
``nearest_mode``), so an exporter's ``asymmetric``/``floor`` upsampling (PyTorch's
``nn.Upsample(mode="nearest")``, PaddleOCR's detectors) gives other numbers on the device than
in ONNX Runtime. For an integer scale ``s`` on every resized axis, the source index of output
``x = k*s + r`` under ``half_pixel`` coordinates is ``(x + 0.5)/s - 0.5 = k + (r + 0.5)/s - 0.5``,
strictly within half a pixel of ``k``: rounding to the nearest picks ``k`` with either tie rule
(no tie can occur), and so does TensorFlow's ``half_pixel_centers`` rule ``floor((x + 0.5)/s)``,
which ATC's ResizeNearestNeighborV2 uses. So where
the node's own index map is ``x // s`` (checked per axis: asymmetric + floor is, among others),
it is rewritten to ``half_pixel`` + ``round_prefer_ceil``: the same output everywhere, and the
same on any compiler that rounds to the nearest. Left alone, with the reason: other modes, non-integer or non-constant
scales, and index maps that are not ``x // s`` (e.g. ``align_corners``).
"""

from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Match, NodeRewritePass, NoMatch, PassContext, register_pass
from graphsurgeon_cg.core.graphutil import const_value

PROBE_LENGTHS = (1, 2, 3, 5)  # input lengths the index map is compared on when the axis size is unknown


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def source_index(x: np.ndarray, scale: int, length: int, coordinate_mode: str, nearest_mode: str) -> np.ndarray:
    """ONNX Resize's nearest source index for outputs ``x`` of an axis of ``length`` resized by ``scale``."""
    out_length = length * scale
    if coordinate_mode == "asymmetric":
        original = x / scale
    elif coordinate_mode == "half_pixel" or (coordinate_mode == "pytorch_half_pixel" and out_length > 1):
        original = (x + 0.5) / scale - 0.5
    elif coordinate_mode == "pytorch_half_pixel":
        original = np.zeros_like(x, dtype=np.float64)
    elif coordinate_mode == "align_corners":
        original = x * (length - 1) / (out_length - 1) if out_length > 1 else np.zeros_like(x, dtype=np.float64)
    else:
        raise ValueError(coordinate_mode)
    rounded = {"floor": np.floor(original), "ceil": np.ceil(original),
               "round_prefer_floor": np.ceil(original - 0.5), "round_prefer_ceil": np.floor(original + 0.5)}
    return np.clip(rounded[nearest_mode], 0, length - 1).astype(np.int64)


@register_pass
class NearestHalfPixel(NodeRewritePass):
    name = "nearest-half-pixel"
    summary = "Integer-factor nearest Resize -> half_pixel coordinates, whose rounding mode cannot matter (exact)"
    exact = True
    op_types = ("Resize",)
    nothing_found = "no Resize node"

    def needs_shapes(self, graph: gs.Graph) -> bool:  # the input rank and sizes, to read sizes as scales
        return any(n.op == "Resize" and n.inputs[0].shape is None for n in graph.nodes)

    def match(self, node: gs.Node, ctx: PassContext) -> Match | NoMatch | None:
        if ctx.opset < 11:
            return NoMatch(f"Resize-{ctx.opset} has no coordinate or rounding mode to set")
        if _text(node.attrs.get("mode", "nearest")) != "nearest":
            return None
        coordinate = _text(node.attrs.get("coordinate_transformation_mode", "half_pixel"))
        rounding = _text(node.attrs.get("nearest_mode", "round_prefer_floor"))
        if coordinate == "half_pixel" and rounding == "round_prefer_ceil":
            return NoMatch("already half_pixel with round_prefer_ceil")
        if coordinate not in ("asymmetric", "half_pixel", "pytorch_half_pixel", "align_corners"):
            return NoMatch(f"coordinate_transformation_mode {coordinate} is not rewritten")
        if "axes" in node.attrs or int(node.attrs.get("antialias", 0)):
            return NoMatch("axes or antialias set")
        scales = self._scales(node)
        if isinstance(scales, NoMatch):
            return scales
        shape = node.inputs[0].shape
        for axis, scale in enumerate(scales):
            if scale == 1:
                continue
            known = shape[axis] if shape is not None and isinstance(shape[axis], int) else None
            for length in [known] if known else PROBE_LENGTHS:
                x = np.arange(length * scale)
                if not np.array_equal(source_index(x, scale, length, coordinate, rounding), x // scale):
                    return NoMatch(f"axis {axis}: {coordinate} with {rounding} does not pick x // {scale}"
                                   + (f" at length {length}" if known else ""))
        return Match(node)

    @staticmethod
    def _scales(node: gs.Node) -> list[int] | NoMatch:
        scales = const_value(node.inputs[2]) if len(node.inputs) > 2 else None
        sizes = const_value(node.inputs[3]) if len(node.inputs) > 3 else None
        shape = node.inputs[0].shape
        if scales is not None and scales.size:
            values = [float(s) for s in scales.ravel()]
        elif sizes is not None and sizes.size and shape is not None and all(isinstance(d, int) for d in shape):
            values = [int(o) / int(i) for o, i in zip(sizes.ravel(), shape)]
        else:
            return NoMatch("scales are not constant (or sizes without a static input shape): run fold-constants "
                           "or static-shape first")
        if any(not math.isclose(v, round(v)) or round(v) < 1 for v in values):
            return NoMatch(f"scales {values} are not all positive integers")
        return [round(v) for v in values]

    def rewrite(self, match: Match, ctx: PassContext) -> str | None:
        node = match.node
        node.attrs["coordinate_transformation_mode"] = "half_pixel"
        node.attrs["nearest_mode"] = "round_prefer_ceil"
        ctx.mark(node)
        return None
