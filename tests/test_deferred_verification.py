"""Deferred verification (issue 10, scale): without an instrument that needs the model after every
pass, the pass manager verifies before a pass that reads inferred shapes and at the end, not after
every pass. The result must be the one per-pass verification gives, byte for byte, and a failure
must still name the pass that caused it."""

from __future__ import annotations

import difflib

import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from onnx import numpy_helper

import fuzzing
from graphsurgeon_cg import (
    CgsurgError,
    NumericCheckFailed,
    Pass,
    PassFailed,
    PassManager,
    PassResult,
    load_model,
    register_pass,
)
from graphsurgeon_cg.check import NumericChecker
from graphsurgeon_cg.core.errors import InputError
from graphsurgeon_cg.targets import get_target
from test_manager import Invalid  # noqa: F401  (registers test-invalid)

from models import ALL_FIXTURES, OPSET11, folded, pad_model

PIPELINES = [
    "fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)",
    "fold-constants,reflect2const,pad-conv-fusion,resize-nearest,fp16out",
    "reflect2slice,fold-constants,pad-conv-fusion",  # pads still computed when reflect2slice runs
    "static-batch(batch=2),fold-constants,instancenorm-fusion,reflect2slice,opset(version=18)",
    "fold-constants,preproc-fold,postproc-fold,reflect2const,pad-conv-fusion",
    get_target("ascend:cann5").preset(lossy=True),
    get_target("tensorrt").preset(lossy=False),
]


def outcome(model, pipeline: str, verify: str):
    try:
        result = PassManager(pipeline, verify=verify).run(model)
    except CgsurgError as exc:
        return "error", str(exc)
    summary = [(r.spec, r.rewrites, r.modified, r.nodes_after, r.op_delta, r.reasons) for r in result.records]
    return canonical(result.model).SerializeToString(), summary


