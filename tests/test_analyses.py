"""Analyses (issue 19): shapes are computed on demand, for the original too, cached while passes
leave the graph alone, dropped after a pass that changes it unless the pass preserves them, and
never written into the model; and the fuzz defect the hand-managed shapes hid."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import Analysis, Pass, PassManager, PassResult, Shapes, register_pass
from graphsurgeon_cg.core.base import PassContext
from test_deferred_verification import assert_same

from models import ort_run

# The fuzz campaign's "If_N inferred shape and existing shape differ in dimension 0: (1) vs (4)"
# under fold-constants,reflect2slice: a TorchScript-style computed pads tensor (int64[4], named
# like the names passes make) beside an If whose then-branch pads reflectively. reflect2slice
# rewrote the body and picked its fresh names from the body's names only: its new ``starts__5``
# (int64[1]) shadowed the outer ``starts__5`` (int64[4]) that the constant Pad reads.
SHADOWED = """<ir_version: 8, opset_import: ["" : 13]>
g (float[2,5] x, bool c) => (float[2,7] y, float[3,6] z) {
  zeros = Constant<value = int64[2] {0, 0}>()
  ones = Constant<value = int64[2] {1, 1}>()
  starts__5 = Concat<axis=0>(zeros, ones)
  z = Pad(x, starts__5)
  p = Constant<value = int64[4] {0, 1, 0, 1}>()
  y = If(c) <then_branch = then_g () => (float[2,7] t) { t = Pad<mode="reflect">(x, p) },
              else_branch = else_g () => (float[2,7] e) { e = Pad<mode="edge">(x, p) }>
}"""


def _valid(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)


@pytest.mark.parametrize("pipeline", ["reflect2slice", "fold-constants,reflect2slice",
                                      "fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=2)"])
def test_a_new_name_in_a_body_does_not_shadow_an_outer_tensor(pipeline):
    model = onnx.parser.parse_model(SHADOWED)
    _valid(model)
    result = PassManager(pipeline).run(model)
    _valid(result.model)
    bodies = [a.g for n in result.model.graph.node for a in n.attribute if a.type == onnx.AttributeProto.GRAPH]
    assert [n.op_type for b in bodies for n in b.node] == ["Slice", "Slice", "Concat", "Pad"]  # reflect rewritten
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    for cond in (True, False):
        feed = {"x": x, "c": np.array(cond)}
        for want, got in zip(ort_run(model, feed), ort_run(result.model, feed)):
            np.testing.assert_array_equal(want, got)
    assert_same(model, pipeline)


@register_pass
class Looks(Pass):
    """Records what it sees: the shapes lent to the graph and ``ctx.shapes``."""

    name = "test-looks"
    summary = "Records tensor shapes"
    exact = True
    seen: list[dict] = []

    def run(self, graph, ctx):
        body = {t.name: t.shape for g in graph.subgraphs(recursive=True) for t in g.tensors().values()}
        Looks.seen.append({"lent": {t.name: t.shape for t in graph.tensors().values()}, "body": body,
                           "analysis": {name: ctx.shapes.shape(name) for name in ctx.shapes}})
        return PassResult(modified=False)


UNTYPED = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,3,4,4] x, bool c) => (float[N,3,6,6] y, float[N,3,4,4] w) {
  r = Relu(x)
  p = Constant<value = int64[8] {0, 0, 1, 1, 0, 0, 1, 1}>()
  y = Pad<mode="reflect">(r, p)
  w = If(c) <then_branch = then_g () => (float[N,3,4,4] a) { n = Neg(r)
  a = Abs(n) }, else_branch = else_g () => (float[N,3,4,4] b) { b = Neg(r) }>
}"""


def test_the_first_pass_sees_the_originals_inferred_shapes_bodies_included():
    """The original declares no value_info: the first pass used to see r and n without shapes."""
    model = onnx.parser.parse_model(UNTYPED)
    assert not model.graph.value_info
    Looks.seen.clear()
    result = PassManager("test-looks").run(model)
    seen = Looks.seen[0]
    assert seen["lent"]["r"] == ["N", 3, 4, 4]
    assert seen["body"]["n"] == ["N", 3, 4, 4]  # a body's tensor, through the If
    assert seen["analysis"]["r"] == ("N", 3, 4, 4) and seen["analysis"]["n"] == ("N", 3, 4, 4)
    assert not result.model.graph.value_info  # nothing lent is written
    assert result.model.SerializeToString() == model.SerializeToString()


