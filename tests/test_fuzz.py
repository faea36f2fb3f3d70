"""Differential fuzzing in the suite (issue 10): a short, deterministic budget of the generator and
oracle in tests/fuzzing.py (``benchmarks/fuzz.py`` runs the long campaign), and one minimal
regression test per defect the fuzzer found. Defects not fixed yet are marked
``xfail(strict=True)``: when a fix lands the test passes, the strict marker turns that into a
failure, and whoever fixed it removes the marker and the matching exclusion in ``KNOWN_BAD``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings

import fuzzing
from graphsurgeon_cg import Pass, PassResult, register_pass
from graphsurgeon_cg.check import CheckSettings, NumericChecker
from graphsurgeon_cg.core.errors import InputError
from graphsurgeon_cg.core.manager import PassManager
from graphsurgeon_cg.testing import assert_numerically_equal, model_from_text, run_pass

# --- the property test ---------------------------------------------------------------------------

# Known, not-yet-fixed defects: the corners (generator tags) the property test leaves out. Each has
# an xfail regression test below; remove the entry when its test flips.
ALL_PASSES: set[str] = set()
KNOWN_BAD: dict[str, set[str]] = {}
SUITE_PASSES = [spec for spec in fuzzing.PASSES if not spec.startswith("opset")] + \
    ["opset(version=11)", "opset(version=13)", "opset(version=21)"]
EXAMPLES = 25
# What the first block of each example is drawn from, so that a short budget reaches the pattern a
# pass rewrites (the campaign draws every block from the full mix).
FOCUS = {"reflect2slice": ("pad_reflect", "pad_conv", "if"), "reflect2const": ("pad_reflect", "pad_conv", "if"),
         "resize-nearest": ("resize",), "nearest-half-pixel": ("resize",), "pad-conv-fusion": ("pad_conv",),
         "int8": ("pad_conv", "conv"),
         "static-batch": ("pad", "if", "loop", "head"), "preproc-fold": ("pad", "conv", "unary"),
         "postproc-fold": ("conv", "resize", "unary"), "fp16": ("pad_conv", "conv", "resize")}


def excluded(spec: str) -> set[str]:
    corners = set(ALL_PASSES)
    for name in fuzzing.pass_names(spec):
        corners |= KNOWN_BAD.get(name, set())
    return corners


@pytest.mark.parametrize("spec", SUITE_PASSES)
def test_passes_hold_on_random_graphs(spec):
    """Every pass on random valid graphs: valid result, same interface, outputs equal (exact passes,
    ORT and onnx.reference within 1e-5) or within the declared bound (lossy ones), the caller's
    model untouched; a documented refusal is fine."""

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=fuzzing.cases(exclude=excluded(spec), focus=FOCUS.get(fuzzing.pass_names(spec)[-1], ())))
    def check(case):
        outcome = fuzzing.check_pass(case, spec)
        assert outcome.fine, (f"{spec}: {outcome.category}: {outcome.message}\n"
                              f"corners: {', '.join(sorted(case.tags))}\n{case.text}")

    check()


def test_generator_is_deterministic_and_valid():
    """The campaign's seeded generator: the same seed gives the same model, which is valid, and a
    recorded choice list replays to it."""
    first, again = fuzzing.generate(7), fuzzing.generate(7)
    assert first.text == again.text
    onnx.checker.check_model(first.model, full_check=True)
    assert fuzzing.replay(first.choices).text == first.text


@register_pass
class NegatesRelu(Pass):
    name = "test-fuzz-negates-relu"
    summary = "Relu -> Neg, declared exact (wrong on purpose)"
    exact = True

    def run(self, graph, ctx):
        for node in graph.nodes:
            if node.op == "Relu":
                node.op = "Neg"
        return PassResult(1)


def test_oracle_classifies_a_wrong_exact_pass_as_a_mismatch():
    """The oracle itself: an "exact" pass that changes numbers is a mismatch."""
    model = model_from_text('<ir_version: 8, opset_import: ["" : 13]>\n'
                            "g (float[1,3,4,4] x) => (float[1,3,4,4] y) { y = Relu(x) }")
    case = fuzzing.validate(fuzzing.Case(model, {"x": (1, 3, 4, 4)}, set(), []))
    outcome = fuzzing.check_pass(case, "test-fuzz-negates-relu")
    assert outcome.category == fuzzing.MISMATCH, outcome
    assert fuzzing.check_pass(case, "reflect2slice").category == fuzzing.NOT_APPLICABLE


# --- regression tests: defects the fuzzer found that were fixed while it was being built -----------

H13 = '<ir_version: 8, opset_import: ["" : 13]>'
IF_READS_OUTER_INITIALIZER = f"""{H13}
g (float[1,2,4] x) => (float[1,2,4] y) <bool c = {{0}}, float[1] w = {{2.0}}> {{
    y = If(c) <then_branch = t () => (float[1,2,4] a) {{ a = Neg(x) }},
               else_branch = e () => (float[1,2,4] b) {{ b = Mul(x, w) }}>
}}"""


def test_fold_constants_leaves_the_callers_model_alone():
    """Inlining an If with a constant condition renamed the caller's initializer (w -> w_subg_0_e),
    leaving the caller's model invalid."""
    model = model_from_text(IF_READS_OUTER_INITIALIZER)
    new, _ = run_pass(model, "fold-constants")
    assert [t.name for t in model.graph.initializer] == ["c", "w"]
    onnx.checker.check_model(model, full_check=True)
    assert_numerically_equal(model_from_text(IF_READS_OUTER_INITIALIZER), new, atol=0)


