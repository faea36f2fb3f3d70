import numpy as np
import onnx
import pytest
from onnx import helper

from graphsurgeon_cg import NumericCheckFailed, apply
from graphsurgeon_cg.check.metrics import pixel_cosine

from models import (
    FIXTURE_PADS,
    OPSET11,
    float_input,
    folded,
    image_feeds,
    int64_init,
    make_model,
    max_abs,
    ort_run,
    pad_model,
    run_pass,
)


def _modes(model):
    return [a.s.decode() for n in model.graph.node if n.op_type == "Pad" for a in n.attribute if a.name == "mode"]


def test_reflect_pads_become_zero_constant_and_outputs_differ_within_bound():
    model = folded(OPSET11)
    new, record = run_pass(model, "reflect2const(min_cos=0.7)")
    assert record.rewrites == FIXTURE_PADS
    assert _modes(new) == ["constant"] * FIXTURE_PADS
    feeds = image_feeds()
    before, after = ort_run(model, feeds), ort_run(new, feeds)
    assert max_abs(before, after) > 1e-2  # lossy: really different
    assert pixel_cosine(before[0], after[0]) >= 0.7  # the bound the pipeline declared


def test_default_bound_is_breached_on_the_tiny_fixture_and_named(tmp_path):
    """At 64x64 the borders are a large share of the image: the 0.9 default gate trips."""
    out = tmp_path / "out.onnx"
    with pytest.raises(NumericCheckFailed) as info:
        apply(OPSET11, out, "fold-constants,reflect2const,reflect2slice")
    assert info.value.pass_name == "reflect2const"
    assert "reflect2const" in str(info.value)
    assert not out.exists()


def test_touches_only_pad_nodes():
    """The vendor script set every attribute named 'mode' (Resize too); this pass must not."""
    resize = helper.make_node("Resize", ["y", "", "scales"], ["z"], mode="linear")
    pad = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    model = make_model([pad, resize], [float_input("x", [1, 1, 4, 4])], [float_input("z", 4)],
                       [int64_init("pads", [0, 0, 1, 1, 0, 0, 1, 1]), scales])
    new, record = run_pass(model, "reflect2const")
    assert record.rewrites == 1
    resize_mode = [a.s for n in new.graph.node if n.op_type == "Resize" for a in n.attribute if a.name == "mode"]
    assert resize_mode == [b"linear"]


def test_nonzero_constant_value_input_is_replaced_by_zero():
    model = pad_model([1, 1, 4, 4], [0, 0, 1, 1, 0, 0, 1, 1], value=5.0)
    new, _ = run_pass(model, "reflect2const")
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    y = ort_run(new, {"x": x})[0]
    np.testing.assert_array_equal(y, np.pad(x, [(0, 0), (0, 0), (1, 1), (1, 1)]))


def test_idempotent_and_noop_without_reflect():
    once, _ = run_pass(folded(OPSET11), "reflect2const")
    _, record = run_pass(once, "reflect2const")
    assert record.rewrites == 0
    assert not record.modified
    assert "no Pad with mode 'reflect'" in record.reasons[0]
