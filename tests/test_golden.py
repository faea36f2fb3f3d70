"""Golden tests, FileCheck-style: for every built-in pass, an input graph in ONNX text, the
pipeline, and the graph the pass must produce, also in ONNX text. The graphs are compared
structurally (``assert_graph_equal``: ops, wiring, attributes, initializer values and the
interface; node names and internal tensor names are free, node order is not), then the
numbers are checked: tolerance 0 for exact passes, the pass's documented bound for lossy ones,
or a precise statement of what a lossy pass changes where "close" is not the point.

Reading an expected graph: initializer names are free (they are renamed canonically), the
graph's input and output names and types are the interface, and output shapes are the ones
shape inference gives after the pass (the manager infers them on export).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

from graphsurgeon_cg import build_pipeline
from graphsurgeon_cg.check.metrics import compare_outputs
from graphsurgeon_cg.check.session import make_session, run_session
from graphsurgeon_cg.testing import (
    assert_graph_equal,
    assert_numerically_equal,
    model_from_text,
    random_inputs,
    run_pass,
)

OPSET9 = '<ir_version: 8, opset_import: ["" : 9]>'
OPSET10 = '<ir_version: 8, opset_import: ["" : 10]>'
OPSET11 = '<ir_version: 8, opset_import: ["" : 11]>'
OPSET13 = '<ir_version: 8, opset_import: ["" : 13]>'
OPSET17 = '<ir_version: 8, opset_import: ["" : 17]>'
OPSET18 = '<ir_version: 9, opset_import: ["" : 18]>'

# A 3x3 convolution from 2 channels to 1 (float32 text), used by several cases as "$W".
W_VALUES = [0.5, -1.0, 0.25, 1.0, 2.0, -0.5, 0.0, 1.5, -2.0, -0.25, 0.75, 1.0, 2.0, -1.5, 0.5, 1.0, 0.0, -1.0]
W = "{" + ", ".join(str(v) for v in W_VALUES) + "}"


def f16(*values: float) -> str:
    """float16 initializer values as the ONNX text parser takes them: their bit patterns."""
    return "{" + ", ".join(str(int(b)) for b in np.asarray(values, np.float16).view(np.uint16)) + "}"


def outputs_in_both_runtimes(model, feed: dict) -> list[tuple[str, dict]]:
    """The model's outputs on ``feed`` in ONNX Runtime (optimisations off) and onnx.reference."""
    names = [o.name for o in model.graph.output]
    return [("onnxruntime", run_session(make_session(model), [feed])[0]),
            ("onnx.reference", dict(zip(names, ReferenceEvaluator(model).run(None, feed))))]


def assert_within_declared_bound(original, rewritten, pipeline: str, feeds: list[dict]) -> None:
    """The rewritten model stays within the bound its (single) pass declares, judged the way
    the pass manager's numeric check judges it (per-pixel cosine for images)."""
    [p] = build_pipeline(pipeline)
    refs = run_session(make_session(original), feeds)
    news = run_session(make_session(rewritten), feeds)
    comparison = compare_outputs(refs, news, p.bound())
    assert comparison.ok, comparison.violations


# ---------------------------------------------------------------------------------------------
# Passes whose output is checked with assert_numerically_equal: tolerance 0 for the exact
# ones, the declared bound for fp16out.

class Golden(NamedTuple):
    name: str
    pipeline: str
    before: str
    after: str
    atol: float = 0.0
    rtol: float = 0.0