def test_fold_constants_on_an_if_with_a_constant_condition_passes_the_numeric_check():
    """The numeric check then ran the corrupted original ('ONNX Runtime cannot load the model'), so
    ``cgsurg apply --passes fold-constants`` exited 2 on a valid model."""
    model = model_from_text(IF_READS_OUTER_INITIALIZER)
    result = PassManager("fold-constants", instruments=[NumericChecker(CheckSettings())]).run(model)
    assert result.check.ok


@pytest.mark.parametrize("spec", ["fp16out", "static-batch(batch=2)", "reflect2const"])
def test_initializer_inputs_keep_their_order(spec):
    """Initializers listed as inputs were put back in the order of the exported initializers: the
    inputs [x, c, pads] became [x, pads, c] (callers that bind by position feed the wrong one)."""
    model = model_from_text(f"""{H13}
        g (float[N,3,4] x, bool c, int64[6] pads) => (float[N,3,5] y)
          <bool c = {{0}}, int64[6] pads = {{0,0,0,0,0,1}}> {{
            p = Pad<mode="reflect">(x, pads)
            y = If(c) <then_branch = t () => (float[N,3,5] a) {{ a = Identity(p) }},
                       else_branch = e () => (float[N,3,5] b) {{ b = Neg(p) }}>
        }}""")
    new, record = run_pass(model, spec)
    assert record.modified
    assert [i.name for i in new.graph.input] == ["x", "c", "pads"]


@pytest.mark.parametrize("text, spec", [
    ('<ir_version: 8, opset_import: ["" : 18]>\n g (float[1,2,4] x) => (float[1,2,4] y) { y = Identity(x) }',
     "opset(version=11)"),
    ('<ir_version: 8, opset_import: ["" : 18]>\n g (float[1,2,4] x) => (float[1,2,5] y) '
     "<int64[6] pads = {0,0,0,0,0,1}> { y = Pad(x, pads) }", "opset(version=17)"),
    ('<ir_version: 8, opset_import: ["" : 18]>\n g (float[1,3,4,4] x) => (float[1,3,8,8] y) '
     '<float[2] s = {2.0, 2.0}> { y = Resize<mode="nearest", axes=[2, 3]>(x, "", s) }', "opset(version=13)"),
], ids=["identity-18-to-11", "pad-18-to-17", "resize-axes-18-to-13"])
def test_opset_down_conversion_is_exact_or_refused(text, spec):
    """A conversion the converter has no adapter for failed with onnx's C++ assertion (exit 1)."""
    model = model_from_text(text)
    try:
        new, _ = run_pass(model, spec)
    except InputError:
        return  # a one-line refusal (exit 2) is a fine answer
    assert_numerically_equal(model, new, atol=1e-5)


@pytest.mark.parametrize("version", [13, 18, 21])
def test_opset_upgrade_of_a_resize_with_sizes_and_an_overridable_empty_scales(version):
    """Found by benchmarks/fuzz.py --graphs 400 --seed 1: the upgraded Resize kept its empty scales
    operand, an initializer listed as an input, and ORT refused to load it ('Either sizes or scales
    must be provided, but not both')."""
    model = model_from_text("""<ir_version: 6, opset_import: ["" : 11]>
        g (float[1,3,4] x, float[0] roi, float[0] scales, int64[3] sizes) => (float[1,3,8] y)
          <float[0] roi = {}, float[0] scales = {}, int64[3] sizes = {1,3,8}> {
            y = Resize<mode="nearest">(x, roi, scales, sizes) }""")
    new, _ = run_pass(model, f"opset(version={version})")
    assert [i.name for i in new.graph.input] == ["x", "roi", "scales", "sizes"]
    onnx.checker.check_model(new, full_check=True)
    assert_numerically_equal(model, new, atol=0)


