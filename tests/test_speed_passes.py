"""int8, preproc-fold, postproc-fold and fp16: rewritten, within bound, idempotent, no-op when n/a."""

import numpy as np
import onnx
import pytest
from PIL import Image

from graphsurgeon_cg import InputError, PassManager, load_model, save_model
from graphsurgeon_cg.check import NumericChecker
from graphsurgeon_cg.check.metrics import pixel_cosine
from graphsurgeon_cg.stages.dataset import load_sample, read_info

from models import OPSET11, folded, image_feeds, invoke, max_abs, ops, ort_run, pad_model, run_pass


def _convs(model):
    return ops(model)["Conv"] + ops(model)["ConvTranspose"]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Two disjoint sets of preprocessed images: calibration and evaluation."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    infos = {}
    for split, count in (("calib", 6), ("eval", 3)):
        src = root / split
        src.mkdir()
        for i in range(count):
            ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((64, 1, 3))
            noise = rng.uniform(0, 255, (64, 64, 3))
            Image.fromarray((0.6 * ramp + 0.4 * noise).astype(np.uint8)).save(src / f"{split}{i}.png")
        assert invoke("prep", src, "-o", root / f"{split}_prep", "--size", 64).exit_code == 0
        infos[split] = root / f"{split}_prep" / f"{split}.info"
    return infos


def eval_feeds(info):
    return [{"img_sat_maps": load_sample(s)[None]} for s in read_info(info)]


def test_int8_quantises_convs_within_bound_on_held_out_images(calibration):
    model = folded(OPSET11)
    pipeline = f"int8(data={calibration['calib']},min_cos=0.9)"
    new, record = run_pass(model, pipeline)
    counts = ops(new)
    # every Conv but the first and last; ConvTranspose stays float by default (keep_ops)
    assert record.rewrites == ops(model)["Conv"] - 2
    assert counts["QuantizeLinear"] > 0
    assert counts["DequantizeLinear"] > 0
    assert "kept in float" in record.reasons[0]
    assert [o.version for o in new.opset_import if o.domain == ""] == [13]  # per-channel QDQ needs 13
    cos = []
    for feed in eval_feeds(calibration["eval"]):  # images the calibration never saw
        a, b = ort_run(model, feed)[0], ort_run(new, feed)[0]
        assert np.abs(a - b).max() > 1e-3  # lossy: really different
        cos.append(pixel_cosine(a, b))
    assert min(cos) >= 0.9
    _, again = run_pass(new, pipeline)
    assert again.rewrites == 0
    assert not again.modified
    assert "already quantised" in again.reasons[0]


def test_int8_qoperator_and_minmax(calibration):
    model = folded(OPSET11)
    options = "format=qoperator,method=minmax,keep_first_last=false"
    new, record = run_pass(model, f"int8(data={calibration['calib']},{options})")
    assert ops(model)["ConvTranspose"] > 0
    assert ops(new)["QLinearConv"] == ops(model)["Conv"]  # every Conv; ConvTranspose has no QOperator kernel
    assert record.rewrites == ops(model)["Conv"]


def test_int8_keep_float_leaves_named_convs_in_float(calibration):
    model = folded(OPSET11)
    conv = next(n.name for n in model.graph.node if n.op_type == "Conv" and "model.4" in n.name)
    new, record = run_pass(model, f"int8(data={calibration['calib']},keep_float=[{conv}])")
    assert record.rewrites == ops(model)["Conv"] - 3  # first, last and the named one kept in float
    assert conv in record.reasons[0]
    with pytest.raises(InputError, match="int8: keep_float names no Conv/ConvTranspose node: nope"):
        run_pass(model, f"int8(data={calibration['calib']},keep_float=[nope])")


def test_int8_keeps_conv_transpose_float_unless_asked(calibration):
    model = folded(OPSET11)
    new, record = run_pass(model, f"int8(data={calibration['calib']},keep_first_last=false)")
    assert record.rewrites == ops(model)["Conv"]
    quantised, record = run_pass(model, f"int8(data={calibration['calib']},keep_first_last=false,keep_ops=[])")
    assert record.rewrites == _convs(model)


def _calibration_cosine(model, new, info):
    return float(np.mean([pixel_cosine(ort_run(model, f)[0], ort_run(new, f)[0]) for f in eval_feeds(info)]))


@pytest.mark.parametrize("bar", [0.999, 0.99999])
def test_int8_auto_mixed_precision_meets_the_bar_on_calibration_or_says_it_cannot(calibration, bar):
    """keep_float=[auto] keeps float the fewest layers that make the calibration cosine meet min_cos
    (the ORT quantiser's result on this random-weight model: 0.996 with every layer quantised)."""
    model = folded(OPSET11)
    spec = f"int8(data={calibration['calib']},keep_float=[auto],keep_first_last=false,keep_ops=[],min_cos={bar})"
    new, record = run_pass(model, spec)
    first = float(record.reasons[0].split()[1])
    assert first < 0.999, "the test needs a model whose full quantisation misses the bar"
    got = _calibration_cosine(model, new, calibration["calib"])
    if bar < 0.9999:
        assert got >= bar and 0 < record.rewrites < _convs(model), (got, record.reasons)
    else:  # met only by keeping (nearly) everything float, or said to be out of reach
        assert got >= bar or any("no mix reached" in r for r in record.reasons), record.reasons
        assert record.rewrites <= 2, record.reasons


