"""One declaration of I/O changes: ``IOAdapter`` (removed and pinned inputs, the images' grid,
conversions), declared before the run by ``Pass.declare_io`` and for a run in its result."""

import numpy as np
from onnx import TensorProto, helper

from graphsurgeon_cg import (
    EXACT,
    Instrument,
    IOAdapter,
    Pass,
    PassManager,
    PassResult,
    PipelineRun,
    build_pipeline,
    register_pass,
)
from graphsurgeon_cg.core.base import IDENTITY


def _model():
    """y = x * w, x an image, w a second input a deployment would freeze."""
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Keep(Instrument):
    needs_stages = False

    def after_pipeline(self, run, result):
        self.run = run


def test_the_run_reads_what_passes_declared_before_it():
    passes = build_pipeline("freeze-inputs(values=w:0.5),preproc-fold(mean=0.5,scale=2)")
    run = PipelineRun(passes, EXACT, [_model()])
    frozen, preproc = run.declared
    assert frozen.removed_inputs == ("w",) and frozen.pinned["w"].tolist() == [0.5]
    assert run.pins["w"].tolist() == [0.5]
    assert preproc.grid == ((0.5,), (2.0,)) and run.grid == preproc.grid
    assert build_pipeline("fold-constants")[0].declare_io(_model()) is None


def test_the_stages_are_fed_through_the_adapters():
    keep = Keep()
    PassManager("freeze-inputs(values=w:0.5),preproc-fold(mean=0.5,scale=2)", instruments=[keep]).run(_model())
    run = keep.run
    x = np.full((1, 3, 4, 4), 0.25, np.float32)
    assert set(run.feeds_for({"x": x}, 0)) == {"x", "w"}  # the original is fed the pinned value
    after = run.feeds_for({"x": x}, 2)
    assert set(after) == {"x"} and after["x"].dtype == np.uint8
    assert after["x"].flatten()[0] == round(0.25 * 2 + 0.5)  # u = x * scale + mean


@register_pass
class BindsW(Pass):
    name = "test-binds-w"
    summary = "Binds input w to 2, declaring it before the run only"
    exact = True

    def declare_io(self, model):
        return IOAdapter(removed_inputs=("w",), pinned={"w": np.asarray([2.0], np.float32)})

    def run(self, graph, ctx):
        w = next(t for t in graph.inputs if t.name == "w")
        graph.inputs = [t for t in graph.inputs if t is not w]
        w.to_constant(np.asarray([2.0], np.float32))
        return PassResult(1)  # no adapter: the declared one stands


def test_a_run_without_an_adapter_keeps_the_declared_one():
    keep = Keep()
    result = PassManager("test-binds-w", instruments=[keep]).run(_model())  # the interface check lets w go
    assert [i.name for i in result.model.graph.input] == ["x"]
    assert keep.run.adapters[0] is keep.run.declared[0]
    assert set(keep.run.feeds_for({"x": np.zeros((1, 3, 4, 4), np.float32)}, 1)) == {"x"}
    assert IDENTITY == IOAdapter() and IOAdapter().feeds({"a": 1}) == {"a": 1}
