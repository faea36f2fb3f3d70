"""Verification as a component (the pass manager's ``Verifier``) and the "IR after failure"
dump with its reproducer (``DumpOnFailure``, ``apply --dump-on-failure``)."""

import json

import onnx
import pytest
from onnx import TensorProto, helper

from graphsurgeon_cg import NumericCheckFailed, PassFailed, PassManager, load_model
from graphsurgeon_cg.check import CheckSettings, NumericChecker
from graphsurgeon_cg.core import DumpOnFailure, InputError, StrictVerifier, Verifier
from test_manager import Invalid, Raises, SigmoidForTanh  # noqa: F401  (registers the test passes)

from models import OPSET11, invoke

INVALID_PLUGIN = '''
import onnx_graphsurgeon as gs
from graphsurgeon_cg import Pass, PassResult, register_pass


@register_pass
class Bogus(Pass):
    name = "test-plugin-bogus"
    summary = "Appends an operator that does not exist"
    exact = True

    def run(self, graph, ctx):
        out = graph.outputs[0]
        name, out.name = out.name, ctx.fresh_name("before_bogus")
        bogus = gs.Variable(name, dtype=out.dtype, shape=out.shape)
        graph.nodes.append(gs.Node("NoSuchOperator", inputs=[out], outputs=[bogus]))
        graph.outputs[0] = bogus
        return PassResult(1)
'''


class Counted:
    """Which entry the pass manager used: ``export`` (onnx-graphsurgeon) or ``verify`` alone (fast path)."""

    def __init__(self):
        self.calls = []

    def export(self, *args):
        self.calls.append("export")
        return super().export(*args)

    def verify(self, *args):
        if not self.calls or self.calls[-1] != "export":
            self.calls.append("verify")
        return super().verify(*args)


class NoRelu(Counted, Verifier):
    """A stricter verifier of a user's own: their compiler rejects Relu."""

    def check(self, model):
        inferred = super().check(model)
        if any(node.op_type == "Relu" for node in model.graph.node):
            raise ValueError("a Relu is left, which our compiler rejects")
        return inferred


def test_the_manager_holds_a_replaceable_verifier():
    model = load_model(OPSET11)
    assert isinstance(PassManager("fold-constants").verifier, Verifier)
    assert PassManager("fold-constants").run(model).records[0].modified  # the default accepts it
    for verify in ("each", "end"):  # the gs path with each mode (and its replay) asks the same verifier
        with pytest.raises(PassFailed, match="pass 'fold-constants' failed: the rewritten model is invalid: "
                                             "a Relu is left"):
            PassManager("fold-constants", verifier=NoRelu(), verify=verify).run(model)
    # the protobuf fast path too: reflect2slice runs there on the folded model (no export from onnx-graphsurgeon)
    folded_model = PassManager("fold-constants").run(model).model
    verifier = NoRelu()
    with pytest.raises(PassFailed, match="pass 'reflect2slice'.*a Relu is left"):
        PassManager("reflect2slice", verifier=verifier).run(folded_model)
    # the fast path asked first; refused, it gave way to onnx-graphsurgeon, which asked the same one
    assert verifier.calls[0] == "verify" and verifier.calls[1:] == ["export"] * (len(verifier.calls) - 1)