def test_int8_needs_data_and_is_a_noop_without_convs(calibration):
    with pytest.raises(InputError, match="int8: needs calibration images"):
        run_pass(folded(OPSET11), "int8")
    _, record = run_pass(pad_model([1, 1, 4, 4], [0, 0, 1, 1, 0, 0, 1, 1]), f"int8(data={calibration['calib']})")
    assert record.rewrites == 0
    assert "no Conv, ConvTranspose node" in record.reasons[0]


def test_preproc_fold_equals_host_preprocessing(calibration):
    model = folded(OPSET11)
    paths = [s.path for s in read_info(calibration["eval"])]
    for layout in ("nchw", "nhwc"):
        new, record = run_pass(model, f"preproc-fold(layout={layout})")
        assert record.rewrites == 1
        inp = new.graph.input[0]
        assert inp.name == "img_sat_maps"
        assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
        for path in paths:
            host = np.load(path)[None]  # what prep wrote: x / 127.5 - 1
            pixels = np.clip(np.round((host + 1) * 127.5), 0, 255).astype(np.uint8)
            feed = pixels.transpose(0, 2, 3, 1) if layout == "nhwc" else pixels
            ref = ort_run(model, {"img_sat_maps": host})[0]
            got = ort_run(new, {"img_sat_maps": feed})[0]
            assert np.abs(ref - got).max() <= 1e-4
        _, again = run_pass(new, "preproc-fold")
        assert again.rewrites == 0
        assert "not a float32" in again.reasons[0]


def test_preproc_fold_per_channel_mean_and_scale_checked_by_the_manager():
    manager = PassManager("fold-constants,preproc-fold(mean=[120,110,100],scale=[60,62,64])",
                          instruments=[NumericChecker()])
    result = manager.run(load_model(OPSET11))
    assert result.check.ok
    assert result.check.outputs[0].max_abs <= 1e-4


def test_postproc_fold_returns_the_png_bytes():
    model = folded(OPSET11)
    for layout in ("nchw", "nhwc"):
        new, record = run_pass(model, f"postproc-fold(layout={layout})")
        assert record.rewrites == 1
        assert new.graph.output[0].name == "maps"
        feeds = image_feeds()
        ref, got = ort_run(model, feeds)[0], ort_run(new, feeds)[0]
        expected = np.clip((ref + 1) * 127.5, 0, 255).round().astype(np.uint8)
        if layout == "nhwc":
            expected = expected.transpose(0, 2, 3, 1)
        assert got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
        _, again = run_pass(new, "postproc-fold")
        assert again.rewrites == 0
        assert not again.modified


def test_folded_model_runs_in_prep_uint8_and_infer(tmp_path, calibration):
    new, _ = run_pass(load_model(OPSET11), "fold-constants,preproc-fold(layout=nhwc),postproc-fold(layout=nhwc)")
    path = save_model(new, tmp_path / "u8.onnx")
    src = read_info(calibration["eval"])[0].path.parent.parent / "eval"
    assert invoke("prep", src, "-o", tmp_path / "u8", "--size", 64, "--dtype", "uint8").exit_code == 0
    result = invoke("infer", path, "--data", tmp_path / "u8" / "eval.info", "-o", tmp_path / "out", "--png")
    assert result.exit_code == 0, result.stderr
    out = np.load(tmp_path / "out" / "eval0.npy")
    assert out.dtype == np.uint8
    assert out.shape == (64, 64, 3)
    assert len(list((tmp_path / "out").glob("*.png"))) == 3


def test_fp16_whole_model_within_bound_keeps_io_float32():
    model = folded(OPSET11)
    new, record = run_pass(model, "fp16")
    assert record.rewrites > 0
    assert new.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in new.graph.initializer)
    assert all(n.op_type != "InstanceNormalization" or all(
        i not in {t.name for t in new.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16} for i in n.input)
        for n in new.graph.node)  # blocked ops keep float32 parameters
    feeds = image_feeds()
    a, b = ort_run(model, feeds)[0], ort_run(new, feeds)[0]
    assert 0 < np.abs(a - b).max()
    assert pixel_cosine(a, b) >= 0.99
    _, again = run_pass(new, "fp16")
    assert again.rewrites == 0
    assert not again.modified


def test_int8_calibrates_once_per_model_method_and_samples(calibration):
    """The ranges do not depend on the float layers or the format: tune's int8 candidates and
    the mixed-precision search share one calibration (ORT's calibration_cache_path)."""
    import graphsurgeon_cg.passes.int8 as int8

    model = folded(OPSET11)
    before = set(int8._cache_folder().glob("*.json"))  # other tests' calibrations, in this process
    first, _ = run_pass(model, f"int8(data={calibration['calib']},method=minmax,samples=3)")
    cached = set(int8._cache_folder().glob("*.json"))
    assert len(cached - before) == 1
    again, _ = run_pass(model, f"int8(data={calibration['calib']},method=minmax,samples=3,keep_first_last=false)")
    qop, _ = run_pass(model, f"int8(data={calibration['calib']},method=minmax,samples=3,format=qoperator)")
    assert set(int8._cache_folder().glob("*.json")) == cached  # no new calibration
    feeds = image_feeds(1)
    assert max_abs(ort_run(first, feeds), ort_run(run_pass(model, f"int8(data={calibration['calib']},"
                                                                  "method=minmax,samples=3)")[0], feeds)) == 0
    run_pass(model, f"int8(data={calibration['calib']},method=percentile,samples=3)")
    assert len(set(int8._cache_folder().glob("*.json")) - cached) == 1  # another method: its own ranges
