import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx.reference import ReferenceEvaluator

from models import (
    ALL_FIXTURES,
    FIXTURE_PADS,
    OPSET11,
    folded,
    image_feeds,
    ops,
    ort_run,
    pad_extent,
    pad_model,
    run_pass,
)


def _expected_delta(model):
    """A reflect Pad becomes one reversed Slice per padded side and one Concat per padded axis."""
    axes, sides = pad_extent(model)
    return {"Concat": axes, "Pad": -ops(model)["Pad"], "Slice": sides}


def _rewrite_and_compare(model, x):
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert "Pad" not in ops(new)
    assert record.op_delta == _expected_delta(model)
    expected = ort_run(model, {"x": x})[0]
    np.testing.assert_array_equal(ort_run(new, {"x": x})[0], expected)
    np.testing.assert_array_equal(ReferenceEvaluator(new).run(None, {"x": x})[0], expected)
    return expected


@pytest.mark.parametrize("size", [1, 2, 3])
@pytest.mark.parametrize("axis", [2, 3])
def test_pad_sizes_one_two_three_on_h_and_w(size, axis):
    pads = [0] * 8
    pads[axis] = pads[axis + 4] = size
    x = np.random.default_rng(size).standard_normal((1, 2, 5, 6)).astype(np.float32)
    out = _rewrite_and_compare(pad_model(x.shape, pads), x)
    np.testing.assert_array_equal(out, np.pad(x, [(pads[i], pads[i + 4]) for i in range(4)], mode="reflect"))


def test_asymmetric_pads_and_the_largest_legal_pad():
    x = np.arange(2 * 4 * 5, dtype=np.float32).reshape(1, 2, 4, 5)
    pads = [0, 0, 3, 0, 0, 0, 1, 4]  # 3 = H-1 before, 4 = W-1 after: ends reach past index 0
    out = _rewrite_and_compare(pad_model(x.shape, pads), x)
    np.testing.assert_array_equal(out, np.pad(x, [(0, 0), (0, 0), (3, 1), (0, 4)], mode="reflect"))


shapes = st.lists(st.integers(2, 5), min_size=1, max_size=5)


@st.composite
def pad_cases(draw):
    shape = draw(shapes)
    rank = len(shape)
    pads = [draw(st.integers(0, n - 1)) for n in shape] + [draw(st.integers(0, n - 1)) for n in shape]
    opset = draw(st.sampled_from([11, 13, 17, 18, 21]))
    axes = None
    if opset >= 18 and draw(st.booleans()):  # the axes input: pad a subset, possibly negative axes
        chosen = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        axes = [a - rank if draw(st.booleans()) else a for a in chosen]
        pads = [pads[a] for a in chosen] + [pads[a + rank] for a in chosen]
    return shape, pads, opset, axes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pad_cases(), st.integers(0, 2**31))
def test_matches_ort_reference_and_numpy(case, seed):
    shape, pads, opset, axes = case
    if not any(pads):
        return
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    model = pad_model(shape, pads, opset=opset, axes=axes)
    out = _rewrite_and_compare(model, x)
    rank = len(shape)
    full = [0] * (2 * rank)
    for i, a in enumerate(axes if axes is not None else range(rank)):
        full[a % rank], full[a % rank + rank] = pads[i], pads[i + len(pads) // 2]
    np.testing.assert_array_equal(out, np.pad(x, [(full[i], full[i + rank]) for i in range(rank)], mode="reflect"))


def test_fixture_generators_bit_identical_and_idempotent():
    for path in ALL_FIXTURES:
        model = folded(path)
        new, record = run_pass(model, "reflect2slice")
        assert record.rewrites == FIXTURE_PADS, path.name
        assert "Pad" not in ops(new), path.name
        assert record.op_delta == _expected_delta(model), path.name
        feeds = image_feeds()
        for a, b in zip(ort_run(model, feeds), ort_run(new, feeds)):
            np.testing.assert_array_equal(a, b)
        _, again = run_pass(new, "reflect2slice")
        assert again.rewrites == 0
        assert not again.modified


def test_refuses_non_constant_pads_with_reason():
    model = onnx.load(str(OPSET11))  # pads still computed by a subgraph
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 0
    assert ops(new)["Pad"] == FIXTURE_PADS
    assert all("pads are not constant" in r for r in record.reasons)


def test_refuses_pad_not_smaller_than_axis():
    model = pad_model([1, 1, 3, 3], [0, 0, 3, 0, 0, 0, 0, 0])
    _, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 0
    assert "not smaller than its size 3" in record.reasons[0]


def test_noop_on_constant_pads():
    _, record = run_pass(pad_model([1, 1, 3, 3], [0, 0, 1, 1, 0, 0, 1, 1], mode="constant"), "reflect2slice")
    assert record.rewrites == 0
    assert record.reasons == ["no Pad with mode 'reflect'"]
