"""Target rules (issue 11): each rule fires on a minimal graph (ONNX text) and stays silent on
the fixed graph; the fixtures read the way each compiler release would read them."""

from __future__ import annotations

import onnx
import pytest

from graphsurgeon_cg import InputError
from graphsurgeon_cg.targets import ERROR, WARNING, available_targets, get_target
from graphsurgeon_cg.testing import model_from_text, run_pass

from models import BILINEAR, FIXTURE_PADS, OPSET11, OPSET17

ALL = ["ascend:cann5", "ascend:cann8", "tensorrt:8.0", "tensorrt:10", "openvino", "ort"]


def graph(body: str, inputs: str = "float[1,3,8,8] x", outputs: str = "float[1,3,8,8] y", opset: int = 13,
          inits: str = "") -> onnx.ModelProto:
    head = f'<ir_version: 8, opset_import: ["" : {opset}]>'
    init = f"<{inits}>" if inits else ""
    return model_from_text(f"{head}\ng ({inputs}) => ({outputs}) {init} {{ {body} }}")


def found(model: onnx.ModelProto, target: str, rule: str) -> list:
    return [f for f in get_target(target).lint(model).findings if f.rule == rule]


def severities(model: onnx.ModelProto, target: str, rule: str) -> set[str]:
    return {f.severity for f in found(model, target, rule)}


PAD = 'int64[8] pads = {0, 0, 1, 1, 0, 0, 1, 1}'
REFLECT = graph('y = Pad <mode = "reflect"> (x, pads)', outputs="float[1,3,10,10] y", inits=PAD)
ZERO_PAD = graph('y = Pad (x, pads)', outputs="float[1,3,10,10] y", inits=PAD)
RELU = graph("y = Relu(x)")


def test_every_built_in_is_registered_with_its_versions():
    targets = available_targets()
    assert {"ascend", "tensorrt", "openvino", "ort"} <= set(targets)
    assert set(targets["ascend"].versions) == {"cann5", "cann8"}
    assert set(targets["tensorrt"].versions) == {"8.0", "10"}
    assert str(get_target("ascend")) == "ascend:cann8" and str(get_target("tensorrt")) == "tensorrt:10"
    for spec in ALL:  # a plain graph is clean everywhere
        assert get_target(spec).lint(RELU).findings == [], spec


def test_unknown_target_or_version_is_an_input_error():
    with pytest.raises(InputError, match="unknown target 'ascnd'; did you mean 'ascend'"):
        get_target("ascnd")
    with pytest.raises(InputError, match="unknown version 'cann6' of target 'ascend'; known: cann5, cann8"):
        get_target("ascend:cann6")


def test_opset_range():
    at17 = graph("y = Relu(x)", opset=17)
    [f] = found(at17, "ascend:cann5", "opset")
    assert f.severity == ERROR and "9-13" in f.message and f.fix == "opset(version=13)"
    assert found(at17, "ascend:cann8", "opset") == []
    assert severities(graph("y = Relu(x)", opset=18), "ascend:cann8", "opset") == {WARNING}  # plug-ins go to 18
    assert severities(graph("y = Relu(x)", opset=21), "tensorrt:10", "opset") == {WARNING}  # 10.0: 20, 10.15: 24
    assert found(RELU, "ascend:cann5", "opset") == []


def test_operator_lists():
    rounding = graph("y = Round(x)")
    [f] = found(rounding, "tensorrt:8.0", "ops")  # marked N in onnx-tensorrt's 8.0 table
    assert f.severity == ERROR and f.op == "Round"
    assert found(rounding, "tensorrt:10", "ops") == []
    celu = graph("y = Celu(x)")
    assert severities(celu, "openvino", "ops") == {WARNING}  # not in the list: the list may lag
    assert found(RELU, "tensorrt:8.0", "ops") == []


def test_reflect_pad_is_an_error_for_old_cann_and_tensorrt_8_a_warning_for_cann8():
    for target in ("ascend:cann5", "tensorrt:8.0"):
        [f] = found(REFLECT, target, "pad-mode")
        assert f.severity == ERROR and f.fix == "reflect2slice" and "reflect2const" in f.message
    [f] = found(REFLECT, "ascend:cann8", "pad-mode")
    assert f.severity == WARNING and f.fix == "reflect2slice"
    for target in ("tensorrt:10", "openvino", "ort"):
        assert found(REFLECT, target, "pad-mode") == []
    for target in ALL:
        assert found(ZERO_PAD, target, "pad-mode") == []


def test_constant_pad_value_and_axes():
    valued = graph("y = Pad (x, pads, v)", outputs="float[1,3,10,10] y", inits=PAD + ", float v = {1.0}")
    assert severities(valued, "ascend:cann8", "pad-mode") == {ERROR}
    assert found(valued, "tensorrt:10", "pad-mode") == []
    channels = graph("y = Pad (x, pads)", outputs="float[1,5,8,8] y", inits="int64[8] pads = {0, 1, 0, 0, 0, 1, 0, 0}")
    [f] = found(channels, "tensorrt:8.0", "pad-mode")  # zero padding on the last two axes only
    assert f.severity == ERROR and "last two" in f.message
    assert found(ZERO_PAD, "tensorrt:8.0", "pad-mode") == []


