"""The interface of a model survives every pass: names, count, rank (and types, unless a pass
declares it changes them), checked after every pass even without the numeric check; and the
classic model-zoo networks that ship inside the onnx wheel (IR 3: every initializer is also a
graph input) rewrite and check."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from graphsurgeon_cg import Pass, PassFailed, PassManager, PassResult, register_pass
from graphsurgeon_cg.check import NumericChecker
from graphsurgeon_cg.core.modelio import default_opset
from graphsurgeon_cg.testing import model_from_text

from models import ort_run

LIGHT = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")
MODEL = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,3,4,4] x) => (float[N,3,4,4] y) { y = Relu(x) }"""


@register_pass
class RenamesOutput(Pass):
    name = "test-renames-output"
    summary = "Renames the graph output"
    exact = True

    def run(self, graph, ctx):
        graph.outputs[0].name = "renamed"
        return PassResult(1)


@register_pass
class DropsOutput(Pass):
    name = "test-drops-output"
    summary = "Deletes every graph output"
    exact = True

    def run(self, graph, ctx):
        graph.outputs.clear()
        return PassResult(1)


@register_pass
class CastsOutput(Pass):
    name = "test-casts-output"
    summary = "Makes the output float16 without declaring it"
    exact = True

    def run(self, graph, ctx):
        out = graph.outputs[0]
        out.name = ctx.fresh_name("y_fp32")
        half = gs.Variable("y", dtype=np.float16, shape=out.shape)
        graph.nodes.append(gs.Node("Cast", attrs={"to": onnx.TensorProto.FLOAT16}, inputs=[out], outputs=[half]))
        graph.outputs[0] = half
        return PassResult(1)


@register_pass
class FlattensOutput(Pass):
    name = "test-flattens-output"
    summary = "Changes the output's rank"
    exact = True

    def run(self, graph, ctx):
        out = graph.outputs[0]
        out.name = ctx.fresh_name("y_4d")
        flat = gs.Variable("y", dtype=np.float32, shape=None)
        graph.nodes.append(gs.Node("Flatten", inputs=[out], outputs=[flat]))
        flat.shape = ["N", 48]
        graph.outputs[0] = flat
        return PassResult(1)


@pytest.mark.parametrize("culprit, message", [
    ("test-renames-output", "changed the model's outputs (removed output(s) y; added output(s) renamed)"),
    ("test-drops-output", "changed the model's outputs (removed output(s) y)"),
    ("test-casts-output", "output 'y' changed type float32 -> float16"),
    ("test-flattens-output", "output 'y' changed rank 4 -> 2"),
])
def test_interface_changes_are_errors_naming_the_pass_even_without_the_check(culprit, message):
    with pytest.raises(PassFailed) as info:
        PassManager(f"static-batch(batch=1),{culprit}").run(model_from_text(MODEL))
    assert f"pass '{culprit}' failed" in str(info.value)
    assert message in str(info.value)


def test_declared_dtype_changes_are_allowed():
    result = PassManager("fp16out").run(model_from_text(MODEL))
    assert result.model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert result.model.graph.output[0].name == "y"


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v1", "densenet121"])
def test_model_zoo_networks_with_initializers_as_inputs(name):
    """IR-3 models (initializers must be listed as inputs) from the onnx wheel; vgg19, zfnet512,
    alexnet, resnet50 and inception_v2 behave the same but take 2-22 s each (checked by hand)."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    manager = PassManager("fold-constants,pad-conv-fusion,static-batch(batch=1)", instruments=[NumericChecker()])
    result = manager.run(model)
    assert result.check.ok
    onnx.checker.check_model(result.model)
    inits = {t.name for t in result.model.graph.initializer}
    inputs = {i.name for i in result.model.graph.input}
    assert inits <= inputs
    assert result.model.ir_version == model.ir_version


def test_the_callers_model_is_never_modified():
    """Folding inlines the If branch and renames its weight: once that renamed the weight in the
    caller's own ModelProto too (onnx-graphsurgeon writes names into the imported protos)."""
    model = model_from_text("""<ir_version: 7, opset_import: ["" : 13]>
        g (float[1,3,4,4] x) => (float[?,?,?,?] y)
           <bool cond = {0}, int64[8] pads_a = {0,0,0,0,0,0,0,1}, int64[8] pads_b = {0,0,0,0,0,0,0,1}>
        {
           y = If (cond) <else_branch: graph = e () => (float[?,?,?,?] pe) { pe = Pad <mode = "constant"> (x, pads_b) },
                          then_branch: graph = t () => (float[?,?,?,?] pt) { pt = Pad <mode = "constant"> (x, pads_a) }>
        }""")
    before = model.SerializeToString()
    result = PassManager("fold-constants", instruments=[NumericChecker()]).run(model)
    assert result.records[0].modified
    assert [n.op_type for n in result.model.graph.node] == ["Pad"]
    assert model.SerializeToString() == before


@pytest.mark.parametrize("name", ["squeezenet", "shufflenet", "inception_v1"])
def test_model_zoo_networks_upgrade_to_opset_13(name):
    """onnx.version_converter needs IR 3's initializers listed as inputs ("Input ..._SHAPE is
    undefined" otherwise); the upgraded model still gives the outputs stored beside it in the wheel."""
    model = onnx.load(os.path.join(LIGHT, f"light_{name}.onnx"))
    result = PassManager("opset(version=13),fold-constants").run(model)
    assert default_opset(result.model) == 13 and result.model.ir_version >= 7
    expected = onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(LIGHT, f"light_{name}_output_0.pb")))
    weights = {t.name for t in model.graph.initializer}
    data = next(i for i in model.graph.input if i.name not in weights)
    feed = {data.name: np.random.default_rng(0).standard_normal(
        [d.dim_value for d in data.type.tensor_type.shape.dim]).astype(np.float32)}
    original, upgraded = ort_run(model, feed), ort_run(result.model, feed)
    assert upgraded[0].shape == expected.shape
    np.testing.assert_allclose(upgraded[0], original[0], atol=1e-5)