def canonical(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and tensor attributes in one encoding (raw bytes): a converter may write int64_data
    where numpy writes raw bytes."""
    model = onnx.ModelProto.FromString(model.SerializeToString())

    def visit(graph: onnx.GraphProto) -> None:
        for k, tensor in enumerate(graph.initializer):
            graph.initializer[k].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor), tensor.name))
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t), attr.t.name))
                for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                    visit(body)

    visit(model.graph)
    return model


def assert_same(model, pipeline: str) -> None:
    deferred, each = outcome(model, pipeline, "end"), outcome(model, pipeline, "each")
    if deferred[0] != each[0] and "error" not in (deferred[0], each[0]):
        texts = [onnx.printer.to_text(onnx.load_from_string(o[0])).splitlines() for o in (each, deferred)]
        diff = "\n".join(difflib.unified_diff(*texts, "each", "end", lineterm=""))
        pytest.fail(f"{pipeline}: the models differ\n{diff}\n{onnx.printer.to_text(model)}")
    assert deferred == each, onnx.printer.to_text(model)


@pytest.mark.parametrize("pipeline", PIPELINES)
@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.stem)
def test_deferred_verification_gives_the_same_model(path, pipeline):
    model = load_model(path)
    assert outcome(model, pipeline, "end")[0] != "error"
    assert_same(model, pipeline)


SUITE = ["fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=2)",
         "reflect2const(min_cos=0.0),pad-conv-fusion,fp16out", "static-batch(batch=2),fold-constants,reflect2slice",
         "opset(version=18),reflect2slice,fold-constants,pad-conv-fusion"]


@pytest.mark.parametrize("pipeline", SUITE)
def test_deferred_verification_gives_the_same_model_on_random_graphs(pipeline):
    """Graphs with computed pads, opset-18 axes, unknown shapes, If/Loop bodies, odd dtypes: the same
    bytes, or the same error, either way."""

    @settings(max_examples=15, deadline=None, derandomize=True, database=None, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=fuzzing.cases(focus=("pad_reflect", "pad_conv", "pad", "if")))
    def check(case):
        assert_same(case.model, pipeline)

    check()


def test_verification_is_deferred_only_without_stage_readers():
    model = folded(OPSET11)  # pads are initializers: reflect2slice needs no inferred shapes
    pipeline = "reflect2slice,static-batch(batch=1)"
    assert PassManager(pipeline).verifies_each_pass is False
    assert PassManager(pipeline, instruments=[NumericChecker()]).verifies_each_pass is False  # blames by replay
    assert PassManager(pipeline, instruments=[NumericChecker(each_pass=True)]).verifies_each_pass is True
    assert PassManager(pipeline, verify="each").verifies_each_pass is True

    deferred = PassManager(pipeline).run(model).records
    each = PassManager(pipeline, verify="each").run(model).records
    assert [r.modified for r in deferred] == [r.modified for r in each] == [True, True]
    # Verified once, at the end (static-batch does not read inferred shapes): the time is the last pass's.
    assert [r.verify_seconds > 0 for r in deferred] == [False, True]
    assert all(r.verify_seconds > 0 for r in each)


def test_a_pass_that_reads_shapes_gets_them_with_verification_deferred():
    seen = {}

    @register_pass
    class ReadsShapes(Pass):
        name = "test-reads-shapes"
        summary = "Records the shape of every Concat output"
        exact = True

        def run(self, graph, ctx):
            seen[ctx.pass_name] = sorted(str(n.outputs[0].shape) for n in graph.nodes if n.op == "Concat")
            return PassResult(modified=False)

    model = pad_model([1, 2, 5, 5], [0, 0, 1, 1, 0, 0, 1, 1])
    records = PassManager("reflect2slice,test-reads-shapes").run(model).records
    assert "[1, 2, 7, 5]" in seen["test-reads-shapes"]  # the first Concat's, known only from inference
    assert records[0].verify_seconds > 0  # the checkpoint before the shape reader


@register_pass
class ChokesOnBrokenGraphs(Pass):
    name = "test-chokes"
    summary = "Crashes on a graph an earlier pass broke"
    exact = True

    def needs_shapes(self, graph):
        return False  # no verification before it: it meets the broken graph

    def run(self, graph, ctx):
        if any(n.op == "NoSuchOperator" for n in graph.nodes):
            raise ValueError("unexpected operator")
        return PassResult(modified=False)


@pytest.mark.parametrize("pipeline", ["test-invalid,static-batch(batch=1)",
                                      "test-invalid,test-chokes"])
def test_deferred_failures_name_the_pass_that_broke_the_graph(pipeline):
    """Found only at the end, or as a crash of a later pass: the replay blames the first."""
    with pytest.raises(PassFailed, match="pass 'test-invalid'.*invalid") as caught:
        PassManager(pipeline).run(load_model(OPSET11))
    assert caught.value.pass_name == "test-invalid"


def test_an_unknown_verify_mode_is_refused():
    with pytest.raises(InputError, match="verify must be one of"):
        PassManager("fold-constants", verify="sometimes")
    with pytest.raises(InputError, match="NumericChecker reads"):
        PassManager("fold-constants", [NumericChecker(each_pass=True)], verify="end").run(load_model(OPSET11))


@register_pass
class ReluForTanh(Pass):
    name = "test-relu-for-tanh"
    summary = "Claims to be exact but replaces Tanh with Relu (valid ONNX, wrong numbers)"
    exact = True

    def run(self, graph, ctx):
        for node in graph.nodes:
            if node.op == "Tanh":
                node.op = "Relu"
                ctx.mark(node)
        return PassResult(modified=True)


def test_the_numeric_check_blames_a_pass_when_verification_was_deferred():
    """The check compares the original with the result only; on failure the stages are replayed to
    find the pass that breached its bound (here the second of three, each valid ONNX)."""
    model = load_model(OPSET11)
    manager = PassManager("fold-constants,test-relu-for-tanh,static-batch(batch=1)", instruments=[NumericChecker()])
    assert manager.verifies_each_pass is False
    with pytest.raises(NumericCheckFailed, match="after pass 'test-relu-for-tanh'"):
        manager.run(model)


# --- regressions found in review: each pass must see the same graph in both modes ----------------

REUSED_BATCH_NAME = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,3,4,5] x, int64[4] s, float[1,1,3,3] y) => (float[N,3,N,5] a, float[?,?,?,?] c, float[1,1,5,5] z) {
  a = Reshape(x, s)
  b = Transpose<perm=[2,0,1,3]>(a)
  c = Relu(b)
  pads = Constant<value = int64[8] {0,0,1,1,0,0,1,1}>()
  z = Pad<mode="reflect">(y, pads)
}"""
STALE_AFTER_STATIC_BATCH = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,3,4,5] x) => (float[?,?,?,?] z) {
  t = Transpose<perm=[1,0,2,3]>(x)
  c = Constant<value = float[1] {1.0}>()
  c2 = Add(c, c)
  u = Add(t, c2)
  pads = Constant<value = int64[8] {0,1,0,0,0,1,0,0}>()
  z = Pad<mode="reflect">(u, pads)
}"""
CASTS = """<ir_version: 8, opset_import: ["" : 13]>
g (int64[2] x, float[1,1,3,3] y) => (int64[2] o, float[1,1,5,5] z) {
  t = Neg(x)
  tf = Cast<to=1>(t)
  one = Constant<value = float[1] {1.0}>()
  u = Add(tf, one)
  o = Cast<to=7>(u)
  pads = Constant<value = int64[8] {0,0,1,1,0,0,1,1}>()
  z = Pad<mode="reflect">(y, pads)
}"""
INVENTED_SYMBOLS = """<ir_version: 8, opset_import: ["" : 13]>
g (float[4] b, float[1,1,3,3] x) => (float[?,?] o1, int64[?,?] y, float[1,1,5,5] z) {
  c0 = Constant<value = float[4] {0.0, 1.0, 2.0, 0.0}>()
  nz = NonZero(c0)
  o1 = Cast<to=1>(nz)
  t = NonZero(b)
  y = Identity(t)
  pads = Constant<value = int64[8] {0,0,1,1,0,0,1,1}>()
  z = Pad<mode="reflect">(x, pads)
}"""


@pytest.mark.parametrize("text, pipeline", [
    (REUSED_BATCH_NAME, "fold-constants,static-batch(batch=1)"),
    (REUSED_BATCH_NAME, "reflect2slice,static-batch(batch=1)"),
    (STALE_AFTER_STATIC_BATCH, "fold-constants,static-batch(batch=1),reflect2slice"),
    (CASTS, "reflect2slice,fold-constants"),
    (INVENTED_SYMBOLS, "reflect2slice,fold-constants"),
])
def test_review_cases_give_the_same_model(text, pipeline):
    assert_same(onnx.parser.parse_model(text), pipeline)


def test_static_batch_leaves_a_reused_batch_name_on_another_axis_symbolic():
    """Per-pass verification once fed inferred shapes to static-batch, which set N=1 on c's first
    axis — that axis is a's third, not the batch: ONNX Runtime gives (4, 1, 3, 5)."""
    result = PassManager("fold-constants,static-batch(batch=1)", verify="each").run(
        onnx.parser.parse_model(REUSED_BATCH_NAME))
    c = next(o for o in result.model.graph.output if o.name == "c")
    assert [d.dim_value or d.dim_param for d in c.type.tensor_type.shape.dim] == ["N", 1, 3, 5]


def test_fold_constants_gets_the_types_it_elides_casts_by():
    result = PassManager("reflect2slice,fold-constants").run(onnx.parser.parse_model(CASTS))
    assert "Cast" not in {n.op_type for n in result.model.graph.node}  # Neg -> Add on int64 directly


def test_a_weight_renamed_by_one_pass_is_not_renamed_in_the_callers_model():
    """fp16out renames the weight w that is also an output; folding exports a copy of the graph,
    and onnx-graphsurgeon writes a tensor's current name into the TensorProto it imported."""
    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[2] x) => (float[2] y, float[2] w) <float[2] w = {1.0, 2.0}> { y = Relu(x) }""")
    before = model.SerializeToString()
    result = PassManager("fp16out,fold-constants", instruments=[NumericChecker()]).run(model)
    assert result.check.ok
    assert model.SerializeToString() == before
