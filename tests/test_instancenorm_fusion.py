"""instancenorm-fusion: each exporter variant of decomposed instance norm becomes one
InstanceNormalization (golden graph, ORT and onnx.reference agree within float rounding), and
each near miss is left alone with its reason."""

import numpy as np
import pytest

from graphsurgeon_cg.testing import (
    assert_graph_equal,
    assert_numerically_equal,
    check_pass_contract,
    model_from_text,
    run_pass,
)

OPSET13 = '<ir_version: 8, opset_import: ["" : 13]>'
OPSET18 = '<ir_version: 8, opset_import: ["" : 18]>'
CONSTANTS = ("float two = {2.0}, float eps = {1e-5}, float one = {1.0}, float mhalf = {-0.5}, "
             "int64[2] axes = {2, 3}")
MEAN = {"attr": "ReduceMean <axes = [2, 3]> (INPUT)", "negative": "ReduceMean <axes = [-1, -2]> (INPUT)",
        "input": "ReduceMean (INPUT, axes)", "global-pool": "GlobalAveragePool (INPUT)"}
SQUARE = {"pow": "sq = Pow (d, two)", "mul": "sq = Mul (d, d)"}
NORMALISE = {
    "sqrt-div": "sd = Sqrt (ve)  n = Div (d, sd)",
    "reciprocal": "sd = Sqrt (ve)  r = Reciprocal (sd)  n = Mul (r, d)",
    "one-over": "sd = Sqrt (ve)  r = Div (one, sd)  n = Mul (d, r)",
    "pow-half": "r = Pow (ve, mhalf)  n = Mul (d, r)",
}
AFFINE = {  # (initializers, nodes from n to y, scale, bias of the fused node)
    "none": ("", "y = Identity (n)", "1.0, 1.0, 1.0", "0.0, 0.0, 0.0"),
    "chw": ("float[3,1,1] s = {0.5, 2.0, -1.0}, float[3,1,1] b = {0.1, 0.2, 0.3}",
            "sc = Mul (n, s)  y = Add (sc, b)", "0.5, 2.0, -1.0", "0.1, 0.2, 0.3"),
    "nchw-swapped": ("float[1,3,1,1] s = {0.5, 2.0, -1.0}, float[1,3,1,1] b = {0.1, 0.2, 0.3}",
                     "sc = Mul (s, n)  y = Add (b, sc)", "0.5, 2.0, -1.0", "0.1, 0.2, 0.3"),
    "scale-only": ("float[3,1,1] s = {0.5, 2.0, -1.0}", "y = Mul (n, s)", "0.5, 2.0, -1.0", "0.0, 0.0, 0.0"),
    "bias-only": ("float[1,3,1,1] b = {0.1, 0.2, 0.3}", "y = Add (n, b)", "1.0, 1.0, 1.0", "0.1, 0.2, 0.3"),
}


def decomposed(mean="attr", square="pow", normalise="sqrt-div", affine="chw", eps="ve = Add (v, eps)",
               inputs="float[2,3,4,5] x", outputs="float[2,3,4,5] y", extra="") -> str:
    inits, tail = AFFINE[affine][:2]
    header = OPSET18 if mean == "input" else OPSET13
    return f"""{header}
        g ({inputs}) => ({outputs}) <{CONSTANTS}{', ' + inits if inits else ''}> {{
          m = {MEAN[mean].replace('INPUT', 'x')}
          d = Sub (x, m)
          {SQUARE[square]}
          v = {MEAN[mean].replace('INPUT', 'sq')}
          {eps}
          {NORMALISE[normalise]}
          {tail}
          {extra}
        }}"""


def fused(affine="chw", eps="1e-5", header=OPSET13) -> str:
    scale, bias = AFFINE[affine][2:]
    tail = "y = InstanceNormalization <epsilon = EPS> (x, s, b)".replace("EPS", eps)
    return f"""{header}
        g (float[2,3,4,5] x) => (float[2,3,4,5] y) <float[3] s = {{{scale}}}, float[3] b = {{{bias}}}> {{
          {tail}
        }}"""


