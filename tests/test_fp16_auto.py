"""fp16 judged on the float16 simulation: an activation past 65,504 fails the check (exit 3,
naming the tensor); fp16(auto=true) keeps that region in float32 and passes; keep= by name."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from models import invoke, overflow_model
from PIL import Image

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
