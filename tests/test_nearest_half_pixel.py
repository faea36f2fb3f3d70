"""nearest-half-pixel: integer-factor nearest Resize rewritten so that no rounding mode can change it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphsurgeon_cg.passes.nearest_half_pixel import source_index
from graphsurgeon_cg.testing import assert_numerically_equal, model_from_text, run_pass
from thirdparty import model_path

RESIZE = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,2,5,3] x) => (float[1,2,{h},{w}] y) <float[0] roi = {{}}, float[4] scales = {{1.0, 1.0, {sh}, {sw}}}> {{
  y = Resize <mode = "nearest", coordinate_transformation_mode = "{coord}",
              nearest_mode = "{rounding}"> (x, roi, scales)
}}"""


def resize(sh=2.0, sw=2.0, coord="asymmetric", rounding="floor") -> onnx.ModelProto:
    return model_from_text(RESIZE.format(h=int(5 * sh), w=int(3 * sw), sh=sh, sw=sw, coord=coord, rounding=rounding))


def attrs(model: onnx.ModelProto) -> dict:
    (node,) = model.graph.node
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
@pytest.mark.parametrize("rounding", ["round_prefer_floor", "round_prefer_ceil"])
def test_half_pixel_picks_x_div_s_with_either_tie_rule(scale, rounding):
    for length in (1, 2, 7):
        x = np.arange(length * scale)
        assert np.array_equal(source_index(x, scale, length, "half_pixel", rounding), x // scale)
        assert np.array_equal(np.floor((x + 0.5) / scale), x // scale)  # TensorFlow's half_pixel_centers rule


def test_floor_and_ceil_would_not_do_so_the_pass_sets_round_prefer_ceil():
    x = np.arange(8)
    assert not np.array_equal(source_index(x, 2, 4, "half_pixel", "floor"), x // 2)
    assert not np.array_equal(source_index(x, 2, 4, "half_pixel", "ceil"), x // 2)


@pytest.mark.parametrize("scale", [2.0, 3.0, 4.0])
def test_pytorch_upsampling_is_rewritten_exactly(scale):
    model = resize(scale, scale)
    new, record = run_pass(model, "nearest-half-pixel")
    assert record.rewrites == 1
    assert attrs(new)["coordinate_transformation_mode"] == b"half_pixel"
    assert attrs(new)["nearest_mode"] == b"round_prefer_ceil"
    assert_numerically_equal(model, new)  # bit-exact, ORT and onnx.reference


@pytest.mark.parametrize("coord, rounding, reason", [
    ("asymmetric", "round_prefer_ceil", "does not pick x // 4"),  # asymmetric rounds 0.75 up
    ("align_corners", "floor", "does not pick x // 4"),
    ("tf_crop_and_resize", "floor", "is not rewritten"),
])
def test_index_maps_other_than_x_div_s_are_left_with_the_reason(coord, rounding, reason):
    _, record = run_pass(resize(4.0, 4.0, coord, rounding), "nearest-half-pixel")
    assert record.rewrites == 0 and reason in record.reasons[0]


def test_a_fractional_scale_is_left_alone():
    _, record = run_pass(resize(1.5, 2.0), "nearest-half-pixel")
    assert record.rewrites == 0 and "not all positive integers" in record.reasons[0]


def test_the_text_detector_s_six_upsamplings_become_portable_and_stay_bit_exact():
    model = onnx.load(str(model_path("det")))
    new, record = run_pass(model, "static-shape(shapes=x:1,3,64,64),nearest-half-pixel")
    assert record.rewrites == 6
    fixed, _ = run_pass(model, "static-shape(shapes=x:1,3,64,64)")
    rng = np.random.default_rng(0)
    assert_numerically_equal(fixed, new, [{"x": rng.standard_normal((1, 3, 64, 64)).astype(np.float32)}],
                             reference=False)