def test_lent_shapes_are_taken_back_before_export_and_never_reach_a_body():
    """reflect2slice reads the lent shape of r; the written bodies declare only their own tensors."""
    model = onnx.parser.parse_model(UNTYPED)
    result = PassManager("test-looks,reflect2slice").run(model)
    _valid(result.model)
    for node in result.model.graph.node:
        for attr in node.attribute:
            local = {o for n in attr.g.node for o in n.output}
            assert {v.name for v in attr.g.value_info} <= local
    assert_same(model, "test-looks,reflect2slice,test-looks")


class Counted(Analysis):
    """An analysis that counts how often it is computed."""

    name = "test-counted"
    computed = 0

    @classmethod
    def compute(cls, model):
        Counted.computed += 1
        return cls()


@register_pass
class Asks(Pass):
    name = "test-asks"
    summary = "Asks for the counted analysis"
    exact = True
    reports_modified = True

    def needs_shapes(self, graph):
        return False

    def run(self, graph, ctx):
        ctx.analysis(Counted)
        return PassResult(modified=False)


@register_pass
class Renames(Pass):
    """Changes the graph (a node's name), preserving what the result says."""

    name = "test-renames"
    summary = "Renames the first node"
    exact = True
    reports_modified = True

    def needs_shapes(self, graph):
        return False

    def run(self, graph, ctx):
        graph.nodes[0].name = ctx.fresh_name("renamed")
        return PassResult(1, modified=True, preserved=(Counted,) if "keep" in graph.name else ())


@pytest.mark.parametrize("verify", ["each", "end"])
@pytest.mark.parametrize("pipeline, computed", [
    ("test-asks,test-asks", 1),  # cached while nothing changes
    ("test-asks,test-renames,test-asks", 2),  # dropped after a change
    ("test-renames,test-renames", 0),  # never asked, never computed
])
def test_an_analysis_is_computed_on_demand_cached_and_invalidated(pipeline, computed, verify):
    Counted.computed = 0
    PassManager(pipeline, verify=verify).run(onnx.parser.parse_model(UNTYPED))
    assert Counted.computed == computed


def test_a_pass_may_declare_an_analysis_preserved():
    model = onnx.parser.parse_model(UNTYPED.replace("\ng (", "\nkeep (", 1))
    Counted.computed = 0
    PassManager("test-asks,test-renames,test-asks").run(model)
    assert Counted.computed == 1


def test_preserving_passes_still_give_the_same_model_in_both_modes():
    """pad-conv-fusion and instancenorm-fusion preserve Shapes: the next reader gets the cached one."""
    from models import OPSET11, folded

    Looks.seen.clear()
    assert_same(folded(OPSET11), "pad-conv-fusion,test-looks,reflect2slice")
    assert all(shape is not None for shape in Looks.seen[0]["lent"].values())


@register_pass
class AsksLate(Pass):
    """Says it reads no shapes, then edits the graph and asks for them anyway."""

    name = "test-asks-late"
    summary = "Asks for shapes after an edit"
    exact = True
    seen: list = []

    def needs_shapes(self, graph):
        return False

    def run(self, graph, ctx):
        relu = next(n for n in graph.nodes if n.op == "Relu")
        relu.op = "Abs"  # an edit first: the analysis must still describe the graph it received
        AsksLate.seen.append(ctx.shapes.shape("r"))
        return PassResult(1, modified=True)


def test_a_late_question_with_verification_deferred_replays_instead_of_seeing_a_half_edited_graph():
    model = onnx.parser.parse_model(UNTYPED)
    AsksLate.seen.clear()
    end = PassManager("reflect2slice,test-asks-late", verify="end").run(model)
    each = PassManager("reflect2slice,test-asks-late", verify="each").run(model)
    assert end.model.SerializeToString() == each.model.SerializeToString()
    assert AsksLate.seen[-1] == ("N", 3, 4, 4)


def test_a_pass_run_by_hand_gets_shapes_from_its_graph():
    import onnx_graphsurgeon as gs

    graph = gs.import_onnx(onnx.parser.parse_model(UNTYPED))
    ctx = PassContext(pass_name="by-hand", opset=13, graph=graph)
    assert ctx.shapes.shape("n") == ("N", 3, 4, 4)
    assert ctx.shapes.dtype("r") == np.float32
    assert isinstance(ctx.shapes, Shapes) and "nothing" not in ctx.shapes
