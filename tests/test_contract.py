"""The pass contract over every built-in pass, and the pass infrastructure's own promises:
change detection that does not trust the pass, options validated before any work, passes
without state, instruments that see every event."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from graphsurgeon_cg import (
    CgsurgError,
    InputError,
    Instrument,
    Option,
    Pass,
    PassManager,
    PassResult,
    at_least,
    build_pipeline,
    register_pass,
)
from graphsurgeon_cg.check import NumericChecker
from graphsurgeon_cg.core.registry import ENTRY_POINT_GROUP
from graphsurgeon_cg.stages.dataset import Sample, write_info
from graphsurgeon_cg.testing import check_pass_contract, model_from_text, run_pass

FIXTURES = Path(__file__).parent / "fixtures"
OPSET11 = onnx.load(str(FIXTURES / "cyclegan_tiny_opset11.onnx"))
BILINEAR = onnx.load(str(FIXTURES / "cyclegan_tiny_bilinear_opset11.onnx"))


def _folded(model: onnx.ModelProto) -> onnx.ModelProto:
    return run_pass(model, "fold-constants")[0]


def _calibration(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        path = tmp_path / f"calib{i}.npy"
        np.save(path, rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32))
        samples.append(Sample(i, path, 64, 64))
    info = tmp_path / "calib.info"
    write_info(info, samples)
    return str(info)


# For each built-in: a pipeline spec and a model on which it fires.
CONTRACT_CASES = {
    "fold-constants": ("fold-constants", lambda: OPSET11),
    "reflect2slice": ("reflect2slice", lambda: _folded(OPSET11)),
    "reflect2const": ("reflect2const(min_cos=0.5)", lambda: _folded(OPSET11)),
    "pad-conv-fusion": ("pad-conv-fusion", lambda: run_pass(_folded(OPSET11), "reflect2const")[0]),
    "resize-nearest": ("resize-nearest(min_cos=0.5)", lambda: _folded(BILINEAR)),
    "nearest-half-pixel": ("nearest-half-pixel", lambda: run_pass(
        _folded(BILINEAR), "resize-nearest(min_cos=0.5,nearest_mode=floor,coordinate_mode=asymmetric)")[0]),
    "fp16out": ("fp16out", lambda: OPSET11),
    "static-batch": ("static-batch(batch=2)", lambda: OPSET11),
    "static-shape": ("static-shape(shapes=img_sat_maps:1x3x64x64)", lambda: OPSET11),
    "opset": ("opset(version=13)", lambda: OPSET11),
    "preproc-fold": ("preproc-fold", lambda: OPSET11),
    "postproc-fold": ("postproc-fold", lambda: OPSET11),
    "fp16": ("fp16(min_cos=0.9)", lambda: _folded(OPSET11)),
    "int8": ("int8(samples=3,min_cos=0.5)", lambda: _folded(OPSET11)),
    "freeze-inputs": ("freeze-inputs(values=w:0.5)", lambda: model_from_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,4,4] x, float[1,3,1,1] w) => (float[1,3,4,4] y) { y = Mul (x, w) }""")),
    "instancenorm-fusion": ("instancenorm-fusion", lambda: model_from_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,3,4,4] x) => (float[1,3,4,4] y) <float two = {2.0}, float eps = {1e-5}> {
          m = ReduceMean <axes = [2, 3]> (x)  d = Sub (x, m)  sq = Pow (d, two)  v = ReduceMean <axes = [2, 3]> (sq)
          ve = Add (v, eps)  sd = Sqrt (ve)  y = Div (d, sd)
        }""")),
}


def test_every_built_in_has_a_contract_case():
    built_ins = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert built_ins == set(CONTRACT_CASES)


@pytest.mark.parametrize("name", sorted(CONTRACT_CASES))
def test_pass_contract(name, tmp_path):
    spec, model = CONTRACT_CASES[name]
    record = check_pass_contract(spec, model(), data=_calibration(tmp_path) if name == "int8" else None)
    assert record.modified


# --- change detection --------------------------------------------------------------------

@register_pass
class SilentTanhToSigmoid(Pass):
    """Edits node ops in place and reports nothing: the manager must see it anyway."""

    name = "test-silent-edit"
    summary = "Replaces Tanh with Sigmoid in place and says 0 rewrites"
    exact = True

    def run(self, graph, ctx):
        for node in graph.nodes:
            if node.op == "Tanh":
                node.op = "Sigmoid"
        return PassResult(0)


@register_pass
class SilentAttributeEdit(Pass):
    name = "test-silent-attr"
    summary = "Changes a Conv's dilations attribute in place and says 0 rewrites"
    exact = True

    def run(self, graph, ctx):
        conv = next(n for n in graph.nodes if n.op == "Conv")
        conv.attrs["strides"] = [1, 1] if list(conv.attrs.get("strides", [1, 1])) != [1, 1] else [2, 2]
        return PassResult(0)


@pytest.mark.parametrize("culprit", ["test-silent-edit", "test-silent-attr"])
def test_an_in_place_edit_reported_as_zero_rewrites_is_blamed_on_its_pass(culprit):
    manager = PassManager(f"fold-constants,{culprit},reflect2slice", instruments=[NumericChecker(each_pass=True)])
    with pytest.raises(CgsurgError) as info:  # a numeric breach, or an invalid model
        manager.run(OPSET11)
    assert culprit in str(info.value)
    assert "reflect2slice" not in str(info.value)


def test_a_pass_that_says_nothing_and_changes_nothing_is_recorded_unmodified():
    @register_pass
    class Noop(Pass):
        name = "test-noop"
        summary = "Looks and leaves"
        exact = True

        def run(self, graph, ctx):
            return PassResult(0, ["nothing here"])

    result = PassManager("fold-constants,test-noop").run(OPSET11)
    assert not result.records[1].modified
    assert result.records[0].modified


# --- options -------------------------------------------------------------------------------

@pytest.mark.parametrize("pipeline, message", [
    ("static-batch(batch=0)", "option 'batch' must be at least 1"),
    ("reflect2const(min_cos=2)", "option 'min_cos' must be between -1 and 1"),
    ("int8(samples=0)", "option 'samples' must be at least 1"),
    ("preproc-fold(mean=[a])", "option 'mean' must hold numbers"),
    ("opset(version=3)", "option 'version' must be between 7 and"),
])
def test_bad_option_values_are_input_errors_before_any_work(pipeline, message):
    with pytest.raises(InputError) as info:
        build_pipeline(pipeline)
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_options_are_typed_attributes_and_read_only():
    [p] = build_pipeline("static-batch(batch=4)")
    assert p.batch == 4
    assert isinstance(p.batch, int)
    with pytest.raises(AttributeError):
        p.batch = 5  # type: ignore[misc]
    assert type(p).options["batch"].default == 1


def test_a_plugin_option_with_a_validator():
    @register_pass
    class Widen(Pass):
        name = "test-widen"
        summary = "Has a validated option"
        exact = True
        factor = Option(int, 2, "how much", check=at_least(2))

        def run(self, graph, ctx):
            return PassResult(0, [f"factor {self.factor}"])

    assert build_pipeline("test-widen(factor=3)")[0].factor == 3
    with pytest.raises(InputError, match="must be at least 2"):
        build_pipeline("test-widen(factor=1)")


# --- statelessness and adapters ----------------------------------------------------------------

def test_io_adapters_travel_in_the_result_not_the_pass():
    [p] = build_pipeline("preproc-fold")
    before = dict(vars(p))
    result = PassManager([p], instruments=[NumericChecker()]).run(OPSET11)
    assert vars(p) == before
    assert result.check.ok
    assert result.model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8


# --- instruments ---------------------------------------------------------------------------

class Recorder(Instrument):
    def __init__(self):
        self.events = []

    def before_pipeline(self, run):
        self.events.append("before_pipeline")

    def before_pass(self, run, index, p):
        self.events.append(f"before {p.name}")

    def after_pass(self, run, index, p, record):
        self.events.append(f"after {p.name}")

    def after_pass_failed(self, run, index, p, error):
        self.events.append(f"failed {p.name}")

    def after_pipeline(self, run, result):
        self.events.append("after_pipeline")

    def after_pipeline_failed(self, run, error):
        self.events.append("pipeline_failed")


def test_instruments_see_every_event_in_order():
    recorder = Recorder()
    PassManager("fold-constants,reflect2slice", instruments=[recorder]).run(OPSET11)
    assert recorder.events == ["before_pipeline", "before fold-constants", "after fold-constants",
                               "before reflect2slice", "after reflect2slice", "after_pipeline"]


def test_instruments_see_failures():
    @register_pass
    class Boom(Pass):
        name = "test-boom"
        summary = "Raises"
        exact = True

        def run(self, graph, ctx):
            raise RuntimeError("kaput")

    recorder = Recorder()
    with pytest.raises(Exception, match="kaput"):
        PassManager("fold-constants,test-boom", instruments=[recorder]).run(OPSET11)
    assert recorder.events[-2:] == ["failed test-boom", "pipeline_failed"]


def test_a_pass_returning_none_is_a_clear_pass_failure():
    @register_pass
    class ReturnsNone(Pass):
        name = "test-returns-none"
        summary = "Forgets to return"
        exact = True

        def run(self, graph, ctx):
            return None

    with pytest.raises(Exception, match="pass 'test-returns-none' failed: run\\(\\) returned NoneType"):
        PassManager("test-returns-none").run(OPSET11)


def test_contract_checker_catches_a_stateful_pass():
    @register_pass
    class Stateful(Pass):
        name = "test-stateful"
        summary = "Remembers what it did"
        exact = True

        def run(self, graph, ctx):
            self.__dict__["seen"] = len(graph.nodes)
            relu = next((n for n in graph.nodes if n.op == "Relu"), None)
            if relu is None:
                return PassResult(0, ["no Relu"])
            out = gs.Variable(ctx.fresh_name("y"), dtype=np.float32)
            graph.nodes.append(gs.Node("Identity", inputs=[relu.outputs[0]], outputs=[out]))
            return PassResult(1)

    model = model_from_text("""<ir_version: 8, opset_import: ["" : 13]>
        g (float[1,2] x) => (float[1,2] y) { y = Relu(x) }""")
    with pytest.raises(AssertionError, match="kept state between calls"):
        check_pass_contract("test-stateful", model)
