"""Verdicts: which bar judges a run (a target's 0.99, or --min-cos), on which samples, the
atol/rtol test that stands in for an ill-conditioned cosine on near-zero outputs, bounds of
passes that changed nothing, lossy passes judged on their own change, and the report's
pictures of the worst samples."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from graphsurgeon_cg import PassManager
from graphsurgeon_cg.check import CheckSettings, NumericChecker
from graphsurgeon_cg.check.metrics import compare_outputs
from graphsurgeon_cg.core.bounds import Bound

from models import BILINEAR, OPSET11, float_input, invoke, make_model

BAR = "mean per-pixel cosine >= 0.99 (target ascend:cann8's bar)"


def _probability_map(path, bias: float, jitter: float = 0.0, seed: int = 0):
    """x [1,3,32,32] -> Conv to one channel -> + bias -> Sigmoid: a detector's text map. With
    a bias of -18 every value is ~1e-8 on any input; ``jitter`` moves the weights a little."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.3, (1, 3, 3, 3)).astype(np.float32)
    w += jitter * np.random.default_rng(seed + 1).normal(0, 1, w.shape).astype(np.float32)
    inits = [onnx.numpy_helper.from_array(w, "w"),
             onnx.numpy_helper.from_array(np.asarray(bias, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "b"], ["z"]), helper.make_node("Sigmoid", ["z"], ["y"])]
    model = make_model(nodes, [float_input("x", [1, 3, 32, 32])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32, 32])], inits)
    onnx.save(model, path)
    return path


def test_near_zero_output_passes_by_atol_rtol_and_says_so(tmp_path):
    ref = _probability_map(tmp_path / "a.onnx", -18.0)
    near = _probability_map(tmp_path / "b.onnx", -18.0, jitter=0.05)
    result = invoke("diff", ref, near, "--min-cos", 0.9999)
    assert result.exit_code == 0, result.output + result.stderr
    # the cosine alone would have failed: a few-percent change of values ~1e-8 is noise
    cos = float(result.output.split("  cos ")[1].split()[0])
    assert cos < 0.9999
    assert "(judged by atol/rtol: max |diff|" in result.output and "<= 1e-05 + 0.001·|ref|" in result.output
    assert "warning: output 'y' is nearly constant on these inputs" in result.output  # random inputs test little
    assert "--data INFO" in result.output


def test_near_zero_reference_with_a_real_change_fails(tmp_path):
    ref = _probability_map(tmp_path / "a.onnx", -18.0)
    changed = _probability_map(tmp_path / "c.onnx", -1.0)  # values ~0.3: a real change
    result = invoke("diff", ref, changed, "--min-cos", 0.9999)
    assert result.exit_code == 3
    assert "output 'y': cos 0." in result.stderr and "is below 0.9999" in result.stderr
    assert "and |diff| exceeds 1e-05 + 0.001·|ref| (max |diff| 0.7" in result.stderr


def test_a_tiny_change_of_an_all_zero_output_holds_a_cosine_bound():
    """The report's int8 step once scored cos 0.000 and FAILED on a change of 1.8e-07."""
    zero = {"y": np.zeros((1, 1, 8, 8), np.float32)}
    moved = {"y": np.full((1, 1, 8, 8), 1.8e-7, np.float32)}
    result = compare_outputs([zero], [moved], Bound(min_cos=0.95))
    assert result.outputs[0].cos == 0.0 and result.ok
    assert result.judged["y"].startswith("atol/rtol: max |diff| 1.8e-07 <= 1e-05 + 0.001·|ref|")


@pytest.fixture
def info(tmp_path):
    """Five photos-like images, the last with a hard, high-contrast border (where reflect
    padding and zero padding differ most) so that it is not first in file order."""
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        ramp = np.linspace(60, 200, 64)[None, :, None] * np.ones((64, 1, 3))
        image = 0.8 * ramp + 0.2 * rng.uniform(0, 255, (64, 64, 3))
        if i == 4:
            image[:3], image[-3:], image[:, :3], image[:, -3:] = 255, 255, 255, 255
        Image.fromarray(image.astype(np.uint8)).save(src / f"p{i}.png")
    assert invoke("prep", src, "-o", tmp_path / "prep", "--size", 64).exit_code == 0
    return tmp_path / "prep" / "imgs.info"