GOLDEN = [
    Golden("fold-constants: a computed pads operand becomes an initializer", "fold-constants", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        {
          begin = Constant <value = int64[4] {0, 0, 1, 1}> ()
          end = Constant <value = int64[4] {0, 0, 1, 1}> ()
          pads = Concat <axis = 0> (begin, end)
          y = Pad <mode = "reflect"> (x, pads)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }"""),

    Golden("fold-constants: constant arithmetic folds to one scalar", "fold-constants", OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          two = Constant <value = float {2.0}> ()
          four = Mul (two, two)
          y = Add (x, four)
        }""", OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        <float four = {4.0}>
        {
          y = Add (x, four)
        }"""),

    Golden("fold-constants: a node that feeds no output is removed", "fold-constants", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] y)
        {
          y = Relu (x)
          unused = Sigmoid (x)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] y)
        {
          y = Relu (x)
        }"""),

    # Reflect by 1 on W, both sides: the mirror of element 1 in front (Slice 1 -> 0 step -1)
    # and of element n-2 behind (Slice -2 -> -3 step -1).
    Golden("reflect2slice: one axis, both sides", "reflect2slice", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,8] y)
        <int64[8] pads = {0, 0, 0, 1, 0, 0, 0, 1}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,8] y)
        <int64[1] front_start = {1}, int64[1] front_end = {0}, int64[1] axis_w = {3}, int64[1] back = {-1},
         int64[1] back_start = {-2}, int64[1] back_end = {-3}>
        {
          front = Slice (x, front_start, front_end, axis_w, back)
          behind = Slice (x, back_start, back_end, axis_w, back)
          y = Concat <axis = 3> (front, x, behind)
        }"""),

    # H by 1 on both sides, then W by 1 after only: W is padded on the H-padded tensor (the
    # corners, as ONNX defines them), and an axis padded on one side gets one Slice.
    Golden("reflect2slice: two axes, one after the other", "reflect2slice", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,7] y)
        <int64[8] pads = {0, 0, 1, 0, 0, 0, 1, 1}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,7] y)
        <int64[1] s1 = {1}, int64[1] e1 = {0}, int64[1] a1 = {2}, int64[1] k1 = {-1},
         int64[1] s2 = {-2}, int64[1] e2 = {-3}, int64[1] a3 = {3}>
        {
          top = Slice (x, s1, e1, a1, k1)
          bottom = Slice (x, s2, e2, a1, k1)
          h_padded = Concat <axis = 2> (top, x, bottom)
          right = Slice (h_padded, s2, e2, a3, k1)
          y = Concat <axis = 3> (h_padded, right)
        }"""),

    Golden("reflect2slice: opset 18 axes operand with a negative axis", "reflect2slice", OPSET18 + """
        g (float[1,2,5,6] x) => (float[1,2,5,8] y)
        <int64[2] pads = {2, 0}, int64[1] axes = {-1}>
        {
          y = Pad <mode = "reflect"> (x, pads, , axes)
        }""", OPSET18 + """
        g (float[1,2,5,6] x) => (float[1,2,5,8] y)
        <int64[1] start = {2}, int64[1] end = {0}, int64[1] axis = {3}, int64[1] step = {-1}>
        {
          front = Slice (x, start, end, axis, step)
          y = Concat <axis = 3> (front, x)
        }"""),

    Golden("pad-conv-fusion: zero Pad becomes the Conv's pads", "pad-conv-fusion", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}, float[1,2,3,3] w = $W>
        {
          padded = Pad (x, pads)
          y = Conv (padded, w)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <float[1,2,3,3] w = $W>
        {
          y = Conv <pads = [1, 1, 1, 1]> (x, w)
        }"""),

    # Pad [h_begin=1, w_begin=2, h_end=3, w_end=0] + Conv pads [1, 1, 1, 1] -> [2, 3, 4, 1].
    Golden("pad-conv-fusion: asymmetric pads add to existing Conv pads", "pad-conv-fusion", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,9,8] y)
        <int64[8] pads = {0, 0, 1, 2, 0, 0, 3, 0}, float[1,2,3,3] w = $W>
        {
          padded = Pad (x, pads)
          y = Conv <pads = [1, 1, 1, 1]> (padded, w)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,9,8] y)
        <float[1,2,3,3] w = $W>
        {
          y = Conv <pads = [2, 3, 4, 1]> (x, w)
        }"""),

    Golden("pad-conv-fusion: opset 18 Pad with an axes operand", "pad-conv-fusion", OPSET18 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <int64[4] pads = {1, 1, 1, 1}, int64[2] axes = {2, 3}, float[1,2,3,3] w = $W>
        {
          padded = Pad (x, pads, , axes)
          y = Conv (padded, w)
        }""", OPSET18 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <float[1,2,3,3] w = $W>
        {
          y = Conv <pads = [1, 1, 1, 1]> (x, w)
        }"""),

    # Both outputs become float16 under their own names; Sigmoid still reads the float32 Relu.
    Golden("fp16out: every float32 output, internal consumers keep float32", "fp16out", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] a, float[1,2,5,6] b)
        {
          a = Relu (x)
          b = Sigmoid (a)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float16[1,2,5,6] a, float16[1,2,5,6] b)
        {
          a32 = Relu (x)
          b32 = Sigmoid (a32)
          a = Cast <to = 10> (a32)
          b = Cast <to = 10> (b32)
        }""", atol=2.0**-24, rtol=2.0**-11),

    Golden("fp16out: only the outputs named", "fp16out(outputs=[b])", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] a, float[1,2,5,6] b, int64[4] s)
        {
          a = Relu (x)
          b = Sigmoid (a)
          s = Shape (x)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] a, float16[1,2,5,6] b, int64[4] s)
        {
          a = Relu (x)
          b32 = Sigmoid (a)
          s = Shape (x)
          b = Cast <to = 10> (b32)
        }""", atol=2.0**-24, rtol=2.0**-11),

    Golden("static-batch: dynamic N becomes 1, output shape re-inferred", "static-batch", OPSET13 + """
        g (float[N,3,8,8] x) => (float[N,3,8,8] y)
        {
          y = Relu (x)
        }""", OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Relu (x)
        }"""),

    Golden("static-batch: batch=4 through a shape-changing op", "static-batch(batch=4)", OPSET13 + """
        g (float[N,3,8,8] x) => (float[N,3,4,4] y)
        {
          y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (x)
        }""", OPSET13 + """
        g (float[4,3,8,8] x) => (float[4,3,4,4] y)
        {
          y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (x)
        }"""),

    Golden("opset: 10 -> 11 moves Pad's pads attribute to an input", "opset(version=11)", OPSET10 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        {
          y = Pad <mode = "reflect", pads = [0, 0, 1, 1, 0, 0, 1, 1]> (x)
        }""", OPSET11 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }"""),

    # onnx.version_converter gives Squeeze's axes as a Constant node, not an initializer.
    Golden("opset: 11 -> 13 moves Squeeze's axes attribute to an input", "opset(version=13)", OPSET11 + """
        g (float[1,3,1,8] x) => (float[1,3,8] y)
        {
          y = Squeeze <axes = [2]> (x)
        }""", OPSET13 + """
        g (float[1,3,1,8] x) => (float[1,3,8] y)
        {
          axes = Constant <value = int64[1] {2}> ()
          y = Squeeze (x, axes)
        }"""),
]


@pytest.mark.parametrize("case", GOLDEN, ids=[c.name for c in GOLDEN])
def test_golden(case: Golden):
    before = model_from_text(case.before.replace("$W", W))
    result, record = run_pass(before, case.pipeline)
    assert record.rewrites > 0 and record.modified
    assert_graph_equal(result, case.after.replace("$W", W))
    # Feeds for the rewritten model (static where the original was dynamic) suit both.
    assert_numerically_equal(before, result, feeds=random_inputs(result, seed=0, samples=2),
                             atol=case.atol, rtol=case.rtol)


# ---------------------------------------------------------------------------------------------
# reflect2const: lossy at the borders by design, so "close" is not the check; instead the
# interior is bit-identical and every padded border element is exactly 0 (it was a mirror).

REFLECT2CONST = [
    ("pads operand (opset 13)", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "constant"> (x, pads)
        }"""),
    # A value operand (ignored by reflect) would become the border value: it is set to 0.
    ("value operand is zeroed (opset 13)", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}, float value = {5.0}>
        {
          y = Pad <mode = "reflect"> (x, pads, value)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}, float zero = {0.0}>
        {
          y = Pad <mode = "constant"> (x, pads, zero)
        }"""),
    ("pads attribute (opset 10)", OPSET10 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        {
          y = Pad <mode = "reflect", pads = [0, 0, 1, 1, 0, 0, 1, 1]> (x)
        }""", OPSET10 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        {
          y = Pad <mode = "constant", pads = [0, 0, 1, 1, 0, 0, 1, 1], value = 0.0> (x)
        }"""),
]


@pytest.mark.parametrize("before_text, after_text", [c[1:] for c in REFLECT2CONST], ids=[c[0] for c in REFLECT2CONST])
def test_golden_reflect2const(before_text, after_text):
    before = model_from_text(before_text)
    result, record = run_pass(before, "reflect2const")
    assert record.rewrites == 1
    assert_graph_equal(result, after_text)
    [feed] = random_inputs(before)
    x = feed["x"]
    for runtime, got in outputs_in_both_runtimes(result, feed):
        y = got["y"]
        np.testing.assert_array_equal(y[:, :, 1:-1, 1:-1], x, err_msg=runtime)  # interior untouched
        border = np.ones(y.shape, bool)
        border[:, :, 1:-1, 1:-1] = False
        assert np.all(y[border] == 0), runtime
    reflected = outputs_in_both_runtimes(before, feed)[0][1]["y"]
    assert np.any(reflected[border] != 0)  # so the outputs did change: lossy, at the border only


# ---------------------------------------------------------------------------------------------
# resize-nearest: lossy by design (interpolated values become copies). Instead of a tolerance,
# the rewritten model must compute exactly the nearest-neighbour upsampling its attributes
# name, and differ from the interpolating original.

def nearest_x2(x: np.ndarray, coordinate_mode: str) -> np.ndarray:
    """2x nearest upsampling of H and W, rounding halves up (round_prefer_ceil)."""
    def indices(n: int) -> np.ndarray:
        out = np.arange(2 * n, dtype=np.float64)
        source = out / 2 if coordinate_mode == "asymmetric" else (out + 0.5) / 2 - 0.5  # half_pixel
        return np.clip(np.floor(source + 0.5), 0, n - 1).astype(int)

    return x[:, :, indices(x.shape[2])][:, :, :, indices(x.shape[3])]


RESIZE = [
    ("linear -> nearest round_prefer_ceil", "resize-nearest", "half_pixel", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Resize <mode = "linear"> (x, , scales)
        }""", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Resize <mode = "nearest", nearest_mode = "round_prefer_ceil"> (x, , scales)
        }"""),
    ("cubic attributes dropped, coordinate mode set", "resize-nearest(coordinate_mode=asymmetric)", "asymmetric",
     OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Resize <mode = "cubic", cubic_coeff_a = -0.5, exclude_outside = 1> (x, , scales)
        }""", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Resize <mode = "nearest", nearest_mode = "round_prefer_ceil",
                      coordinate_transformation_mode = "asymmetric"> (x, , scales)
        }"""),
]


@pytest.mark.parametrize("pipeline, coordinate_mode, before_text, after_text", [c[1:] for c in RESIZE],
                         ids=[c[0] for c in RESIZE])
def test_golden_resize_nearest(pipeline, coordinate_mode, before_text, after_text):
    before = model_from_text(before_text)
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 1 and record.reasons == []
    assert_graph_equal(result, after_text)
    [feed] = random_inputs(before)
    for runtime, got in outputs_in_both_runtimes(result, feed):
        np.testing.assert_array_equal(got["y"], nearest_x2(feed["x"], coordinate_mode), err_msg=runtime)
    assert not np.array_equal(outputs_in_both_runtimes(before, feed)[0][1]["y"], nearest_x2(feed["x"], coordinate_mode))


def test_golden_resize_nearest_upsample_at_opset9_changes_only_the_mode():
    before = model_from_text(OPSET9 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Upsample <mode = "linear"> (x, scales)
        }""")
    result, record = run_pass(before, "resize-nearest")
    assert_graph_equal(result, OPSET9 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Upsample <mode = "nearest"> (x, scales)
        }""")
    assert record.rewrites == 1
    assert record.reasons == ["Upsample: Upsample at opset 9 has no nearest_mode or coordinate mode; "
                              "only the mode was changed"]
    [feed] = random_inputs(before)
    # Upsample's nearest (opset 9) copies source element floor(i / 2): each pixel twice.
    twice = np.repeat(np.repeat(feed["x"], 2, axis=2), 2, axis=3)
    for runtime, got in outputs_in_both_runtimes(result, feed):
        np.testing.assert_array_equal(got["y"], twice, err_msg=runtime)


# ---------------------------------------------------------------------------------------------
# preproc-fold: the input becomes uint8 pixels; the original gets the same pixels normalised
# on the host.

def host_preprocessing(pixels: np.ndarray) -> np.ndarray:
    """The reference host preprocessing (check/images.py): ``x / 127.5 - 1`` in float32."""
    return pixels.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def imagenet_normalisation(pixels: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` per channel, in float64, rounded once to float32."""
    mean = np.asarray([123.675, 116.28, 103.53]).reshape(1, 3, 1, 1)
    std = np.asarray([58.395, 57.12, 57.375]).reshape(1, 3, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)