def _fuse(text: str, pipeline: str = "instancenorm-fusion"):
    model = model_from_text(text)
    new, record = run_pass(model, pipeline)
    return model, new, record


@pytest.mark.parametrize("mean", sorted(MEAN))
@pytest.mark.parametrize("square", sorted(SQUARE))
@pytest.mark.parametrize("normalise", sorted(NORMALISE))
def test_every_exporter_form_becomes_one_instance_norm(mean, square, normalise):
    model, new, record = _fuse(decomposed(mean, square, normalise))
    assert record.rewrites == 1 and record.reasons == []
    assert_graph_equal(new, fused(header=OPSET18 if mean == "input" else OPSET13))
    assert_numerically_equal(model, new, atol=1e-5)


@pytest.mark.parametrize("affine", sorted(AFFINE))
def test_constant_scale_and_bias_are_absorbed_ones_and_zeros_without(affine):
    model, new, record = _fuse(decomposed(affine=affine))
    assert record.rewrites == 1
    if affine == "none":  # the Identity that produced y stays; the fused node feeds it
        assert [n.op_type for n in new.graph.node] == ["InstanceNormalization", "Identity"]
    else:
        assert_graph_equal(new, fused(affine))
    assert_numerically_equal(model, new, atol=1e-5)


def test_eps_first_in_the_add_and_no_eps_at_all():
    model, new, _ = _fuse(decomposed(eps="ve = Add (eps, v)"))
    assert_graph_equal(new, fused())
    model, new, _ = _fuse(decomposed(eps="ve = Identity (v)").replace("ve = Identity (v)", "").replace(
        "Sqrt (ve)", "Sqrt (v)"))
    assert_graph_equal(new, fused(eps="0.0"))
    assert_numerically_equal(model, new, atol=1e-5)


def test_rank_three_input_normalises_over_its_one_spatial_axis():
    text = decomposed(affine="none", inputs="float[2,3,7] x", outputs="float[2,3,7] y").replace(
        "axes = [2, 3]", "axes = [2]")
    model, new, record = _fuse(text)
    assert record.rewrites == 1
    assert [n.op_type for n in new.graph.node] == ["InstanceNormalization", "Identity"]
    assert_numerically_equal(model, new, atol=1e-5)


def test_a_scale_computed_at_run_time_stays_a_mul_after_a_plain_instance_norm():
    """Conditional instance norm before freeze-inputs: the scale is computed from an input."""
    text = decomposed(inputs="float[2,3,4,5] x, float[1,3,1,1] s").replace(", float[3,1,1] s = {0.5, 2.0, -1.0}", "")
    model, new, record = _fuse(text)
    assert record.rewrites == 1
    assert_graph_equal(new, f"""{OPSET13}
        g (float[2,3,4,5] x, float[1,3,1,1] s) => (float[2,3,4,5] y)
        <float[3] ones = {{1.0, 1.0, 1.0}}, float[3] zeros = {{0.0, 0.0, 0.0}}, float[3,1,1] b = {{0.1, 0.2, 0.3}}> {{
          n = InstanceNormalization <epsilon = 1e-5> (x, ones, zeros)
          sc = Mul (n, s)
          y = Add (sc, b)
        }}""")
    assert_numerically_equal(model, new, atol=1e-5)


def test_per_pixel_scale_is_not_absorbed():
    text = decomposed(affine="scale-only").replace("float[3,1,1] s = {0.5, 2.0, -1.0}",
                                                   "float[1,1,4,1] s = {0.5, 2.0, -1.0, 3.0}")
    model, new, record = _fuse(text)
    assert record.rewrites == 1
    assert [n.op_type for n in new.graph.node] == ["InstanceNormalization", "Mul"]
    assert_numerically_equal(model, new, atol=1e-5)