def test_lossy_target_is_judged_by_the_vendor_bar_on_the_data_samples(tmp_path, info):
    out = tmp_path / "o.onnx"
    lossy = invoke("apply", OPSET11, "-o", out, "--target", "ascend", "--lossy", "--data", info)
    assert lossy.exit_code == 3, lossy.output + lossy.stderr
    assert BAR in lossy.stderr and f"on 4 samples of {info}" in lossy.stderr
    assert "after pass 'reflect2const'" in lossy.stderr
    assert not out.exists()
    exact = invoke("apply", OPSET11, "-o", out, "--target", "ascend", "--data", info, "--samples", 5)
    assert exact.exit_code == 0, exact.stderr
    assert f"OK, judged by |diff| <= 1e-05 and {BAR} on 5 samples of {info}" in exact.output
    looser = invoke("apply", OPSET11, "-o", out, "--target", "ascend", "--lossy", "--data", info, "--min-cos", 0.5)
    assert looser.exit_code == 0, looser.stderr
    assert "OK, judged by mean per-pixel cosine >= 0.5 (the bar given, min_cos)" in looser.output
    random = invoke("apply", OPSET11, "-o", out, "--target", "ascend")
    assert "on 1 random input (seed 0): random inputs say little about a real model" in random.output


def test_a_pass_that_changed_nothing_adds_nothing_to_the_bound():
    model = onnx.load(OPSET11)  # no Resize: resize-nearest has nothing to do
    pipeline = "fold-constants,reflect2const(min_cos=0.5),resize-nearest(min_cos=0.5)"
    manager = PassManager(pipeline, instruments=[NumericChecker(CheckSettings())])
    assert manager.bound.min_cos == pytest.approx(0.0)  # what the pipeline may declare at most
    result = manager.run(model)
    assert result.records[2].rewrites == 0 and not result.records[2].modified
    assert result.bound.min_cos == pytest.approx(0.5)  # not 0.5 + 0.5 of cosine loss
    assert result.check.bound.min_cos == pytest.approx(0.5)


def test_lossy_passes_are_judged_on_their_own_change(tmp_path):
    """Chained, the bounds 0.5 and 0.999 allow a cosine of 0.499 in all; resize-nearest alone
    drops it far below its own 0.999, and that is the verdict."""
    result = invoke("apply", BILINEAR, "-o", tmp_path / "o.onnx",
                    "--passes", "fold-constants,reflect2const(min_cos=0.5),resize-nearest(min_cos=0.999)")
    assert result.exit_code == 3
    assert "after pass 'resize-nearest'" in result.stderr and "resize-nearest's own bound" in result.stderr


def test_report_shows_the_worst_samples_and_draws_the_bar(tmp_path, info):
    rep = tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes",
                    "fold-constants,reflect2const(min_cos=0.3)", "--report", rep, "--data", info, "--samples", 5,
                    "--min-cos", 0.3)
    assert result.exit_code == 0, result.stderr
    data = json.loads((rep / "report.json").read_text())
    scores = {s["name"]: s["pixel_cos"] for s in data["passes"][-1]["samples"]}
    worst = sorted(scores, key=scores.get)[:3]
    assert data["shown_samples"] == worst
    assert worst[0] == "p4"  # the bordered image, last in file order
    assert data["bar"] == 0.3
    page = (rep / "report.html").read_text()
    assert all((f"<h3>{name}</h3>" in page) == (name in worst) for name in scores)
    assert "scored worst after the pipeline (by pixel_cos): " + ", ".join(worst) in page
    md = (rep / "report.md").read_text()
    assert not re.search(r"\binf\b|∞", md) and "| identical |" in md  # fold-constants: PSNR identical


def test_report_on_a_near_zero_output_holds_by_atol_rtol(tmp_path):
    """A change of ~1e-9 to a map of ~1e-8: the report's bound and gate do not fail on cosine noise."""
    model = _probability_map(tmp_path / "a.onnx", -18.0)
    rep = tmp_path / "rep"
    result = invoke("apply", model, "-o", tmp_path / "o.onnx", "--passes", "fp16out", "--report", rep,
                    "--min-cos", 0.99)
    assert result.exit_code == 0, result.stderr
    step = json.loads((rep / "report.json").read_text())["passes"][0]
    assert step["metrics"]["cos_mean"] < 0.99  # the cosine alone would fail the gate
    assert step["metrics"]["close"] and step["step"]["held"]
    assert "(judged by max |diff|" in result.output and "; atol/rtol: max |diff|" in result.output
    assert "warning: output 'y' is nearly constant" in result.output
