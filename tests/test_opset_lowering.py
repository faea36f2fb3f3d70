"""opset(version=N) downward on what exporters write (passes/opset_down.py where
onnx.version_converter has no adapter): real exports, then one small graph per adapter.
Every lowered model passes the full ONNX checker and gives ONNX Runtime the original's
outputs: exactly (0) where nodes are only relabelled, within 1e-5 where an operator is
decomposed (Gelu, LayerNormalization, Mish, HardSwish)."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import InputError
from graphsurgeon_cg.testing import model_from_text, random_inputs, run_pass
from thirdparty import model_path

from models import OPSET17, ops, ort_run

DECOMPOSED = 1e-5


def lowered(model: onnx.ModelProto, version: int, atol: float = 0.0, shapes=None) -> onnx.ModelProto:
    """``model`` at opset ``version``: checked, and compared with the original in ORT."""
    new, record = run_pass(model, f"opset(version={version})")
    assert record.rewrites == 1
    assert [o.version for o in new.opset_import if o.domain in ("", "ai.onnx")] == [version]
    onnx.checker.check_model(new, full_check=True)
    for feeds in random_inputs(model, seed=3, samples=2, shapes=shapes):
        for want, got in zip(ort_run(model, feeds), ort_run(new, feeds)):
            np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    return new


# --- real exports ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", [13, 11])
def test_the_torchscript_cyclegan_at_opset_17_goes_down_exactly(version):
    lowered(onnx.load(OPSET17), version)


def _torch_detector() -> onnx.ModelProto:
    """A seeded YOLO-style detector exported by PyTorch's TorchScript exporter at opset 17:
    Conv+BN+SiLU, nearest Upsample, Concat, chunk, Reshape, Transpose, split, sigmoid heads."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)

    def block(a, b, stride=1):
        return nn.Sequential(nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.SiLU())

    class Detector(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.down, self.fuse = block(3, 8, 2), block(8, 16, 2), block(24, 16)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.head = nn.Conv2d(8, 7, 1)

        def forward(self, x):
            a = self.stem(x)
            y = self.fuse(torch.cat([self.up(self.down(a)), a], 1))
            left, right = y.chunk(2, 1)
            p = self.head(left * torch.sigmoid(right))
            n, c, h, w = p.shape
            box, obj, cls = p.reshape(n, c, h * w).transpose(1, 2).split([4, 1, 2], 2)
            return torch.cat([box, obj.sigmoid(), cls.sigmoid()], 2)

    buffer = io.BytesIO()
    torch.onnx.export(Detector().eval(), torch.rand(1, 3, 32, 32), buffer, opset_version=17, dynamo=False,
                      input_names=["images"], output_names=["out"], dynamic_axes={"images": {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_pytorch_yolo_style_detector_at_opset_17_goes_down_exactly():
    model = _torch_detector()
    assert {"Resize", "Split", "Reshape", "Transpose", "Concat", "Sigmoid"} <= set(ops(model))
    for version in (13, 11):
        lowered(model, version)


def test_the_third_party_orientation_classifier_goes_from_15_to_13():
    model = onnx.load(model_path("orientation"))
    new = lowered(model, 13, atol=DECOMPOSED)  # HardSwish-14 becomes HardSigmoid and Mul
    assert "HardSwish" not in ops(new) and ops(new)["HardSigmoid"] == ops(model)["HardSigmoid"] + 28


def test_the_third_party_text_detector_goes_from_12_to_11():
    model = onnx.load(model_path("det"))  # the converter has no Constant 12 -> 11 adapter
    lowered(model, 11, shapes={"x": [1, 3, 64, 96]})


# --- one adapter each ------------------------------------------------------------------------

def text(opset: int, signature: str, body: str, inits: str = "") -> onnx.ModelProto:
    return model_from_text(f'<ir_version: 8, opset_import: ["" : {opset}]>\n{signature} {inits}\n{{ {body} }}')


def test_split_by_num_outputs_becomes_sizes_with_a_smaller_last_chunk():
    model = text(18, "g (float[2,7,3] x) => (float[2,3,3] a, float[2,3,3] b, float[2,1,3] c)",
                 "a, b, c = Split <axis = 1, num_outputs = 3> (x)")
    assert lowered(model, 13).graph.node[-1].op_type == "Split"
    split = lowered(model, 11).graph.node[0]
    assert [list(a.ints) for a in split.attribute if a.name == "split"] == [[3, 3, 1]]


def test_reduce_axes_operand_becomes_an_attribute_and_noop_an_identity():
    model = text(18, "g (float[2,3,4] x) => (float[2,1,4] y, float[2,3,1] s, float[2,3,4] z)",
                 "y = ReduceMean <keepdims = 1> (x, ax1)  s = ReduceSum (x, ax2)  "
                 "z = ReduceMax <noop_with_empty_axes = 1> (x)",
                 "<int64[1] ax1 = {1}, int64[1] ax2 = {-1}>")
    at13 = lowered(model, 13)
    assert [len(n.input) for n in at13.graph.node] == [1, 2, 1]  # ReduceSum keeps its operand at 13
    assert [n.op_type for n in at13.graph.node] == ["ReduceMean", "ReduceSum", "Identity"]
    assert [len(n.input) for n in lowered(model, 11).graph.node] == [1, 1, 1]


def test_pad_axes_are_spelt_out_and_squeeze_axes_become_an_attribute():
    model = text(18, "g (float[1,3,4,4] x) => (float[3,6,6] y)",
                 'p = Pad <mode = "reflect"> (x, pads, "", axes)  y = Squeeze (p, sq)',
                 "<int64[4] pads = {1, 1, 1, 1}, int64[2] axes = {-2, -1}, int64[1] sq = {0}>")
    new = lowered(model, 11)
    assert [n.op_type for n in new.graph.node] == ["Constant", "Pad", "Squeeze"]


def test_resize_19_goes_to_13_and_11_with_sizes_or_scales():
    model = text(19, "g (float[1,2,4,4] x) => (float[1,2,8,8] y, float[1,2,6,6] z)",
                 'y = Resize <mode = "nearest", nearest_mode = "floor", coordinate_transformation_mode = "asymmetric">'
                 ' (x, "", scales)  z = Resize <mode = "linear"> (x, "", "", sizes)',
                 "<float[4] scales = {1.0, 1.0, 2.0, 2.0}, int64[4] sizes = {1, 2, 6, 6}>")
    lowered(model, 13)
    assert ops(lowered(model, 11))["Constant"] == 3  # empty roi (twice) and scales: required operands at 11


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_20_is_decomposed_below_20(approximate):
    model = text(20, "g (float[2,5] x) => (float[2,5] y)", f'y = Gelu <approximate = "{approximate}"> (x)')
    assert "Gelu" not in ops(lowered(model, 17, atol=DECOMPOSED))


def test_layer_normalization_17_and_mish_18_are_decomposed_at_13():
    model = text(18, "g (float[2,3,4] x) => (float[2,3,4] y)",
                 "n = LayerNormalization <axis = -2, epsilon = 0.001> (x, scale, bias)  y = Mish (n)",
                 "<float[3,4] scale = {1,2,3,4,5,6,7,8,9,10,11,12}, float[3,4] bias = {0,0,0,0,1,1,1,1,2,2,2,2}>")
    new = lowered(model, 13, atol=DECOMPOSED)
    assert not {"LayerNormalization", "Mish"} & set(ops(new))


def test_shape_start_end_becomes_a_slice_and_constant_value_floats_a_tensor():
    model = text(15, "g (float[2,3,4,5] x) => (int64[2] s, float[3] c)",
                 "s = Shape <start = 1, end = -1> (x)  c = Constant <value_floats = [1.0, 2.0, 3.0]> ()")
    new = lowered(model, 11)
    assert ops(new)["Slice"] == 1


def test_clip_operands_become_attributes_before_11():
    model = text(13, "g (float[2,5] x) => (float[2,5] y)", "y = Clip (x, lo, hi)",
                 "<float lo = {-0.5}, float hi = {0.25}>")
    assert lowered(model, 9).graph.node[0].attribute[0].name in ("min", "max")


def test_softmax_on_the_last_axis_goes_below_13_and_on_another_is_refused():
    last = text(13, "g (float[2,3,4] x) => (float[2,3,4] y)", "y = Softmax (x)")
    lowered(last, 11)
    middle = text(13, "g (float[2,3,4] x) => (float[2,3,4] y)", "y = Softmax <axis = 1> (x)")
    with pytest.raises(InputError, match=r"opset: cannot take this model from opset 13 to 11: Softmax-13 "
                                         r"'\S+' cannot go to opset 11: axis 1 is not the last axis"):
        run_pass(middle, "opset(version=11)")


@pytest.mark.parametrize("opset, body, message", [
    (14, "y = Relu (x)", "fails the ONNX checker at opset 13: .*Relu.*int8"),
    (19, 'y = Resize <coordinate_transformation_mode = "half_pixel_symmetric", mode = "linear"> (x, "", s)',
     "Resize-19 '.*' cannot go to opset 13: half_pixel_symmetric exists only from opset 19"),
    (18, 'y = Resize <antialias = 1, mode = "linear"> (x, "", s)', "antialias exists only from opset 18"),
    (19, 'y = Pad <mode = "wrap"> (x, pads)', "wrap padding exists only from opset 19"),
    (17, "y = Reshape <allowzero = 1> (x, shape)", "allowzero=1 with a zero in the shape"),
    (17, "y = Split <axis = 0> (x, sizes)", None),
])
def test_what_cannot_be_lowered_is_refused_naming_the_operator(opset, body, message):
    elem = "int8" if "Relu" in body else "float"
    model = text(opset, f"g ({elem}[2,2] x) => ({elem}[N, M] y)", body,
                 "<float[2] s = {1.0, 1.0}, int64[4] pads = {0, 1, 0, 1}, int64[2] shape = {0, 2}, "
                 "int64[1] sizes = {2}>")
    if message is None:  # a control: the same harness lowers what it can
        lowered(model, 13)
        return
    with pytest.raises(InputError, match=f"opset: cannot take this model from opset {opset} to 13: .*{message}"):
        run_pass(model, "opset(version=13)")
