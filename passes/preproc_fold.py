"""preproc-fold: the model takes a uint8 image and normalises it itself. Lossy only by float rounding.

The analogue of the vendor compiler's AIPP: the host sends raw 8-bit pixels (4x fewer bytes
than float32) and does no float conversion; the graph does Cast + x / scale - mean / scale,
i.e. ``(x - mean) / scale`` per channel (default 127.5 and 127.5: ``x / 127.5 - 1``, the same
float operations in the same order as the reference host preprocessing, so bit-identical for
the defaults; other values may differ in the last bit). Applies to float32 inputs of shape
N x C x H x W with C 1 or 3; ``layout=nhwc`` makes the new input N x H x W x C (a Transpose
in the graph). An input that is also a graph output stays float (its one name cannot be both
a uint8 input and the float output); it is reported, and so is an input with a default value
(an initializer listed as an input: a weight). Declared bound: 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, IOAdapter, Option, Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import append_node


def per_channel(values: tuple, channels: int) -> np.ndarray:
    return np.asarray([float(v) for v in values] * (channels if len(values) == 1 else 1), np.float32)


def _numbers(values: tuple) -> str | None:
    try:
        [float(v) for v in values]
    except ValueError:
        return "must hold numbers"
    return None if values else "must not be empty"


@dataclass(frozen=True)
class PixelFeeds(IOAdapter):
    """Float inputs in the original's units -> the uint8 pixels the rewritten model takes
    (normalised as ``grid`` says)."""

    converted: dict  # input name -> channels
    nhwc: bool

    def feeds(self, feed: dict) -> dict:
        feed = dict(feed)
        assert self.grid is not None
        for name, channels in self.converted.items():
            scale = per_channel(self.grid[1], channels).reshape(1, -1, 1, 1)
            mean = per_channel(self.grid[0], channels).reshape(1, -1, 1, 1)
            pixels = np.clip(np.round(feed[name].astype(np.float64) * scale + mean), 0, 255).astype(np.uint8)
            feed[name] = pixels.transpose(0, 2, 3, 1) if self.nhwc else pixels
        return feed


@register_pass
class PreprocFold(Pass):
    name = "preproc-fold"
    summary = "Take uint8 images (NCHW or NHWC) and normalise in the graph, like AIPP"
    exact = False
    reports_modified = True
    changes_io_dtypes = True
    layout = Option(str, "nchw", "layout of the new uint8 input", ("nchw", "nhwc"))
    mean = Option(tuple, ("127.5",), "per-channel mean (one value or one per channel)", check=_numbers)
    scale = Option(tuple, ("127.5",), "per-channel scale: x -> (x - mean) / scale", check=_numbers)

    def bound(self) -> Bound:
        return Bound(max_abs=1e-4)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        converted: dict[str, int] = {}
        reasons = []
        outputs = {id(t) for t in graph.outputs}
        for index, inp in enumerate(list(graph.inputs)):
            shape = inp.shape or []
            if inp.dtype != np.float32 or len(shape) != 4 or shape[1] not in (1, 3):
                reasons.append(f"input '{inp.name}' is not a float32 N x C x H x W image with C 1 or 3")
                continue
            if inp.name in ctx.defaults:
                reasons.append(f"input '{inp.name}' has a default value (an initializer listed as an input): "
                               "a weight the caller may override, not an image")
                continue
            if id(inp) in outputs:
                reasons.append(f"input '{inp.name}' is also a graph output: the name cannot be both a uint8 "
                               "input and a float output, so it stays float")
                continue
            channels = shape[1]
            for key, values in (("mean", self.mean), ("scale", self.scale)):
                if len(values) not in (1, channels):
                    raise self.refuse(f"{key} needs 1 or {channels} values for input '{inp.name}', got {len(values)}")
            scale = per_channel(self.scale, channels)
            mean = per_channel(self.mean, channels)
            name = inp.name
            inp.name = ctx.fresh_name(f"{name}_normalized")  # the old input is now computed
            nhwc = self.layout == "nhwc"
            image = gs.Variable(name, np.uint8, [shape[0], shape[2], shape[3], channels] if nhwc else list(shape))
            x = image
            if nhwc:
                x = append_node(ctx, "Transpose", [x], np.uint8, attrs={"perm": [0, 3, 1, 2]})
            x = append_node(ctx, "Cast", [x], np.float32, attrs={"to": onnx.TensorProto.FLOAT})
            scale_const = gs.Constant(ctx.fresh_name("scale"), scale.reshape(1, -1, 1, 1))
            x = append_node(ctx, "Div", [x, scale_const], np.float32)
            sub_name = ctx.fresh_name("preproc_sub")  # named before the offset, as fresh names count up
            offset_const = gs.Constant(ctx.fresh_name("offset"), (mean / scale).reshape(1, -1, 1, 1))
            graph.nodes.append(gs.Node("Sub", name=sub_name, inputs=[x, offset_const], outputs=[inp]))
            graph.inputs[index] = image
            converted[name] = channels
        adapter = PixelFeeds(converted, self.layout == "nhwc", grid=self._grid()) if converted else None
        return PassResult(len(converted), reasons, modified=bool(converted), adapter=adapter)

    def declare_io(self, model: onnx.ModelProto) -> IOAdapter:
        return IOAdapter(grid=self._grid())

    def _grid(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return tuple(float(v) for v in self.mean), tuple(float(v) for v in self.scale)
