"""Regression tests for the pass defects the differential fuzzer found (issue 10), one minimal
pattern each: the rewrite happens (or is refused with a reason), the interface keeps its
names, the model passes the full checker, and the outputs agree in ONNX Runtime and
``onnx.reference`` (exact passes at atol 0 or 1e-5, lossy ones within their own bound)."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import InputError, PassFailed
from graphsurgeon_cg.check.session import make_session, run_session
from graphsurgeon_cg.testing import (
    assert_numerically_equal,
    check_pass_contract,
    model_from_text,
    random_inputs,
    run_pass,
)

HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def _interface(model: onnx.ModelProto, types: bool = True) -> tuple:
    inits = {t.name for t in model.graph.initializer}

    def describe(values):
        return [(v.name, v.type.tensor_type.elem_type if types else None) for v in values if v.name not in inits]

    return describe(model.graph.input), describe(model.graph.output)


def _valid(original: onnx.ModelProto, rewritten: onnx.ModelProto, types: bool = True) -> None:
    """Same interface (names, and element types unless the pass changes them), full check."""
    assert _interface(rewritten, types) == _interface(original, types)
    onnx.checker.check_model(rewritten, full_check=True)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _dims(value: onnx.ValueInfoProto) -> list | None:
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


# --- reflect2slice: a reflect Pad of zeros is a no-op --------------------------------------------

def test_reflect2slice_zero_pads_feeding_the_output_become_an_identity():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x) => (float[1,2,4,4] y) <int64[8] pads = {{0,0,0,0,0,0,0,0}}>
        {{ y = Pad<mode="reflect">(x, pads) }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert any("all pads are zero" in r for r in record.reasons)
    assert _ops(new) == ["Identity"]
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


def test_reflect2slice_zero_pads_inside_the_graph_are_bypassed():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x) => (float[1,2,4,4] y, float[1,2,4,4] z) <int64[8] pads = {{0,0,0,0,0,0,0,0}}>
        {{ p = Pad<mode="reflect">(x, pads)  y = Relu(p)  z = Neg(p) }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert sorted(_ops(new)) == ["Neg", "Relu"]
    assert all(list(n.input) == ["x"] for n in new.graph.node)
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


def test_reflect2slice_zero_pads_read_inside_an_if_are_bypassed():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x, bool c) => (float[1,2,4,4] y) <int64[8] pads = {{0,0,0,0,0,0,0,0}}> {{
          p = Pad<mode="reflect">(x, pads)
          y = If(c) <then_branch = g1 () => (float[1,2,4,4] z1) {{ z1 = Relu(p) }},
                     else_branch = g2 () => (float[1,2,4,4] z2) {{ z2 = Neg(p) }}>
        }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert _ops(new) == ["If"]
    _valid(model, new)
    for cond in (True, False):
        feeds = [{"x": np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32),
                  "c": np.array(cond)}]
        assert_numerically_equal(model, new, feeds, atol=0)


# --- static-batch: keep every declared shape, fix only the batch ---------------------------------

def _static_batch(text: str) -> onnx.ModelProto:
    model = model_from_text(text)
    new, record = run_pass(model, "static-batch(batch=1)")
    assert record.rewrites == 1
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)
    return new


def test_static_batch_keeps_declared_output_dims():
    new = _static_batch(f"""{HEADER}
        g (float[N,3] x) => (float[N,4] y) <float[3,4] w = {{1.,2.,3.,4.,5.,6.,7.,8.,9.,10.,11.,12.}}>
        {{ y = MatMul(x, w) }}""")
    assert _dims(new.graph.input[0]) == [1, 3]
    assert _dims(new.graph.output[0]) == [1, 4]


def test_static_batch_reshape_driven_by_shape_stays_valid():
    new = _static_batch(f"""{HEADER}
        g (float[N,3,4] x) => (float[N,12] y) {{
          zero = Constant<value = int64[1] {{0}}>()
          one = Constant<value = int64[1] {{1}}>()
          minus_one = Constant<value = int64[1] {{-1}}>()
          s = Shape(x)
          n = Slice(s, zero, one)
          t = Concat<axis=0>(n, minus_one)
          y = Reshape(x, t)
        }}""")
    assert _dims(new.graph.output[0]) == [1, 12]


def test_static_batch_loop_outputs_keep_their_shapes():
    new = _static_batch(f"""{HEADER}
        g (float[N,3] x) => (float[N,3] y, float[2,N,3] scan) {{
          trip = Constant<value = int64 {{2}}>()
          cond = Constant<value = bool {{1}}>()
          y, scan = Loop(trip, cond, x) <body = body (int64 i, bool c, float[N,3] a)
                                                  => (bool co, float[N,3] b, float[N,3] s) {{
            co = Identity(c)
            b = Relu(a)
            s = Identity(a)
          }}>
        }}""")
    assert [_dims(o) for o in new.graph.output] == [[1, 3], [2, 1, 3]]


def test_static_batch_if_outputs_keep_their_shapes():
    # inference cannot see through the else branch: the declared [N,4] used to become [unk, unk]
    new = _static_batch(f"""{HEADER}
        g (float[N,4] x, bool c) => (float[N,4] y) {{
          y = If(c) <then_branch = g1 () => (float[N,4] z1) {{ z1 = Relu(x) }},
                     else_branch = g2 () => (float[N,4] z2) {{ s = Shape(x)  z2 = Reshape(x, s) }}>
        }}""")
    assert _dims(new.graph.output[0]) == [1, 4]


def test_static_batch_does_not_trust_the_batch_name_on_other_axes():
    # torch.onnx.export declared this generator's output [batch, 3, batch, W]: axis 2 is 8, not the batch
    new = _static_batch(f"""{HEADER}
        g (float[batch,3,8,8] x) => (float[batch,3,batch,W] y) {{ y = Relu(x) }}""")
    assert _dims(new.graph.output[0]) == [1, 3, 8, 8]


# --- reflect2const: the zero has the type of the padded data -------------------------------------

REFLECT_F64 = f"""{HEADER}
    g (double[1,2,16,16] x) => (double[1,2,18,18] y) <int64[8] pads = {{0,0,1,1,0,0,1,1}}, double v = {{0.0}}>
    {{ t = Relu(x)  y = Pad<mode="MODE">(t, pads, v) }}"""


def test_reflect2const_pads_float64_with_a_float64_zero():
    model = model_from_text(REFLECT_F64.replace("MODE", "reflect"))
    new, record = run_pass(model, "reflect2const")
    assert record.rewrites == 1
    _valid(model, new)
    zero = next(t for t in new.graph.initializer if t.name == new.graph.node[-1].input[2])
    assert zero.data_type == onnx.TensorProto.DOUBLE
    # lossy by design: the result is exactly the zero-padded model, within the pass's cosine bound
    assert_numerically_equal(model_from_text(REFLECT_F64.replace("MODE", "constant")), new, atol=0)
    check_pass_contract("reflect2const(min_cos=0.5)", model)  # the bound is model-dependent: set for this one


def test_reflect2const_zero_follows_a_constant_node_and_bfloat16():
    model = model_from_text(f"""{HEADER}
        g (bfloat16[1,2,4,4] x) => (bfloat16[1,2,6,6] y) <int64[8] pads = {{0,0,1,1,0,0,1,1}}>
        {{ v = Constant<value = bfloat16 {{1}}>()  y = Pad<mode="reflect">(x, pads, v) }}""")
    new, record = run_pass(model, "reflect2const")
    assert record.rewrites == 1
    _valid(model, new)
    pad = next(n for n in new.graph.node if n.op_type == "Pad")
    zero = next(t for t in new.graph.initializer if t.name == pad.input[2])
    assert zero.data_type == onnx.TensorProto.BFLOAT16
    assert not onnx.numpy_helper.to_array(zero).astype(np.float32).any()


# --- an input that is also an output: the interface keeps its names ------------------------------

ALIASED = f"""{HEADER}
    g (float[1,3,4,4] x, float[1,3,4,4] w) => (float[1,3,4,4] x, float[1,3,4,4] y)
    {{ s = Add(x, w)  y = Tanh(s) }}"""


def _types(model: onnx.ModelProto, side: str) -> dict[str, int]:
    return {v.name: v.type.tensor_type.elem_type for v in getattr(model.graph, side)}


def test_fp16out_keeps_an_output_that_is_an_input():
    model = model_from_text(ALIASED)
    new, record = run_pass(model, "fp16out")
    assert record.rewrites == 1
    assert any("'x' is also a graph input" in r for r in record.reasons)
    _valid(model, new, types=False)
    assert _types(new, "input") == _types(model, "input")
    assert _types(new, "output") == {"x": onnx.TensorProto.FLOAT, "y": onnx.TensorProto.FLOAT16}
    assert_numerically_equal(model, new, atol=2.0**-24, rtol=2.0**-11)  # the pass's own bound
    check_pass_contract("fp16out", model)


def test_fp16out_converts_an_output_listed_twice_once():
    model = model_from_text(f"""{HEADER}
        g (float[1,3,4,4] x) => (float[1,3,4,4] y, float[1,3,4,4] y) {{ y = Relu(x) }}""")
    new, record = run_pass(model, "fp16out")
    assert record.rewrites == 1
    _valid(model, new, types=False)
    assert [o.type.tensor_type.elem_type for o in new.graph.output] == [onnx.TensorProto.FLOAT16] * 2
    assert_numerically_equal(model, new, atol=2.0**-24, rtol=2.0**-11)


def test_postproc_fold_keeps_an_output_that_is_an_input():
    model = model_from_text(ALIASED)
    new, record = run_pass(model, "postproc-fold")
    assert record.rewrites == 1
    assert any("'x' is also a graph input" in r for r in record.reasons)
    _valid(model, new, types=False)
    assert _types(new, "input") == _types(model, "input")
    assert _types(new, "output") == {"x": onnx.TensorProto.FLOAT, "y": onnx.TensorProto.UINT8}
    check_pass_contract("postproc-fold", model)  # outputs decoded by the pass's adapter, within its bound


def test_preproc_fold_keeps_an_input_that_is_an_output():
    model = model_from_text(ALIASED)
    new, record = run_pass(model, "preproc-fold")
    assert record.rewrites == 1  # w is converted, x is not
    assert any("'x' is also a graph output" in r for r in record.reasons)
    _valid(model, new, types=False)
    assert _types(new, "input") == {"x": onnx.TensorProto.FLOAT, "w": onnx.TensorProto.UINT8}
    assert _types(new, "output") == _types(model, "output")
    check_pass_contract("preproc-fold", model)  # inputs encoded by the pass's adapter, within its bound


def test_fp16_converts_a_model_whose_input_is_an_output():
    model = model_from_text(f"""{HEADER}
        g (float[1,3,4,4] x) => (float[1,3,4,4] x, float[1,3,4,4] y) <float[1] w = {{0.5}}>
        {{ y = Mul(x, w) }}""")
    new, record = run_pass(model, "fp16")
    assert record.rewrites == 1
    _valid(model, new)
    assert onnx.numpy_helper.to_array(new.graph.initializer[0]).dtype == np.float16
    assert_numerically_equal(model, new, atol=2.0**-11)  # x is the input itself; y: float16 rounding of x * 0.5
    check_pass_contract("fp16", model)


# --- opset: the conversion keeps the numbers, and is verified --------------------------------------

def _resize10(mode: str, scales: tuple, op: str = "Resize", opset: int = 10) -> str:
    shape = (1, 2, 6, 8)
    out = [int(np.floor(d * s)) for d, s in zip(shape, scales)]

    def dims(values) -> str:
        return ",".join(map(str, values))

    return f"""<ir_version: 5, opset_import: ["" : {opset}]>
        g (float[{dims(shape)}] x) => (float[{dims(out)}] y) <float[4] s = {{{dims(scales)}}}>
        {{ y = {op}<mode="{mode}">(x, s) }}"""


def _converted_equal(model: onnx.ModelProto, new: onnx.ModelProto, atol: float = 0.0) -> None:
    """ORT runs both; onnx.reference cannot run Resize-10, so there the converted model must
    match what ORT computes for the original."""
    from onnx.reference import ReferenceEvaluator

    feeds = random_inputs(model, samples=2)
    assert_numerically_equal(model, new, feeds, atol=atol, reference=False)
    for feed, want in zip(feeds, run_session(make_session(model), feeds)):
        got = ReferenceEvaluator(new).run(None, feed)
        for name, value in zip(want, got):
            np.testing.assert_allclose(value, want[name], rtol=0, atol=1e-5)


@pytest.mark.parametrize("op, mode, scales, nearest_mode", [
    ("Resize", "linear", (1.0, 1.0, 2.0, 2.0), None),
    ("Resize", "linear", (1.0, 1.0, 0.5, 1.5), None),
    ("Resize", "nearest", (1.0, 1.0, 1.5, 2.5), "floor"),
    ("Resize", "nearest", (1.0, 1.0, 0.4, 0.6), "ceil"),
    ("Upsample", "linear", (1.0, 1.0, 2.0, 2.0), None),
    ("Upsample", "nearest", (1.0, 1.0, 1.5, 3.0), "floor"),
])
def test_opset_upgrade_keeps_opset10_resize_semantics(op, mode, scales, nearest_mode):
    model = model_from_text(_resize10(mode, scales, op=op, opset=10 if op == "Resize" else 9))
    new, record = run_pass(model, "opset(version=13)")
    assert record.rewrites == 1 and not record.reasons
    resize = next(n for n in new.graph.node if n.op_type == "Resize")
    attrs = {a.name: a.s.decode() for a in resize.attribute if a.type == onnx.AttributeProto.STRING}
    assert attrs["coordinate_transformation_mode"] == "asymmetric"
    assert attrs.get("nearest_mode") == nearest_mode
    _valid(model, new)
    _converted_equal(model, new, atol=1e-5 if mode == "linear" else 0.0)


def test_opset_refuses_nearest_scales_that_enlarge_and_shrink():
    model = model_from_text(_resize10("nearest", (1.0, 1.0, 0.4, 2.0)))
    with pytest.raises(InputError, match="opset: the Resize producing 'y' .* rounds down on the enlarged axes and up "
                                         "on the shrunk ones in opset 10, which opset 11 cannot express"):
        run_pass(model, "opset(version=11)")


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_opset_drops_a_dead_pad_value(mode):
    model = model_from_text(f"""<ir_version: 4, opset_import: ["" : 2]>
        g (float[1,2,3,4] x) => (float[1,2,5,6] y)
        {{ y = Pad<mode="{mode}", pads=[0,0,1,1,0,0,1,1], value=1.5>(x) }}""")
    new, record = run_pass(model, "opset(version=11)")
    assert record.rewrites == 1
    [pad] = new.graph.node
    assert pad.op_type == "Pad" and len(pad.input) == 2  # data and pads: no constant_value operand
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


@pytest.mark.parametrize("dtype", ["float16", "double"])
def test_opset_pad_value_takes_the_data_type(dtype):
    model = model_from_text(f"""<ir_version: 5, opset_import: ["" : 10]>
        g ({dtype}[1,3,4,4] x) => ({dtype}[1,3,4,5] y)
        {{ t = Relu(x)  y = Pad<mode="constant", pads=[0,0,0,0,0,0,0,1], value=2.0>(t) }}""")
    new, record = run_pass(model, "opset(version=18)")
    assert record.rewrites == 1 and not record.reasons  # converted and verified
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


def test_opset_lowers_what_the_converter_has_no_adapter_for_and_refuses_what_cannot_go_down():
    model = model_from_text("""<ir_version: 8, opset_import: ["" : 18]>
        g (float[1,3,4,4] x) => (float[1,3,4,5] y) <int64[8] pads = {0,0,0,0,0,0,0,1}>
        { y = Pad<mode="constant">(x, pads) }""")  # the converter has no adapter to version 17 of Pad
    new, _ = run_pass(model, "opset(version=11)")
    assert new.opset_import[0].version == 11
    assert_numerically_equal(model, new, atol=0)
    model = model_from_text("""<ir_version: 8, opset_import: ["" : 18]>
        g (float[1,3,4] x) => (float[1,3,8] y) <float[1] scales = {2.0}>
        { y = Resize<axes=[2], mode="nearest">(x, "", scales) }""")
    with pytest.raises(InputError, match="opset: cannot take this model from opset 18 to 13: Resize-18 'y' cannot go "
                                         "to opset 13: axes exists only from opset 18") as raised:
        run_pass(model, "opset(version=13)")
    assert raised.value.exit_code == 2


def test_opset_fails_when_the_conversion_changes_the_outputs(monkeypatch):
    real = onnx.version_converter.convert_version

    def sabotaged(model, version):  # a converter that forgets a Resize-10 fix we do not make
        converted = real(model, version)
        for node in converted.graph.node:
            if node.op_type == "Relu":
                node.op_type = "Sigmoid"
        return converted

    monkeypatch.setattr(onnx.version_converter, "convert_version", sabotaged)
    model = model_from_text("""<ir_version: 5, opset_import: ["" : 10]>
        g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }""")
    with pytest.raises(PassFailed, match="changed output 'y' by up to"):
        run_pass(model, "opset(version=13)")


def test_opset_says_when_it_cannot_verify():
    model = model_from_text("""<ir_version: 5, opset_import: ["" : 10]>
        g (float[1,3,H,W] x) => (float[1,3,H,W] y) { y = Relu(x) }""")
    new, record = run_pass(model, "opset(version=13)")
    assert record.rewrites == 1
    assert any("converted without a numeric check" in r and "dynamic axes 2 (H), 3 (W)" in r for r in record.reasons)
    _valid(model, new)


# --- int8: every input is fed during calibration -------------------------------------------------

def _conv_weights(shape: tuple) -> str:
    values = np.random.default_rng(1).uniform(-0.5, 0.5, shape)
    return f"float[{','.join(map(str, shape))}] w = {{{','.join(f'{v:.4f}' for v in values.ravel())}}}"


def _two_input_model(second: str) -> onnx.ModelProto:
    return model_from_text(f"""{HEADER}
        g (float[N,3,8,8] x, {second} z) => (float[N,4,8,8] y) <{_conv_weights((4, 3, 3, 3))}>
        {{ s = Add(x, z)  y = Conv<pads=[1,1,1,1]>(s, w) }}""")


def _info(tmp_path, count: int = 3) -> str:
    from graphsurgeon_cg.stages.dataset import Sample, write_info

    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        path = tmp_path / f"calib{i}.npy"
        np.save(path, rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32))
        samples.append(Sample(i, path, 8, 8))
    write_info(tmp_path / "calib.info", samples)
    return str(tmp_path / "calib.info")


def test_int8_calibrates_every_image_input(tmp_path):
    model = _two_input_model("float[N,3,8,8]")
    info = _info(tmp_path)
    new, record = run_pass(model, "int8(samples=3,min_cos=0.9)", data=info)
    assert record.rewrites == 1
    _valid(model, new)
    check_pass_contract("int8(samples=3,min_cos=0.9)", model, data=info)  # within its own cosine bound


# A second input the info file's 3x8x8 images cannot feed: an int64 index map, a smaller image.
UNFED = {
    "int64": ("int64[N,3,8,8] z", "f = Cast<to=1>(z)", "it is int64, not a float image"),
    "smaller": ("float[N,3,4,4] z", 'f = Resize<mode="nearest">(z, "", scales)', "it takes Nx3x4x4, not 1x3x8x8"),
}


@pytest.mark.parametrize("case", sorted(UNFED))
def test_int8_refuses_an_input_without_calibration_data(tmp_path, case):
    second, make_f, why = UNFED[case]
    model = model_from_text(f"""{HEADER}
        g (float[N,3,8,8] x, {second}) => (float[N,4,8,8] y) <{_conv_weights((4, 3, 3, 3))}> {{
          scales = Constant<value = float[4] {{1.0, 1.0, 2.0, 2.0}}>()
          {make_f}
          s = Add(x, f)
          y = Conv<pads=[1,1,1,1]>(s, w)
        }}""")
    with pytest.raises(InputError, match=re.escape(f"int8: input 'z' has no calibration data: {why}")) as raised:
        run_pass(model, "int8(samples=3)", data=_info(tmp_path))
    assert raised.value.exit_code == 2
    assert "\n" not in str(raised.value)


def test_int8_quantises_a_model_whose_input_is_an_output(tmp_path):
    model = model_from_text(f"""{HEADER}
        g (float[N,3,8,8] x) => (float[N,3,8,8] x, float[N,4,8,8] y) <{_conv_weights((4, 3, 3, 3))}>
        {{ y = Conv<pads=[1,1,1,1]>(x, w) }}""")
    info = _info(tmp_path)
    new, record = run_pass(model, "int8(samples=3,min_cos=0.9)", data=info)
    assert record.rewrites == 1
    _valid(model, new)
    check_pass_contract("int8(samples=3,min_cos=0.9)", model, data=info)
