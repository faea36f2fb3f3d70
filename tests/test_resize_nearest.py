import numpy as np
import onnx
from onnx import helper

from graphsurgeon_cg.check.metrics import pixel_cosine

from models import BILINEAR, OPSET11, float_input, folded, image_feeds, make_model, ops, ort_run, run_pass


def _attrs(model, op="Resize"):
    return [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
            for n in model.graph.node if n.op_type == op]


def test_linear_becomes_nearest_round_prefer_ceil_keeping_coordinates():
    model = folded(BILINEAR)
    before = _attrs(model)
    new, record = run_pass(model, "resize-nearest(min_cos=0.5)")
    assert record.rewrites == ops(model)["Resize"] > 0  # every bilinear Resize
    for old, attrs in zip(before, _attrs(new)):
        assert attrs["mode"] == b"nearest"
        assert attrs["nearest_mode"] == b"round_prefer_ceil"
        assert attrs["coordinate_transformation_mode"] == old["coordinate_transformation_mode"]
        assert "cubic_coeff_a" not in attrs
    feeds = image_feeds()
    a, b = ort_run(model, feeds)[0], ort_run(new, feeds)[0]
    assert np.abs(a - b).max() > 1e-2  # lossy: really different
    assert pixel_cosine(a, b) >= 0.5  # within the declared bound


def test_options_set_nearest_and_coordinate_modes():
    new, _ = run_pass(folded(BILINEAR), "resize-nearest(nearest_mode=floor,coordinate_mode=asymmetric)")
    for attrs in _attrs(new):
        assert attrs["nearest_mode"] == b"floor"
        assert attrs["coordinate_transformation_mode"] == b"asymmetric"


def test_idempotent_and_noop_without_resize():
    once, _ = run_pass(folded(BILINEAR), "resize-nearest")
    _, again = run_pass(once, "resize-nearest")
    assert again.rewrites == 0
    assert not again.modified
    _, none = run_pass(folded(OPSET11), "resize-nearest")
    assert none.rewrites == 0
    assert "no Resize" in none.reasons[0]


def test_opset9_upsample_linear_becomes_nearest():
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear")
    model = make_model([node], [float_input("x", [1, 2, 4, 4])], [float_input("y", 4)], [scales], opset=9)
    new, record = run_pass(model, "resize-nearest(nearest_mode=round_prefer_floor)")
    assert record.rewrites == 1
    assert _attrs(new, "Upsample") == [{"mode": b"nearest"}]
    x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4)
    np.testing.assert_array_equal(ort_run(new, {"x": x})[0], x.repeat(2, axis=2).repeat(2, axis=3))