PREPROC = [
    # The defaults are x / 127.5 - 1: the same float32 operations in the same order as the host
    # preprocessing, so bit-identical (module docstring): tolerance 0.
    ("defaults, NCHW", "preproc-fold", host_preprocessing, False, 0.0, OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Relu (x)
        }""", OPSET13 + """
        g (uint8[1,3,8,8] x) => (float[1,3,8,8] y)
        <float[1,3,1,1] scale = {127.5, 127.5, 127.5}, float[1,3,1,1] offset = {1.0, 1.0, 1.0}>
        {
          pixels = Cast <to = 1> (x)
          scaled = Div (pixels, scale)
          normalized = Sub (scaled, offset)
          y = Relu (normalized)
        }"""),
    # Per-channel ImageNet mean/std and an NHWC input: the offset is mean / scale, so the last
    # bit may differ from (p - mean) / scale: the declared bound, 1e-4.
    ("per-channel, NHWC", "preproc-fold(layout=nhwc,mean=[123.675,116.28,103.53],scale=[58.395,57.12,57.375])",
     imagenet_normalisation, True, 1e-4, OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Relu (x)
        }""", OPSET13 + """
        g (uint8[1,8,8,3] x) => (float[1,3,8,8] y)
        <float[1,3,1,1] scale = {58.395, 57.12, 57.375},
         float[1,3,1,1] offset = {2.1179039478302, 2.0357143878936768, 1.8044444322586060}>
        {
          nchw = Transpose <perm = [0, 3, 1, 2]> (x)
          pixels = Cast <to = 1> (nchw)
          scaled = Div (pixels, scale)
          normalized = Sub (scaled, offset)
          y = Relu (normalized)
        }"""),
]


