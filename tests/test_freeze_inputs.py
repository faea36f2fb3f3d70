"""freeze-inputs: an input becomes a constant (and leaves the interface), the subgraph that
depends on it folds, the numeric check compares the original fed the frozen value; every
bad value is refused in one line naming the pass."""

import numpy as np
import pytest

from graphsurgeon_cg import InputError, PassManager, build_pipeline, parse_pipeline
from graphsurgeon_cg.check import CheckSettings, NumericChecker
from graphsurgeon_cg.check.session import make_session, run_session
from graphsurgeon_cg.passes.freeze_inputs import FreezeInputs
from graphsurgeon_cg.testing import assert_graph_equal, check_pass_contract, model_from_text, run_pass

# A conditional scale: style weights w (4 styles) pick a per-channel scale from a table.
CONDITIONAL = """<ir_version: 8, opset_import: ["" : 13]>
    g (float[1,3,4,4] x, float[4] w) => (float[1,3,4,4] y)
    <float[4,3] table = {1, 2, 3,  4, 5, 6,  7, 8, 9,  10, 11, 12}, int64[4] shape = {1, 3, 1, 1}> {
      s = MatMul (w, table)
      s4 = Reshape (s, shape)
      y = Mul (x, s4)
    }"""
X = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4) / 10


def _frozen_output(model, values: str, w: np.ndarray):
    """The original fed ``w`` and the model frozen by ``values``, fed only x."""
    new, record = run_pass(model, f"freeze-inputs(values={values}),fold-constants")
    want = run_session(make_session(model), [{"x": X, "w": w}])[0]["y"]
    got = run_session(make_session(new), [{"x": X}])[0]["y"]
    return new, want, got


@pytest.mark.parametrize("values, w", [
    ("w:onehot:2", [0, 0, 1, 0]),
    ("w:0.25", [0.25] * 4),
    ("w:-1", [-1] * 4),
    ("w:0.1;0.2;0.3;0.4", [0.1, 0.2, 0.3, 0.4]),
    ("[w:onehot:0]", [1, 0, 0, 0]),
])
def test_a_frozen_input_folds_away_and_matches_the_original_at_that_value(values, w):
    model = model_from_text(CONDITIONAL)
    new, want, got = _frozen_output(model, values, np.asarray(w, np.float32))
    assert [i.name for i in new.graph.input] == ["x"]
    assert [n.op_type for n in new.graph.node] == ["Mul"]  # MatMul and Reshape folded
    np.testing.assert_array_equal(got, want)


def test_golden_freeze_alone_keeps_the_name_as_an_initializer():
    new, record = run_pass(model_from_text(CONDITIONAL), "freeze-inputs(values=w:onehot:1)")
    assert record.rewrites == 1 and record.op_delta == {}
    assert_graph_equal(new, """<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,4,4] x) => (float[1,3,4,4] y)
        <float[4] w = {0, 1, 0, 0}, float[4,3] table = {1, 2, 3,  4, 5, 6,  7, 8, 9,  10, 11, 12},
         int64[4] shape = {1, 3, 1, 1}> {
          s = MatMul (w, table)
          s4 = Reshape (s, shape)
          y = Mul (x, s4)
        }""")


def test_a_npy_file_of_the_declared_shape_and_dtype(tmp_path):
    path = tmp_path / "w.npy"
    w = np.asarray([0.5, 0, 0, 0.5], np.float32)
    np.save(path, w)
    new, want, got = _frozen_output(model_from_text(CONDITIONAL), f"w:{path}", w)
    np.testing.assert_array_equal(got, want)


def test_a_dynamic_input_takes_a_full_npy_and_refuses_a_scalar(tmp_path):
    model = model_from_text(CONDITIONAL.replace("float[4] w", "float[N] w").replace(
        "s = MatMul (w, table)", "s = ReduceSum <keepdims = 1> (w)").replace("int64[4] shape = {1, 3, 1, 1}",
                                                                               "int64[4] shape = {1, 1, 1, 1}"))
    with pytest.raises(InputError, match=r"freeze-inputs: input 'w' has dynamic shape \[N\]: give its full "
                                         r"value as a \.npy file"):
        run_pass(model, "freeze-inputs(values=w:1)")
    path = tmp_path / "w.npy"
    np.save(path, np.asarray([1, 2, 3], np.float32))
    new, _ = run_pass(model, f"freeze-inputs(values=w:{path}),fold-constants")
    np.testing.assert_allclose(run_session(make_session(new), [{"x": X}])[0]["y"], X * 6)


def test_input_names_may_hold_colons():
    """TensorFlow names inputs 'w:0': the longest input name followed by ':' is the name."""
    model = model_from_text(CONDITIONAL.replace("float[4] w", "float[4] w_0").replace("(w,", "(w_0,"))
    model.graph.input[1].name = "w:0"  # ONNX text cannot spell ':' in a name
    model.graph.node[0].input[0] = "w:0"
    new, record = run_pass(model, "freeze-inputs(values=w:0:onehot:3),fold-constants")
    assert [i.name for i in new.graph.input] == ["x"]
    want = run_session(make_session(model), [{"x": X, "w:0": np.asarray([0, 0, 0, 1], np.float32)}])[0]["y"]
    np.testing.assert_array_equal(run_session(make_session(new), [{"x": X}])[0]["y"], want)


