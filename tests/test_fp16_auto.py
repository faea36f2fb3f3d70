"""fp16 judged on the float16 simulation: an activation past 65,504 fails the check (exit 3,
naming the tensor); fp16(auto=true) keeps that region in float32 and passes; keep= by name."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image

from models import invoke, overflow_model

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("fp16")
    onnx.save(overflow_model(), root / "m.onnx")
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / "imgs" / f"{i}.png")
    assert invoke("prep", root / "imgs", "-o", root / "prep", "--size", 16).exit_code == 0
    return root


def test_overflow_fails_the_check_naming_the_tensor(work):
    out = work / "m16.onnx"
    result = invoke("apply", work / "m.onnx", "-o", out, "--passes", "fp16")
    assert result.exit_code == 3, result.output
    assert "float16 overflow (past 65,504) in tensor 'big'" in result.output
    assert "float16 simulated" in result.output and not out.exists()


def test_auto_keeps_the_overflowing_region_in_float32_and_passes(work):
    out = work / "auto.onnx"
    result = invoke("apply", work / "m.onnx", "-o", out, "--passes", "fp16(auto=true)",
                    "--data", work / "prep" / "imgs.info", "--json")
    assert result.exit_code == 0, result.output
    assert "kept in float32: conv2, relu2, conv3" in result.output and "overflow: 'big'" in result.output
    model = onnx.load(out)
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types == {"w1": onnx.TensorProto.FLOAT16, "w2": onnx.TensorProto.FLOAT, "w3": onnx.TensorProto.FLOAT,
                     "w4": onnx.TensorProto.FLOAT16}


def test_keep_by_name_and_unknown_names_refused(work):
    out = work / "keep.onnx"
    ok = invoke("apply", work / "m.onnx", "-o", out, "--passes", "fp16(keep=[conv2,relu2,conv3])")
    assert ok.exit_code == 0, ok.output
    bad = invoke("apply", work / "m.onnx", "-o", work / "bad.onnx", "--passes", "fp16(keep=[nope])")
    assert bad.exit_code != 0 and "keep names no node: nope" in bad.output and not (work / "bad.onnx").exists()


def test_auto_without_data_is_refused(work):
    result = invoke("apply", work / "m.onnx", "-o", work / "x.onnx", "--passes", "fp16(auto=true)")
    assert result.exit_code != 0 and "auto needs calibration images" in result.output


def test_lint_tensorrt_fp16_names_the_overflowing_node(work):
    info = work / "prep" / "imgs.info"
    asked = invoke("lint", work / "m.onnx", "--target", "tensorrt", "--data", info, "--precision", "fp16")
    assert asked.exit_code == 4, asked.output
    assert "tensor 'big' reaches" in asked.output and "nodes: conv2" in asked.output
    assert "--precisionConstraints=obey --layerPrecisions=conv2:fp32,relu2:fp32,conv3:fp32" in asked.output
    default = invoke("lint", work / "m.onnx", "--target", "tensorrt", "--data", info)
    assert default.exit_code == 0 and "predicted at fp32" in default.output
    bad = invoke("lint", work / "m.onnx", "--target", "tensorrt", "--data", info, "--precision", "fp8")
    assert bad.exit_code == 2 and "unknown precision 'fp8'" in bad.output


def test_lint_ascend_predicts_the_cyclegan_cosine(tmp_path):
    import json

    from models import OPSET11

    rng = np.random.default_rng(1)
    (tmp_path / "imgs").mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    assert invoke("prep", tmp_path / "imgs", "-o", tmp_path / "prep", "--size", 64).exit_code == 0
    result = invoke("lint", OPSET11, "--target", "ascend", "--data", tmp_path / "prep" / "imgs.info", "--json")
    prediction = json.loads(result.output)["prediction"]
    assert prediction["precision"] == "fp16" and "force_fp16" in prediction["how"]
    assert 0.999 < prediction["cos_mean"] < 1.0 and prediction["keep_float32"] == []
    kept = invoke("lint", OPSET11, "--target", "ascend", "--data", tmp_path / "prep" / "imgs.info",
                  "--precision", "must_keep_origin_dtype")
    assert "predicted at fp32" in kept.output


def test_fp16_keeps_the_casts_an_if_body_reads():
    """Fuzz campaign 2026-12-06, seed 789: the float32-region join dropped a Cast whose output
    only an If body read, and the body's Pad lost its input."""
    import onnx

    from graphsurgeon_cg.testing import assert_numerically_equal, run_pass

    model = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 18]>
        fuzz (float[1,3,4] x) => (float[1,3,9] if_out) <float[3] scales = {1.0, 1.0, 2.0}, bool cond = {0},
                                                        int64[6] pads = {0, 0, 0, 0, 0, 1}> {
            resized = Resize <mode = "nearest"> (x, "", scales)
            if_out = If (cond) <
                then_branch = then () => (float[1,3,9] a) { a = Pad <mode = "constant"> (resized, pads) },
                else_branch = other () => (float[1,3,9] b) { b = Pad <mode = "constant"> (resized, pads) }>
        }""")
    half, record = run_pass(model, "fp16")
    assert record.modified
    assert_numerically_equal(model, half, atol=1e-2, rtol=1e-2, reference=False)