@pytest.mark.parametrize("case, text, reason", [
    ("mean over channels", decomposed().replace("axes = [2, 3]", "axes = [1]"),
     "ReduceMean: ReduceMean over axes [1] is not instance norm (needs axes [2, 3])"),
    ("eps is an input", decomposed(inputs="float[2,3,4,5] x, float eps").replace("float eps = {1e-5}, ", ""),
     "ReduceMean: eps not a constant"),
    ("the mean is also an output", decomposed(outputs="float[2,3,4,5] y, float[2,3,1,1] m"),
     "ReduceMean: the mean is used elsewhere"),
    ("the mean feeds another node", decomposed(outputs="float[2,3,4,5] y, float[2,3,1,1] z", extra="z = Relu (m)"),
     "ReduceMean: the mean is used elsewhere"),
    ("the variance is also an output", decomposed(outputs="float[2,3,4,5] y, float[2,3,1,1] v"),
     "ReduceMean: the variance (or variance + eps) is used elsewhere"),
    ("the centred input feeds another node",
     decomposed(outputs="float[2,3,4,5] y, float[2,3,4,5] z", extra="z = Relu (d)"),
     "ReduceMean: the centred input is used elsewhere"),
    ("cube, not square", decomposed().replace("float two = {2.0}", "float two = {3.0}"),
     "ReduceMean: the centred input is not squared once (Pow 2 or Mul by itself)"),
    ("a global average pool", f"""{OPSET13}
        g (float[2,3,4,5] x) => (float[2,3,1,1] y) {{ y = ReduceMean <axes = [2, 3]> (x) }}""",
     "ReduceMean: the mean is not subtracted from its input"),
    ("axes computed at run time", decomposed("input", inputs="float[2,3,4,5] x, int64[2] axes").replace(
        ", int64[2] axes = {2, 3}", ""), "ReduceMean: the axes are not constant (run fold-constants first)"),
    ("no ReduceMean", f"{OPSET13} g (float[2,3] x) => (float[2,3] y) {{ y = Relu (x) }}",
     "no ReduceMean or GlobalAveragePool (no decomposed instance norm)"),
])
def test_near_misses_are_left_alone_with_the_reason(case, text, reason):
    model, new, record = _fuse(text)
    assert record.rewrites == 0 and not record.modified, case
    assert reason in record.reasons, record.reasons


def test_two_patterns_in_a_row_and_the_pass_contract():
    text = f"""{OPSET13}
        g (float[2,3,4,5] x) => (float[2,3,4,5] y) <{CONSTANTS}> {{
          m = ReduceMean <axes = [2, 3]> (x)
          d = Sub (x, m)
          sq = Mul (d, d)
          v = ReduceMean <axes = [2, 3]> (sq)
          ve = Add (v, eps)
          sd = Sqrt (ve)
          n = Div (d, sd)
          h = Relu (n)
          m2 = ReduceMean <axes = [-2, -1]> (h)
          d2 = Sub (h, m2)
          sq2 = Pow (d2, two)
          v2 = ReduceMean <axes = [3, 2]> (sq2)
          ve2 = Add (eps, v2)
          r = Pow (ve2, mhalf)
          y = Mul (r, d2)
        }}"""
    model = model_from_text(text)
    record = check_pass_contract("instancenorm-fusion", model)
    assert record.rewrites == 2 and record.op_delta["InstanceNormalization"] == 2
    new, _ = run_pass(model, "instancenorm-fusion")
    assert [n.op_type for n in new.graph.node] == ["InstanceNormalization", "Relu", "InstanceNormalization"]
    assert_numerically_equal(model, new, atol=1e-5)


def test_float_rounding_stays_within_the_declared_bound_on_large_offsets():
    """A feature map far from zero (mean 100, spread 1): the kernel's other summation order
    is where the rounding shows."""
    model, new, _ = _fuse(decomposed())
    x = (100 + np.random.default_rng(0).standard_normal((2, 3, 4, 5))).astype(np.float32)
    assert_numerically_equal(model, new, [{"x": x}], atol=1e-4, rtol=1e-4)
