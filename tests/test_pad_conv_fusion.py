import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from onnx.reference import ReferenceEvaluator

from models import (
    FIXTURE_PADS,
    OPSET11,
    float_input,
    folded,
    image_feeds,
    int64_init,
    make_model,
    max_abs,
    ops,
    ort_run,
    run_pass,
)


def pad_conv_model(shape, pads, conv_pads=None, kernel=3, stride=1, value=None, mode="constant", opset=13, seed=0):
    rng = np.random.default_rng(seed)
    c = shape[1]
    spatial = len(shape) - 2
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, c, *[kernel] * spatial)).astype(np.float32), "w")
    b = onnx.numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    inits = [int64_init("pads", pads), w, b]
    pad_inputs = ["x", "pads"]
    if value is not None:
        inits.append(onnx.numpy_helper.from_array(np.asarray(value, np.float32), "value"))
        pad_inputs.append("value")
    attrs = {"strides": [stride] * spatial}
    if conv_pads is not None:
        attrs["pads"] = conv_pads
    nodes = [helper.make_node("Pad", pad_inputs, ["p"], mode=mode, name="pad"),
             helper.make_node("Conv", ["p", "w", "b"], ["y"], name="conv", **attrs)]
    return make_model(nodes, [float_input("x", list(shape))], [float_input("y", len(shape))], inits, opset)


def _check(model, x, tol=1e-5):
    new, record = run_pass(model, "pad-conv-fusion")
    assert record.rewrites == 1
    assert "Pad" not in ops(new)
    expected = ort_run(model, {"x": x})[0]
    assert max_abs([expected], ort_run(new, {"x": x})) <= tol
    assert max_abs([expected], ReferenceEvaluator(new).run(None, {"x": x})) <= tol
    return new


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2), st.data())
def test_random_pads_fold_into_conv(spatial, data):
    shape = [1, 2] + [data.draw(st.integers(3, 7)) for _ in range(spatial)]
    begins = [data.draw(st.integers(0, 3)) for _ in range(spatial)]
    ends = [data.draw(st.integers(0, 3)) for _ in range(spatial)]
    conv_pads = data.draw(st.one_of(st.none(), st.lists(st.integers(0, 1), min_size=2 * spatial, max_size=2 * spatial)))
    stride = data.draw(st.integers(1, 2))
    model = pad_conv_model(shape, [0, 0, *begins, 0, 0, *ends], conv_pads, stride=stride)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    new = _check(model, x)
    conv = next(n for n in new.graph.node if n.op_type == "Conv")
    got = next(list(a.ints) for a in conv.attribute if a.name == "pads")
    base = conv_pads or [0] * (2 * spatial)
    assert got == [base[i] + (begins + ends)[i] for i in range(2 * spatial)]


def test_refusals_name_the_reason():
    cases = {
        "mode is reflect": pad_conv_model([1, 2, 5, 5], [0, 0, 1, 1, 0, 0, 1, 1], mode="reflect"),
        "pad value is 1": pad_conv_model([1, 2, 5, 5], [0, 0, 1, 1, 0, 0, 1, 1], value=1.0),
        "batch or channel": pad_conv_model([1, 2, 5, 5], [0, 1, 1, 1, 0, 0, 1, 1]),
        "negative pads": pad_conv_model([1, 2, 5, 5], [0, 0, -1, 1, 0, 0, 1, 1]),
    }
    for reason, model in cases.items():
        _, record = run_pass(model, "pad-conv-fusion")
        assert record.rewrites == 0, (reason, record.reasons)
        assert not record.modified, reason
        assert reason in record.reasons[0], (reason, record.reasons)


def test_refuses_pad_with_two_consumers():
    model = pad_conv_model([1, 2, 5, 5], [0, 0, 1, 1, 0, 0, 1, 1])
    model.graph.node.append(helper.make_node("Relu", ["p"], ["r"]))
    model.graph.output.append(float_input("r", 4))
    _, record = run_pass(model, "pad-conv-fusion")
    assert record.rewrites == 0
    assert "exactly one Conv" in record.reasons[0]


def test_after_reflect2const_on_fixture_exact_and_idempotent():
    model, _ = run_pass(folded(OPSET11), "reflect2const")
    new, record = run_pass(model, "pad-conv-fusion")
    assert record.rewrites == ops(model)["Pad"] == FIXTURE_PADS
    assert "Pad" not in ops(new)
    feeds = image_feeds()
    assert max_abs(ort_run(model, feeds), ort_run(new, feeds)) <= 1e-6
    _, again = run_pass(new, "pad-conv-fusion")
    assert again.rewrites == 0
    assert again.reasons == ["no Pad"]