@pytest.mark.parametrize("pipeline, host, nhwc, atol, before_text, after_text", [c[1:] for c in PREPROC],
                         ids=[c[0] for c in PREPROC])
def test_golden_preproc_fold(pipeline, host, nhwc, atol, before_text, after_text):
    before = model_from_text(before_text)
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 1
    assert_graph_equal(result, after_text)
    pixels = np.random.default_rng(0).integers(0, 256, (1, 3, 8, 8)).astype(np.uint8)
    on_host = {"x": host(pixels)}
    in_graph = {"x": pixels.transpose(0, 2, 3, 1) if nhwc else pixels}
    for (runtime, want), (_, got) in zip(outputs_in_both_runtimes(before, on_host),
                                         outputs_in_both_runtimes(result, in_graph)):
        np.testing.assert_allclose(got["y"], want["y"], rtol=0, atol=atol, err_msg=runtime)


# ---------------------------------------------------------------------------------------------
# postproc-fold: the output becomes uint8 pixels round(clip((y + 1) * 127.5, 0, 255)); decoded
# back (p / 127.5 - 1) they are within the declared bound, half an 8-bit step.

POSTPROC = [
    ("NCHW", "postproc-fold", False, OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Tanh (x)
        }""", OPSET13 + """
        g (float[1,3,8,8] x) => (uint8[1,3,8,8] y)
        <float one = {1.0}, float half_range = {127.5}, float low = {0.0}, float high = {255.0}>
        {
          t = Tanh (x)
          shifted = Add (t, one)
          scaled = Mul (shifted, half_range)
          clipped = Clip (scaled, low, high)
          rounded = Round (clipped)
          y = Cast <to = 2> (rounded)
        }"""),
    ("NHWC", "postproc-fold(layout=nhwc)", True, OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Tanh (x)
        }""", OPSET13 + """
        g (float[1,3,8,8] x) => (uint8[1,8,8,3] y)
        <float one = {1.0}, float half_range = {127.5}, float low = {0.0}, float high = {255.0}>
        {
          t = Tanh (x)
          shifted = Add (t, one)
          scaled = Mul (shifted, half_range)
          clipped = Clip (scaled, low, high)
          rounded = Round (clipped)
          pixels = Cast <to = 2> (rounded)
          y = Transpose <perm = [0, 2, 3, 1]> (pixels)
        }"""),
]