def test_reflect_pad_at_least_the_axis_size_is_an_error_for_every_target():
    wide = graph('y = Pad <mode = "reflect"> (x, pads)', inputs="float[1,1,4,4] x", outputs="float[1,1,12,12] y",
                 inits="int64[8] pads = {0, 0, 4, 4, 0, 0, 4, 4}")
    fine = graph('y = Pad <mode = "reflect"> (x, pads)', inputs="float[1,1,4,4] x", outputs="float[1,1,10,10] y",
                 inits="int64[8] pads = {0, 0, 3, 3, 0, 0, 3, 3}")
    for target in ALL:
        [f] = found(wide, target, "reflect-pad-size")
        assert f.severity == ERROR and "axis 2 of size 4" in f.message, target
        assert found(fine, target, "reflect-pad-size") == [], target


def test_computed_operands_must_be_constants():
    computed = graph("y = Pad (x, p)", inputs="float[1,3,8,8] x, int64[8] p", outputs="float[1,3,?,?] y")
    [f] = found(computed, "ascend:cann8", "constant-operands")
    assert f.severity == ERROR and f.fix == "fold-constants" and "pads" in f.message
    assert found(ZERO_PAD, "ascend:cann8", "constant-operands") == []
    scales = graph('y = Resize <mode = "nearest"> (x, "", s)', inputs="float[1,3,8,8] x, float[4] s",
                   outputs="float[1,3,?,?] y")
    assert severities(scales, "ascend:cann8", "constant-operands") == {ERROR}
    axes = graph("y = Pad (x, p, , a)", inputs="float[1,3,8,8] x, int64[2] a", outputs="float[1,3,?,?] y",
                 inits="int64[4] p = {1, 1, 1, 1}", opset=18)
    assert severities(axes, "tensorrt:10", "constant-operands") == {ERROR}  # Pad axes must be an initializer
    assert severities(axes, "openvino", "constant-operands") == {ERROR}


RESIZE = 'y = Resize <mode = "{mode}"{extra}> (x, "", s)'
SCALES = "float[4] s = {1.0, 1.0, 2.0, 2.0}"


def resize(mode: str = "nearest", extra: str = "", opset: int = 13) -> onnx.ModelProto:
    return graph(RESIZE.format(mode=mode, extra=extra), outputs="float[1,3,16,16] y", inits=SCALES, opset=opset)


def test_resize_mode_and_nearest_mode_for_ascend():
    [f] = found(resize("cubic"), "ascend:cann8", "resize")
    assert f.severity == ERROR and f.fix == "resize-nearest"
    floor = found(resize(extra=', nearest_mode = "floor"'), "ascend:cann8", "resize")
    assert [x.severity for x in floor] == [WARNING] and "round_prefer_ceil" in floor[0].message
    assert found(resize(extra=', nearest_mode = "round_prefer_ceil"'), "ascend:cann8", "resize") == []
    assert found(resize("linear"), "ascend:cann8", "resize") == []


def test_resize_antialias_and_axes_per_target():
    antialias = resize("linear", ", antialias = 1", opset=18)
    assert severities(antialias, "ascend:cann8", "resize") == {WARNING}
    assert severities(antialias, "tensorrt:10", "resize") == {ERROR}
    assert found(antialias, "openvino", "resize") == []
    axes = graph('y = Resize <mode = "linear", axes = [2, 3]> (x, "", s)', outputs="float[1,3,16,16] y",
                 inits="float[2] s = {2.0, 2.0}", opset=18)
    assert severities(axes, "ascend:cann8", "resize") == {WARNING}
    assert found(resize("linear", opset=18), "ascend:cann8", "resize") == []


def test_resize_coordinate_modes_for_tensorrt():
    half = resize("linear", ', coordinate_transformation_mode = "half_pixel"')
    assert severities(half, "tensorrt:8.0", "resize") == {WARNING}  # its table and its layer disagree
    assert found(half, "tensorrt:10", "resize") == []
    asym = resize("nearest", ', coordinate_transformation_mode = "asymmetric", nearest_mode = "floor"')
    assert found(asym, "tensorrt:8.0", "resize") == []
    crop = graph('y = Resize <mode = "linear", coordinate_transformation_mode = "tf_crop_and_resize"> (x, r, s)',
                 outputs="float[1,3,16,16] y", inits=SCALES + ", float[8] r = {0, 0, 0, 0, 1, 1, 1, 1}")
    for target in ("tensorrt:10", "openvino"):
        assert severities(crop, target, "resize") == {ERROR}


DECONV = "y = ConvTranspose <{attrs}> (x, w)"
WEIGHT = "float[3,3,3,3] w = {" + ", ".join(["0.1"] * 81) + "}"


def deconv(attrs: str, out: str = "float[1,3,10,10] y") -> onnx.ModelProto:
    return graph(DECONV.format(attrs=attrs), outputs=out, inits=WEIGHT)


