"""Presets are values: named pipelines that nest, print to the pipeline text and parse back."""

import onnx
import pytest

from graphsurgeon_cg import PassManager, PassSpec, Pipeline, build_pipeline, parse_pipeline
from graphsurgeon_cg.core import get_pass, presets
from graphsurgeon_cg.core.bounds import EXACT as EXACT_BOUND
from graphsurgeon_cg.targets import get_target
from graphsurgeon_cg.tune import EXACT_PIPELINE

from models import FIXTURES

NAMED = [presets.FOLD, presets.ZERO_PADS, presets.EXACT_PADS, presets.EXACT_REWRITES, presets.EXACT_COMPILER,
         presets.VENDOR_PADS, presets.LOSSY_VENDOR]


def test_a_pipeline_nests_and_prints_flat():
    inner = Pipeline("inner", "reflect2slice", PassSpec("static-batch", (("batch", "1"),)))
    outer = Pipeline("outer", presets.FOLD, inner, "pad-conv-fusion")
    assert str(outer) == "fold-constants,reflect2slice,static-batch(batch=1),pad-conv-fusion"
    assert [s.name for s in outer] == ["fold-constants", "reflect2slice", "static-batch", "pad-conv-fusion"]
    assert len(outer) == 4 and outer[2] == PassSpec("static-batch", (("batch", "1"),))
    assert outer.describe().splitlines() == ["outer", "  fold", "    fold-constants", "  inner", "    reflect2slice",
                                             "    static-batch(batch=1)", "  pad-conv-fusion"]


@pytest.mark.parametrize("pipeline", NAMED, ids=lambda p: p.name)
def test_printing_and_parsing_round_trips(pipeline):
    text = str(pipeline)
    assert Pipeline.parse(text) == pipeline
    assert parse_pipeline(text) == pipeline.specs()
    assert str(Pipeline.parse(text)) == text


def test_equal_means_the_same_passes_whatever_the_names():
    assert Pipeline("a", "fold-constants,pad-conv-fusion") == Pipeline("b", presets.FOLD, presets.ZERO_PADS)
    assert Pipeline("a", "fold-constants") != Pipeline("a", "pad-conv-fusion")
    assert len({Pipeline("a", "fold-constants"), Pipeline("b", presets.FOLD)}) == 1


def test_then_appends_text_specs_and_passes():
    exact = presets.EXACT_COMPILER
    longer = exact.then("fp16out", name="exact+fp16out")
    assert longer.name == "exact+fp16out" and str(longer) == f"{exact},fp16out"
    instance = get_pass("static-batch")(batch=2)
    with_pass = exact.then(instance)
    assert str(with_pass) == f"{exact},static-batch(batch=2)"
    assert build_pipeline(with_pass)[-1] is instance  # an instance is run as given, not rebuilt


def test_the_pass_manager_takes_a_pipeline_value_and_nested_lists():
    assert [p.name for p in build_pipeline(presets.EXACT_COMPILER)] == \
        ["fold-constants", "reflect2slice", "instancenorm-fusion", "pad-conv-fusion"]
    assert [p.name for p in build_pipeline([presets.FOLD, PassSpec("fp16out")])] == ["fold-constants", "fp16out"]
    model = onnx.load(FIXTURES / "cyclegan_tiny_opset11.onnx")
    by_value = PassManager(presets.EXACT_COMPILER).run(model)
    by_text = PassManager(str(presets.EXACT_COMPILER)).run(model)
    assert by_value.pipeline == by_text.pipeline == str(presets.EXACT_COMPILER)
    assert by_value.model.SerializeToString() == by_text.model.SerializeToString()


def test_presets_are_the_pipelines_they_always_were():
    assert str(presets.EXACT_COMPILER) == "fold-constants,reflect2slice,instancenorm-fusion,pad-conv-fusion"
    assert EXACT_PIPELINE == str(presets.EXACT_COMPILER) and EXACT_PIPELINE != EXACT_BOUND
    cann5 = get_target("ascend:cann5")
    assert isinstance(cann5.preset(), Pipeline)
    assert str(cann5.preset()) == "fold-constants,opset(min=9,max=13),nearest-half-pixel,reflect2slice,pad-conv-fusion"
    assert str(cann5.preset(True)) == "fold-constants,opset(min=9,max=13),reflect2const,resize-nearest,pad-conv-fusion"
    assert str(get_target("tensorrt:10").preset()) == "fold-constants,opset(min=9,max=24),pad-conv-fusion"
    assert str(get_target("tensorrt:8.0").preset()) == \
        "fold-constants,opset(min=9,max=13),reflect2slice,pad-conv-fusion"
    # ORT and OpenVINO share the one default preset of a runtime that reads reflect pads
    assert get_target("ort").preset() == get_target("openvino").preset()
    assert str(get_target("ort").preset(True)) == "fold-constants,opset(min=7),reflect2const,pad-conv-fusion"