@pytest.mark.parametrize("pipeline, nhwc, before_text, after_text", [c[1:] for c in POSTPROC],
                         ids=[c[0] for c in POSTPROC])
def test_golden_postproc_fold(pipeline, nhwc, before_text, after_text):
    before = model_from_text(before_text)
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 1
    assert_graph_equal(result, after_text)
    [p] = build_pipeline(pipeline)
    [feed] = random_inputs(before)
    runs = zip(outputs_in_both_runtimes(before, feed), outputs_in_both_runtimes(result, feed))
    for (runtime, want), (_, got) in runs:
        pixels = got["y"].transpose(0, 3, 1, 2) if nhwc else got["y"]
        assert pixels.dtype == np.uint8
        y = want["y"]  # float32, the same operations in numpy: the same pixels exactly
        np.testing.assert_array_equal(pixels, np.round(np.clip((y + np.float32(1)) * np.float32(127.5), 0, 255)),
                                      err_msg=runtime)
        decoded = pixels.astype(np.float32) / np.float32(127.5) - np.float32(1)
        assert np.abs(decoded - y).max() <= p.bound().max_abs, runtime


# ---------------------------------------------------------------------------------------------
# fp16 (onnxruntime's converter, keep_io_types): weights become float16 (exact here: every
# weight is a float16 number), Casts at the float32 interface, blocked ops wrapped in Casts.
# The output is checked against the declared bound (cosine >= 0.99) and against float16
# precision (a few float16 ulps of the output's magnitude).