def test_conv_transpose_attributes():
    bare = deconv("strides = [1, 1]")
    [f] = found(bare, "ascend:cann8", "conv-transpose")
    assert f.severity == ERROR and "kernel_shape" in f.message
    good = deconv("kernel_shape = [3, 3]")
    for target in ALL:
        assert found(good, target, "conv-transpose") == [], target
    same = deconv('kernel_shape = [3, 3], auto_pad = "SAME_UPPER"', "float[1,3,8,8] y")
    assert severities(same, "ascend:cann5", "conv-transpose") == {ERROR}
    assert found(same, "ascend:cann8", "conv-transpose") == []  # CANN 8: SAME_* allowed in 2-D
    dilated = deconv("kernel_shape = [3, 3], dilations = [2, 2]", "float[1,3,12,12] y")
    assert severities(dilated, "ascend:cann5", "conv-transpose") == {ERROR}
    assert severities(dilated, "ascend:cann8", "conv-transpose") == {WARNING}
    computed = graph("y = ConvTranspose <kernel_shape = [3, 3]> (x, w)", inputs="float[1,3,8,8] x, float[3,3,3,3] w",
                     outputs="float[1,3,10,10] y")
    assert severities(computed, "tensorrt:8.0", "conv-transpose") == {ERROR}  # weights must be an initializer
    assert found(computed, "tensorrt:10", "conv-transpose") == []


def test_dynamic_dims_other_than_the_batch():
    dynamic = graph("y = Relu(x)", inputs="float[N,3,H,W] x", outputs="float[N,3,H,W] y")
    [f] = found(dynamic, "ascend:cann8", "dynamic-dims")
    assert f.severity == ERROR and "[2, 3]" in f.message and "--input-shape x:1,3,H,W" in f.message
    assert f.fix == "static-shape(shapes=x:?,3,H,W)"  # the dynamic batch stays: ATC takes one
    # the trtexec script profiles every dynamic axis (min/opt/max): a warning, a fixed size is faster
    assert severities(dynamic, "tensorrt:10", "dynamic-dims") == {WARNING}
    batch_only = graph("y = Relu(x)", inputs="float[N,3,8,8] x", outputs="float[N,3,8,8] y")
    assert found(batch_only, "ascend:cann8", "dynamic-dims") == []


def test_symbolic_shapes_inside_the_graph():
    computed = graph("z = Pad (x, p)  y = Relu(z)", inputs="float[N,3,8,8] x, int64[8] p", outputs="float[N,3,?,?] y")
    [f] = found(computed, "ascend:cann8", "symbolic-shapes")  # where it starts, not every tensor after it
    assert f.severity == ERROR and f.op == "Pad" and f.fix == "fold-constants"
    static = graph("z = Pad (x, pads)  y = Relu(z)", inputs="float[N,3,8,8] x", outputs="float[N,3,10,10] y",
                   inits=PAD)
    assert found(static, "ascend:cann8", "symbolic-shapes") == []  # the batch symbol is allowed
    assert found(computed, "tensorrt:10", "symbolic-shapes") == []


def test_data_types():
    double = graph("y = Relu(x)", inputs="double[1,3,8,8] x", outputs="double[1,3,8,8] y")
    assert severities(double, "ascend:cann8", "dtypes") == {WARNING}
    assert severities(double, "tensorrt:8.0", "dtypes") == {WARNING}
    assert found(RELU, "ascend:cann8", "dtypes") == []
    longs = graph("y = Neg(x)", inputs="int64[4] x", outputs="int64[4] y")
    assert severities(longs, "tensorrt:8.0", "dtypes") == {WARNING}  # cast down to int32
    assert found(longs, "tensorrt:10", "dtypes") == []


def test_the_torchscript_fixture_at_opset_17_for_cann5_names_reflect2slice():
    lint = get_target("ascend:cann5").lint(onnx.load(OPSET17))
    pads = [f for f in lint.errors if f.rule == "pad-mode"]
    assert len(pads) == FIXTURE_PADS and all(f.fix == "reflect2slice" and f.op == "Pad" for f in pads)
    assert {f.rule for f in lint.errors} >= {"opset", "pad-mode", "constant-operands"}
    assert lint.exit_code == 5


@pytest.mark.parametrize("spec", ALL)
def test_the_exact_preset_leaves_no_errors_on_the_fixture(spec):
    target = get_target(spec)
    model, _ = run_pass(onnx.load(OPSET11), target.preset())
    assert target.lint(model).errors == [], spec


def test_a_dynamic_batch_through_resize_is_not_a_symbolic_shape():
    # shape inference names Resize's output batch unk__0, not the input's symbol
    upsample = graph('z = Resize <mode = "linear"> (x, "", s)  y = Relu(z)', inputs="float[N,3,8,8] x",
                     outputs="float[N,3,16,16] y", inits=SCALES)
    assert found(upsample, "ascend:cann8", "symbolic-shapes") == []
    model, _ = run_pass(onnx.load(BILINEAR), get_target("ascend").preset())
    assert get_target("ascend").lint(model).findings == []