@pytest.mark.parametrize("text", [
    """<ir_version: 5, opset_import: ["" : 10]>
       g (float16[1,2,4] x) => (float16[1,2,5] y) { y = Pad<pads=[0,0,0,0,0,1]>(x) }""",
    """<ir_version: 5, opset_import: ["" : 10]>
       g (double[1,2,4] x) => (double[1,2,5] y) { y = Pad<pads=[0,0,0,0,0,1], value=1.5>(x) }""",
    """<ir_version: 5, opset_import: ["" : 10]>
       g (double[1,2,4] x, bool c) => (double[1,2,5] y) {
           y = If(c) <then_branch = t () => (double[1,2,5] a) { a = Pad<pads=[0,0,0,0,0,1]>(x) },
                      else_branch = e () => (double[1,2,5] b) { b = Pad<pads=[0,0,1,0,0,0]>(x) }> }""",
], ids=["float16", "float64-value", "float64-in-if"])
def test_opset_upgrades_pad2_on_non_float32_data(text):
    """The upgraded Pad got a float32 constant_value (ORT: 'Type parameter (T) of Optype (Pad) bound
    to different types'; inside an If the result failed the checker)."""
    model = model_from_text(text)
    new, _ = run_pass(model, "opset(version=11)")
    onnx.checker.check_model(new, full_check=True)
    feeds = fuzzing.feeds_for(fuzzing.Case(model, {"x": (1, 2, 4), "c": ()}, set(), []))
    assert_numerically_equal(model, new, feeds, atol=0)


# --- regression tests: defects the fuzzer found that are not fixed yet ------------------------------

def test_fold_constants_counts_an_inlined_if():
    model = model_from_text(f"""{H13}
        g (float[1,2,4] x) => (float[1,2,4] y) <bool c = {{1}}> {{
            y = If(c) <then_branch = t () => (float[1,2,4] a) {{ a = Neg(x) }},
                       else_branch = e () => (float[1,2,4] b) {{ b = Relu(x) }}>
        }}""")
    new, record = run_pass(model, "fold-constants")
    assert [n.op_type for n in new.graph.node] == ["Neg"]
    assert record.rewrites >= 1 and not record.reasons, (record.rewrites, record.reasons)


# Initializers also listed as graph inputs (keep_initializers_as_inputs exports; IR < 4 requires it).
CONSUMED_INITIALIZER_INPUTS = {
    "reflect2slice": f"""{H13}
        g (float[1,2,4] x, int64[6] pads) => (float[1,2,5] y) <int64[6] pads = {{0,0,0,0,0,1}}> {{
            y = Pad<mode="reflect">(x, pads) }}""",
    "pad-conv-fusion": f"""{H13}
        g (float[1,2,4] x, int64[6] pads) => (float[1,1,5] y)
          <int64[6] pads = {{0,0,0,0,0,1}}, float[1,2,1] w = {{1.0, 2.0}}> {{
            p = Pad(x, pads)  y = Conv(p, w) }}""",
    "fold-constants": f"""{H13}
        g (float[1,2,4] x, float[1] w) => (float[1,2,4] y) <float[1] w = {{2.0}}, float[1] v = {{3.0}}> {{
            s = Add(w, v)  y = Mul(x, s) }}""",
}


@pytest.mark.parametrize("spec", sorted(CONSUMED_INITIALIZER_INPUTS))
def test_initializer_inputs_consumed_by_a_pass_stay_inputs(spec):
    model = model_from_text(CONSUMED_INITIALIZER_INPUTS[spec])
    new, _ = run_pass(model, spec)
    assert [i.name for i in new.graph.input] == [i.name for i in model.graph.input]
    onnx.checker.check_model(new, full_check=True)
    assert_numerically_equal(model, new, atol=1e-5)


def test_an_overridden_initializer_input_still_overrides():
    """From IR 4 an initializer listed as an input is a default the caller may override: folding
    it into the constant it feeds would bake the default in."""
    model = model_from_text(CONSUMED_INITIALIZER_INPUTS["fold-constants"])
    new, record = run_pass(model, "fold-constants")
    assert record.rewrites == 0 and [t.name for t in new.graph.initializer] == ["w", "v"]
    x = np.arange(8, dtype=np.float32).reshape(1, 2, 4)
    assert_numerically_equal(model, new, [{"x": x, "w": np.array([5.0], np.float32)}, {"x": x}])


def test_before_ir4_initializers_are_constants_to_fold():
    """Before IR 4 every initializer had to be an input: listing one says nothing, it folds."""
    text = CONSUMED_INITIALIZER_INPUTS["fold-constants"].replace("ir_version: 8", "ir_version: 3").replace(
        "float[1] w) =>", "float[1] w, float[1] v) =>")
    model = model_from_text(text)
    assert model.ir_version == 3
    new, record = run_pass(model, "fold-constants")
    assert record.rewrites == 1 and [i.name for i in new.graph.input][0] == "x"
    assert_numerically_equal(model, new)