def test_the_numeric_check_feeds_the_original_the_frozen_value():
    """Random check inputs for w would make every stage before the freeze disagree with it."""
    checker = NumericChecker(CheckSettings(), each_pass=True)
    result = PassManager("freeze-inputs(values=w:onehot:3),fold-constants", instruments=[checker]).run(
        model_from_text(CONDITIONAL))
    assert result.check.ok and result.check.outputs[0].max_abs == 0.0
    assert [r.check.outputs[0].max_abs for r in result.records] == [0.0, 0.0]


def test_the_pass_contract_and_already_frozen():
    model = model_from_text(CONDITIONAL)
    record = check_pass_contract("freeze-inputs(values=w:onehot:2)", model)
    assert record.rewrites == 1
    frozen, _ = run_pass(model, "freeze-inputs(values=w:onehot:2)")
    again, record = run_pass(frozen, "freeze-inputs(values=w:onehot:2)")
    assert record.rewrites == 0 and record.reasons == ["'w' is already frozen to this value"]
    with pytest.raises(InputError, match="freeze-inputs: 'w' is already a constant with other values"):
        run_pass(frozen, "freeze-inputs(values=w:onehot:1)")


def test_the_pipeline_prints_back_and_parses_again():
    [p] = build_pipeline("freeze-inputs(values=[w:onehot:2,x:0.5])")
    assert str(p) == "freeze-inputs(values=[w:onehot:2,x:0.5])"
    assert parse_pipeline(str(p))[0].options == (("values", ("w:onehot:2", "x:0.5")),)


@pytest.mark.parametrize("values, message", [
    ("q:1", r"freeze-inputs: no graph input named 'q' \(inputs: x, w\)"),
    ("w:onehot:4", "freeze-inputs: onehot:4 is out of range for input 'w' of 4 elements"),
    ("w:1;2;3", r"freeze-inputs: input 'w' of shape \[4\] takes 1 or 4 values, got 3"),
])
def test_values_that_do_not_fit_the_graph_are_refused(values, message):
    with pytest.raises(InputError, match=message):
        run_pass(model_from_text(CONDITIONAL), f"freeze-inputs(values={values})")


@pytest.mark.parametrize("values, message", [
    ("w", "takes NAME:VALUE items"),
    ("w:abc", "takes NAME:VALUE items"),
    ("w:/no/such/file.npy", "names no readable .npy file"),
])
def test_bad_syntax_is_refused_when_the_pipeline_is_built(values, message):
    with pytest.raises(InputError, match=f"freeze-inputs: option 'values' .*{message}"):
        build_pipeline(f"freeze-inputs(values={values})")


def test_parentheses_in_a_value_are_explained_from_python():
    """The pipeline grammar keeps '(' for options: onehot:K is the spelling."""
    with pytest.raises(InputError, match="takes NAME:VALUE items, VALUE a number, onehot:K"):
        FreezeInputs(values="w:onehot(3)")


def test_no_values_is_refused():
    with pytest.raises(InputError, match="freeze-inputs: give values=NAME:VALUE"):
        run_pass(model_from_text(CONDITIONAL), "freeze-inputs")


def test_npy_of_another_dtype_or_shape_is_refused(tmp_path):
    model = model_from_text(CONDITIONAL)
    np.save(tmp_path / "f64.npy", np.zeros(4))
    np.save(tmp_path / "short.npy", np.zeros(3, np.float32))
    with pytest.raises(InputError, match=r"f64.npy holds float64, input 'w' is float32 \(save it with "
                                         r"\.astype\(np\.float32\)\)"):
        run_pass(model, f"freeze-inputs(values=w:{tmp_path / 'f64.npy'})")
    with pytest.raises(InputError, match=r"short.npy has shape \[3\], input 'w' is \[4\]"):
        run_pass(model, f"freeze-inputs(values=w:{tmp_path / 'short.npy'})")


def test_integer_inputs_take_integers_and_outputs_cannot_be_frozen():
    model = model_from_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2,3] x, int64[1] k) => (float[2,?] y) { y, i = TopK <axis = 1> (x, k) }""")
    with pytest.raises(InputError, match="input 'k' is int64: 0.5 is not representable"):
        run_pass(model, "freeze-inputs(values=k:0.5)")
    new, _ = run_pass(model, "freeze-inputs(values=k:2)")
    assert [i.name for i in new.graph.input] == ["x"]
    passthrough = model_from_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x, float[2] z) => (float[2] y, float[2] z) { y = Relu (x) }""")
    with pytest.raises(InputError, match="input 'z' is also a graph output"):
        run_pass(passthrough, "freeze-inputs(values=z:1)")