FP16 = [
    ("Conv with bias", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <float[1,2,3,3] w = $W, float[1] b = {0.5}>
        {
          y = Conv <pads = [1, 1, 1, 1]> (x, w, b)
        }""", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <float16[1,2,3,3] w = $W16, float16[1] b = $B16>
        {
          xh = Cast <to = 10> (x)
          yh = Conv <pads = [1, 1, 1, 1]> (xh, w, b)
          y = Cast <to = 1> (yh)
        }"""),
    # Resize is in the default block list: it runs in float32 between two Casts; the shared
    # constant k becomes one float16 initializer.
    ("blocked Resize stays float32", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}, float[1,2,1,1] k = {0.5, 2.0}>
        {
          m = Mul (x, k)
          r = Resize <mode = "linear"> (m, , scales)
          y = Mul (r, k)
        }""", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float16[1,2,1,1] k = $K16, float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          xh = Cast <to = 10> (x)
          mh = Mul (xh, k)
          m = Cast <to = 1> (mh)
          r = Resize <mode = "linear"> (m, , scales)
          rh = Cast <to = 10> (r)
          yh = Mul (rh, k)
          y = Cast <to = 1> (yh)
        }"""),
]


@pytest.mark.parametrize("before_text, after_text", [c[1:] for c in FP16], ids=[c[0] for c in FP16])
def test_golden_fp16(before_text, after_text):
    before = model_from_text(before_text.replace("$W", W))
    result, record = run_pass(before, "fp16")
    assert record.rewrites > 0
    assert_graph_equal(result, after_text.replace("$W16", f16(*W_VALUES)).replace("$B16", f16(0.5))
                       .replace("$K16", f16(0.5, 2.0)))
    feeds = random_inputs(before, seed=0, samples=2)
    assert_within_declared_bound(before, result, "fp16", feeds)
    assert_numerically_equal(before, result, feeds=feeds, atol=2.0**-8, rtol=2.0**-8)


# ---------------------------------------------------------------------------------------------
# int8: scales and zero points are calibrated, so the structure is compared without
# initializer values (the placeholder zeros below are not checked); numbers are checked
# against the declared bound (cosine >= 0.95) on the calibration images.