def _unranked_tensor_model() -> onnx.ModelProto:
    """y = Relu(Reshape(x + (a + b), shape)) with ``shape`` a graph input of unknown length: the
    Reshape's output has no rank (y has the rank it declares); ``a + b`` is for fold-constants."""
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    nodes = [helper.make_node("Add", ["one", "one"], ["two"]), helper.make_node("Add", ["x", "two"], ["r"]),
             helper.make_node("Reshape", ["r", "shape"], ["z"], name="reshape"), helper.make_node("Relu", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                           helper.make_tensor_value_info("shape", TensorProto.INT64, ["K"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_strict_verifier_wants_every_tensor_ranked():
    model = _unranked_tensor_model()
    assert PassManager("fold-constants").run(model).records[0].modified
    with pytest.raises(PassFailed, match="pass 'fold-constants'.*tensor 'z' of Reshape node 'reshape' has no known "
                                         "element type and rank"):
        PassManager("fold-constants", verifier=StrictVerifier()).run(model)
    assert PassManager("fold-constants", verifier=StrictVerifier()).run(load_model(OPSET11)).records[0].modified


def _reproducer(folder):
    return json.loads((folder / "reproducer.json").read_text())


def test_an_invalid_result_dumps_the_last_good_model_the_failing_graph_and_the_pipeline(tmp_path):
    model = load_model(OPSET11)
    dump = tmp_path / "dump"
    with pytest.raises(PassFailed, match="test-invalid"):
        PassManager("fold-constants,test-invalid,reflect2slice", instruments=[DumpOnFailure(dump)]).run(model)
    info = _reproducer(dump)
    assert info["pass"] == "test-invalid" and info["pass_index"] == 1
    assert info["pipeline"] == "test-invalid"
    assert info["full_pipeline"] == "fold-constants,test-invalid,reflect2slice"
    assert "NoSuchOperator" in info["error"] or "invalid" in info["error"]
    last_good = onnx.load(dump / "input.onnx")
    onnx.checker.check_model(last_good)  # the verified model after fold-constants
    expected = PassManager("fold-constants").run(model).model
    assert last_good.SerializeToString() == expected.SerializeToString()
    failed = onnx.load(dump / "failed.onnx")
    assert failed.graph.node[-1].op_type == "NoSuchOperator"
    assert failed.graph.node[-1].doc_string == "cgsurg:test-invalid"  # provenance says who made it
    # the reproducer reproduces: the failing pass alone on the last good model fails the same way
    with pytest.raises(PassFailed, match="pass 'test-invalid'") as again:
        PassManager(info["pipeline"]).run(last_good)
    assert str(again.value) == info["error"]


def test_a_pass_that_raises_dumps_the_model_it_received(tmp_path):
    dump = tmp_path / "dump"
    model = load_model(OPSET11)
    with pytest.raises(PassFailed, match="kaput"):
        PassManager("test-raises", instruments=[DumpOnFailure(dump)]).run(model)
    info = _reproducer(dump)
    assert (info["pass"], info["pass_index"], info["error_type"]) == ("test-raises", 0, "PassFailed")
    assert onnx.load(dump / "input.onnx").SerializeToString() == model.SerializeToString()


def test_a_numeric_failure_dumps_the_blamed_pass_before_and_after(tmp_path):
    dump = tmp_path / "dump"
    checker = NumericChecker(CheckSettings())
    with pytest.raises(NumericCheckFailed, match="test-sigmoid-for-tanh"):
        PassManager("fold-constants,test-sigmoid-for-tanh", instruments=[checker, DumpOnFailure(dump)]).run(
            load_model(OPSET11))
    info = _reproducer(dump)
    assert (info["pass"], info["pass_index"]) == ("test-sigmoid-for-tanh", 1)
    assert "Tanh" in {n.op_type for n in onnx.load(dump / "input.onnx").graph.node}
    assert "Sigmoid" in {n.op_type for n in onnx.load(dump / "failed.onnx").graph.node}


def test_a_successful_run_writes_nothing(tmp_path):
    dump = tmp_path / "dump"
    PassManager("fold-constants", instruments=[DumpOnFailure(dump)]).run(load_model(OPSET11))
    assert not dump.exists()


def test_a_dump_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        DumpOnFailure(tmp_path / "file")


def test_apply_dump_on_failure(tmp_path):
    plugin = tmp_path / "bogus.py"
    plugin.write_text(INVALID_PLUGIN)
    out, dump = tmp_path / "out.onnx", tmp_path / "dump"
    result = invoke("apply", OPSET11, "-o", out, "--plugin", plugin, "--passes", "fold-constants,test-plugin-bogus",
                    "--dump-on-failure", dump)
    assert result.exit_code == 1, result.output
    assert "pass 'test-plugin-bogus' failed" in result.output
    assert f"reproducer: {dump / 'reproducer.json'}" in result.output
    assert not out.exists()
    assert sorted(p.name for p in dump.iterdir()) == ["failed.onnx", "input.onnx", "reproducer.json"]
    info = _reproducer(dump)
    assert info["command"] == "cgsurg apply input.onnx -o out.onnx --passes 'test-plugin-bogus'"


def test_a_verifier_with_its_own_four_argument_verify_still_runs_on_the_fast_path():
    """A subclass written against verify(model, template, pass_name, provenance) gets that call
    from the protobuf fast path too, with the provenance the onnx-graphsurgeon path would give."""
    seen = []

    class Old(Verifier):
        def verify(self, model, template, pass_name, provenance):
            seen.append(dict(provenance))
            return super().verify(model, template, pass_name, provenance)

    folded_model = PassManager("fold-constants").run(load_model(OPSET11)).model
    result = PassManager("reflect2slice", verifier=Old()).run(folded_model)
    assert result.records[0].rewrites and len(seen) == 1
    assert seen[0] and all(doc.startswith("cgsurg:reflect2slice") for doc in seen[0].values())
    assert {n.name: n.doc_string for n in result.model.graph.node if n.doc_string} == seen[0]
