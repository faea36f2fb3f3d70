"""The float16 simulator (check/fp16sim.py) against onnx.reference run in float16: equal for
elementwise ops, within float16 ulps for Conv (the reference accumulates in float16, the
simulator in float32 as cube/tensor cores do), and overflow past 65,504 to inf in both."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from graphsurgeon_cg.check import fp16sim
from graphsurgeon_cg.check.session import make_session
from graphsurgeon_cg.core.float16 import as_float16

from models import make_model, ort_run, overflow_model

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the float16 reference


def _half(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT16, shape)


def elementwise() -> onnx.ModelProto:
    """float16 a, b -> ((a + b) * b - a) / b -> Relu: four roundings, each checked."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "b"], ["p"]),
             helper.make_node("Sub", ["p", "a"], ["d"]), helper.make_node("Div", ["d", "b"], ["q"]),
             helper.make_node("Relu", ["q"], ["y"])]
    return make_model(nodes, [_half("a", [64]), _half("b", [64])], [_half("y", [64])])


def _feeds(seed: int, scale: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    return {k: (rng.uniform(0.5, 3.0, 64) * scale).astype(np.float16) for k in ("a", "b")}


@pytest.mark.parametrize("optimize", [False, True])
def test_ort_keeps_the_rounding_casts(optimize):
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    got = make_session(model, optimize=optimize).run(None, {"x": np.array([70000, 1 + 2**-12, 65519], np.float32)})[0]
    assert got[0] == np.inf and got[1] == 1.0 and got[2] == 65504


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elementwise_rounding_equals_the_float16_reference(seed):
    model, feeds = elementwise(), _feeds(seed)
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = fp16sim.run_simulated(model, [feeds])[0]["y"]
    assert got.dtype == np.float16 and np.array_equal(got, want)
    # Computed in float32 once and rounded at the end, the same graph gives other numbers.
    once = ((feeds["a"].astype(np.float32) + feeds["b"]) * feeds["b"] - feeds["a"]) / feeds["b"]
    assert not np.array_equal(np.maximum(once, 0).astype(np.float16), want)


def test_overflow_becomes_inf_like_the_float16_reference():
    model, feeds = elementwise(), _feeds(0, scale=200.0)  # (a + b) * b passes 65,504
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    got = fp16sim.run_simulated(model, [feeds])[0]["y"]
    assert np.isinf(want).any()
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_array_equal(got[np.isfinite(want)], want[np.isfinite(want)])
    assert fp16sim.overflowing(model, [feeds]) == ["p"]


def test_conv_net_within_float16_ulps_of_the_reference_and_overflows_where_it_does():
    model = overflow_model(peak=30_000.0)  # in range: rounding only
    half = as_float16(model)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    want = ReferenceEvaluator(half).run(None, {"x": x})[0]
    got = fp16sim.run_simulated(half, [{"x": x}])[0]["y"]
    exact = ort_run(model, {"x": x})[0]
    # The reference accumulates Conv in float16: a few ulps of the output apart (3e-3 relative).
    np.testing.assert_allclose(got, want, rtol=4e-3, atol=4e-3 * np.abs(want).max())
    assert np.abs(got - exact).max() < np.abs(want - exact).max()  # float32 accumulation is closer

    over = as_float16(overflow_model())
    want = ReferenceEvaluator(over).run(None, {"x": x})[0]
    got = fp16sim.run_simulated(over, [{"x": x}])[0]["y"]
    assert not np.isfinite(want).all() and not np.isfinite(got).all()
    assert np.isfinite(ort_run(over, {"x": x})[0]).all()  # what ORT CPU shows without the simulator


def test_losses_name_the_overflow_and_a_kept_region_stays_float32():
    model = overflow_model()
    feeds = [{"x": np.random.default_rng(s).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)} for s in range(2)]
    losses = {t.tensor: t for t in fp16sim.tensor_losses(model, as_float16(model), feeds)}
    assert losses["big"].overflow and losses["big"].node == "conv2" and losses["big"].peak > 65504
    assert not losses["t_conv1"].overflow and losses["t_conv1"].cos > 0.9999
    kept = as_float16(model, keep_nodes=["conv2", "relu2", "conv3"])
    got = fp16sim.run_simulated(kept, feeds)
    exact = [ort_run(model, f)[0] for f in feeds]
    assert all(np.abs(g["y"] - e).max() < 1e-2 * np.abs(e).max() for g, e in zip(got, exact))
    assert fp16sim.overflowing(kept, feeds) == []


def test_bfloat16_rounds_each_tensor_to_bfloat16():
    model, feeds = elementwise(), _feeds(4)
    got = fp16sim.run_simulated(model, [feeds], rounding="bfloat16")[0]["y"].astype(np.float32)
    bf = ml_dtypes.bfloat16
    a, b = (feeds[k].astype(np.float32) for k in ("a", "b"))
    s = (a + b).astype(bf).astype(np.float32)
    p = (s * b).astype(bf).astype(np.float32)
    d = (p - a).astype(bf).astype(np.float32)
    q = (d / b).astype(bf).astype(np.float32)
    np.testing.assert_array_equal(got, np.maximum(q, 0).astype(np.float16).astype(np.float32))