@pytest.fixture
def calibration(tmp_path):
    """An info file of four preprocessed 3x8x8 samples (CHW float32 .npy in [-1, 1])."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        np.save(tmp_path / f"sample{i}.npy", rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32))
        lines.append(f"{i} sample{i}.npy 8 8")
    info = tmp_path / "calib.info"
    info.write_text("\n".join(lines) + "\n")
    return info


def calibration_feeds(info) -> list[dict]:
    return [{"x": np.load(info.parent / f"sample{i}.npy")[None]} for i in range(4)]


def test_golden_int8_single_conv(calibration):
    before = model_from_text(OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,2,8,8] y)
        <float[2,3,1,1] w = {1.0, -0.5, 0.25, 0.5, 1.0, -1.0}, float[2] b = {0.1, -0.2}>
        {
          c = Conv (x, w, b)
          y = Relu (c)
        }""")
    pipeline = f"int8(data={calibration},keep_first_last=false)"
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 1 and record.reasons == []
    # Weights int8 per output channel (axis 0), bias int32 at scale x_scale * w_scale,
    # activations uint8 per tensor, the Conv's input and output each through a Q/DQ pair.
    assert_graph_equal(result, OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,2,8,8] y)
        <int32[2] b_q = {0, 0}, float[2] b_scale = {0, 0}, int32[2] b_zero = {0, 0},
         int8[2,3,1,1] w_q = {0, 0, 0, 0, 0, 0}, float[2] w_scale = {0, 0}, int8[2] w_zero = {0, 0},
         float x_scale = {0}, uint8 x_zero = {0}, float c_scale = {0}, uint8 c_zero = {0}>
        {
          b_dq = DequantizeLinear <axis = 0> (b_q, b_scale, b_zero)
          w_dq = DequantizeLinear <axis = 0> (w_q, w_scale, w_zero)
          x_q = QuantizeLinear (x, x_scale, x_zero)
          x_dq = DequantizeLinear (x_q, x_scale, x_zero)
          c = Conv (x_dq, w_dq, b_dq)
          c_q = QuantizeLinear (c, c_scale, c_zero)
          c_dq = DequantizeLinear (c_q, c_scale, c_zero)
          y = Relu (c_dq)
        }""", values=False)
    assert_within_declared_bound(before, result, pipeline, calibration_feeds(calibration))


THREE_CONVS = OPSET13 + """
    g (float[1,3,8,8] x) => (float[1,3,8,8] y)
    <float[3,3,1,1] w1 = {1, 0, 0, 0, 1, 0, 0, 0, 1},
     float[3,3,1,1] w2 = {0.5, 0.25, 0, 0, 0.5, 0.25, 0.25, 0, 0.5},
     float[3,3,1,1] w3 = {1, -1, 0, 0, 1, -1, -1, 0, 1}>
    {
      NAMES1 a = Conv (x, w1)
      NAMES2 b = Conv (a, w2)
      NAMES3 y = Conv (b, w3)
    }"""

THREE_CONVS_MIDDLE_QUANTISED = OPSET13 + """
    g (float[1,3,8,8] x) => (float[1,3,8,8] y)
    <int8[3,3,1,1] w2_q = {0, 0, 0, 0, 0, 0, 0, 0, 0}, float[3] w2_scale = {0, 0, 0}, int8[3] w2_zero = {0, 0, 0},
     float[3,3,1,1] w1 = {1, 0, 0, 0, 1, 0, 0, 0, 1},
     float a_scale = {0}, uint8 a_zero = {0}, float b_scale = {0}, uint8 b_zero = {0},
     float[3,3,1,1] w3 = {1, -1, 0, 0, 1, -1, -1, 0, 1}>
    {
      w2_dq = DequantizeLinear <axis = 0> (w2_q, w2_scale, w2_zero)
      a = Conv (x, w1)
      a_q = QuantizeLinear (a, a_scale, a_zero)
      a_dq = DequantizeLinear (a_q, a_scale, a_zero)
      b = Conv (a_dq, w2_dq)
      b_q = QuantizeLinear (b, b_scale, b_zero)
      b_dq = DequantizeLinear (b_q, b_scale, b_zero)
      y = Conv (b_dq, w3)
    }"""


def test_golden_int8_keeps_first_and_last_conv_in_float(calibration):
    before = model_from_text(THREE_CONVS.replace("NAMES1", "[conv1]").replace("NAMES2", "[conv2]")
                             .replace("NAMES3", "[conv3]"))
    pipeline = f"int8(data={calibration})"
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 1
    assert record.reasons == ["kept in float: conv1, conv3"]
    assert_graph_equal(result, THREE_CONVS_MIDDLE_QUANTISED, values=False)
    assert_within_declared_bound(before, result, pipeline, calibration_feeds(calibration))


def test_golden_int8_keeps_first_and_last_conv_in_float_when_nodes_are_unnamed(calibration):
    before = model_from_text(THREE_CONVS.replace("NAMES1 ", "").replace("NAMES2 ", "").replace("NAMES3 ", ""))
    result, record = run_pass(before, f"int8(data={calibration})")
    assert record.rewrites == 1  # once the quantiser excluded every unnamed Conv: nothing was quantised
    assert_graph_equal(result, THREE_CONVS_MIDDLE_QUANTISED, values=False)


# ---------------------------------------------------------------------------------------------
# Does not fire: the graph comes back unchanged, the record says so and says why.

NOT_FIRING = [
    ("fold-constants", "nothing constant, nothing dead", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] y)
        {
          y = Relu (x)
        }""", ["no constant or dead subgraph found"]),
    ("reflect2slice", "a constant Pad is not a reflect Pad", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "constant"> (x, pads)
        }""", ["no Pad with mode 'reflect'"]),
    ("reflect2slice", "pads computed at run time", OPSET13 + """
        g (float[1,2,5,6] x, int64[8] pads) => (float[?,?,?,?] y)
        {
          y = Pad <mode = "reflect"> (x, pads)
        }""", ["Pad: pads are not constant (run fold-constants first)"]),
    ("reflect2slice", "a reflect pad as wide as its axis", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,18] y)
        <int64[8] pads = {0, 0, 0, 6, 0, 0, 0, 6}>
        {
          y = Pad <mode = "reflect"> (x, pads)
        }""", ["Pad: pad 6 on axis 3 is not smaller than its size 6"]),
    ("reflect2const", "a constant Pad is not a reflect Pad", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,7,8] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}>
        {
          y = Pad <mode = "constant"> (x, pads)
        }""", ["no Pad with mode 'reflect'"]),
    ("resize-nearest", "already nearest", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,8,10] y)
        <float[4] scales = {1.0, 1.0, 2.0, 2.0}>
        {
          y = Resize <mode = "nearest"> (x, , scales)
        }""", ["Resize: already nearest: nothing to change"]),
    ("pad-conv-fusion", "a nonzero pad value", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}, float value = {1.0}, float[1,2,3,3] w = $W>
        {
          [pad] padded = Pad (x, pads, value)
          y = Conv (padded, w)
        }""", ["pad: pad value is 1, not 0"]),
    ("pad-conv-fusion", "the padded tensor has a second consumer", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y, float[1,2,7,8] z)
        <int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}, float[1,2,3,3] w = $W>
        {
          [pad] padded = Pad (x, pads)
          y = Conv (padded, w)
          z = Relu (padded)
        }""", ["pad: the Pad does not feed exactly one Conv"]),
    ("pad-conv-fusion", "the channel axis is padded", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,1,5,6] y)
        <int64[8] pads = {0, 1, 1, 1, 0, 0, 1, 1}, float[1,3,3,3] w = {0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                                      0, 0, 0, 0, 1, 0, 0, 0, 0,
                                                                      0, 0, 0, 0, 0, 0, 0, 0, 0}>
        {
          [pad] padded = Pad (x, pads)
          y = Conv (padded, w)
        }""", ["pad: batch or channel axes are padded"]),
    ("fp16out", "no float32 output", OPSET13 + """
        g (float[1,2,5,6] x) => (int64[4] s)
        {
          s = Shape (x)
        }""", ["output 's' is int64, not float32"]),
    ("static-batch", "the batch is already static", OPSET13 + """
        g (float[2,3,8,8] x) => (float[2,3,8,8] y)
        {
          y = Relu (x)
        }""", ["input 'x' already has static batch 2"]),
    ("opset", "already at the target opset", OPSET17 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Relu (x)
        }""", ["the model is already at opset 17"]),
    ("preproc-fold", "two channels: not an image", OPSET13 + """
        g (float[1,2,5,6] x) => (float[1,2,5,6] y)
        {
          y = Relu (x)
        }""", ["input 'x' is not a float32 N x C x H x W image with C 1 or 3"]),
    ("postproc-fold", "opset 10 has no Round", OPSET10 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Tanh (x)
        }""", ["opset 10 < 11 has no Round and no Clip bounds as inputs"]),
    ("fp16", "already float16", OPSET13 + """
        g (float[1,2,4,5] x) => (float[1,2,4,5] y)
        <float16[1,2,1,1] k = $K16>
        {
          h = Cast <to = 10> (x)
          m = Mul (h, k)
          y = Cast <to = 1> (m)
        }""", ["the model already has float16 weights"]),
    ("int8", "no convolution", OPSET13 + """
        g (float[1,3,8,8] x) => (float[1,3,8,8] y)
        {
          y = Relu (x)
        }""", ["no Conv, ConvTranspose node to quantise"]),
]


@pytest.mark.parametrize("pipeline, text, reasons", [(c[0], c[2], c[3]) for c in NOT_FIRING],
                         ids=[f"{c[0]}: {c[1]}" for c in NOT_FIRING])
def test_golden_does_not_fire(pipeline, text, reasons):
    text = text.replace("$W", W).replace("$K16", f16(0.5, 2.0))
    before = model_from_text(text)
    result, record = run_pass(before, pipeline)
    assert record.rewrites == 0 and not record.modified
    assert record.reasons == reasons
    assert_graph_equal(result, text)