def test_preproc_fold_leaves_a_weight_listed_as_an_input_alone():
    """Found by benchmarks/fuzz.py (seed 0, 1000 graphs): a [1,3,1,1] Conv weight listed as an input
    looked like an image; preproc-fold made it a uint8 input and the float default clashed with it."""
    model = model_from_text(f"""{H13}
        g (float[1,3,4,4] x, float[1,3,1,1] w) => (float[1,1,4,4] y) <float[1,3,1,1] w = {{0.1, -0.2, 0.3}}> {{
            y = Conv(x, w) }}""")
    new, record = run_pass(model, "preproc-fold")
    assert record.rewrites == 1 and any("'w' has a default value" in r for r in record.reasons)
    types = {i.name: i.type.tensor_type.elem_type for i in new.graph.input}
    assert types == {"x": onnx.TensorProto.UINT8, "w": onnx.TensorProto.FLOAT}
    onnx.checker.check_model(new, full_check=True)


def _calibration(folder, shape) -> str:
    rng = np.random.default_rng(0)
    for k in range(4):
        np.save(folder / f"s{k}.npy", rng.uniform(-1, 1, shape).astype(np.float32))
    info = folder / "calib.info"
    info.write_text("".join(f"{k} s{k}.npy {shape[-1]} {shape[-2]}\n" for k in range(4)))
    return str(info)


def test_initializer_inputs_survive_int8(tmp_path):
    model = model_from_text(f"""{H13}
        g (float[1,3,4,4] x, float[1,3,1,1] w) => (float[1,1,4,4] y) <float[1,3,1,1] w = {{0.1, -0.2, 0.3}}> {{
            y = Conv(x, w) }}""")
    new, _ = run_pass(model, "int8(min_cos=0.0)", data=_calibration(tmp_path, (3, 4, 4)))
    assert [i.name for i in new.graph.input] == ["x", "w"]


@pytest.mark.parametrize("spec", ["fp16out", "static-batch(batch=2)"])
def test_initializer_inputs_read_in_a_subgraph_stay_inputs(spec):
    model = model_from_text(f"""{H13}
        g (float[N,2,4] x, bool c, int64[6] pads) => (float[N,2,5] y) <int64[6] pads = {{0,0,0,0,0,1}}> {{
            r = Relu(x)
            y = If(c) <then_branch = t () => (float[N,2,5] a) {{ a = Pad<mode="edge">(r, pads) }},
                       else_branch = e () => (float[N,2,5] b) {{ b = Pad(r, pads) }}>
        }}""")
    new, record = run_pass(model, spec)
    assert record.modified
    assert [i.name for i in new.graph.input] == ["x", "c", "pads"]


def test_int8_calibrates_a_nearly_constant_activation(tmp_path):
    model = model_from_text(f"""{H13}
        g (float[1,3,4,4] x) => (float[1,1,4,4] y) <float[1] e = {{1e-7}}, float[1] h = {{-0.1}},
                                                    float[1,3,1,1] w = {{0.1, -0.2, 0.3}}> {{
            s = Mul(x, e)  u = Add(s, h)  y = Conv(u, w) }}""")
    try:
        new, record = run_pass(model, "int8(min_cos=0.0)", data=_calibration(tmp_path, (3, 4, 4)))
    except InputError:
        return  # a one-line refusal naming the tensor would do
    assert record.rewrites == 1
    onnx.checker.check_model(new, full_check=True)


def test_reflect2slice_reaches_pads_inside_an_if():
    model = model_from_text(f"""{H13}
        g (float[1,2,4] x, bool c) => (float[1,2,5] y) <int64[6] pads = {{0,0,0,0,0,1}}> {{
            y = If(c) <then_branch = t () => (float[1,2,5] a) {{ a = Pad<mode="reflect">(x, pads) }},
                       else_branch = e () => (float[1,2,5] b) {{ b = Pad<mode="reflect">(x, pads) }}>
        }}""")
    new, record = run_pass(model, "reflect2slice")
    subgraph_pads = [n for node in new.graph.node for a in node.attribute if a.type == onnx.AttributeProto.GRAPH
                     for n in a.g.node if n.op_type == "Pad"]
    said_why = any("subgraph" in r or "branch" in r for r in record.reasons)
    assert not subgraph_pads or said_why, record.reasons
    assert record.rewrites == 2
    x = np.random.default_rng(0).standard_normal((1, 2, 4)).astype(np.float32)
    for cond in (True, False):
        assert_numerically_equal(model, new, feeds=[{"x": x, "c": np.array(cond)}])
