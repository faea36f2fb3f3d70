"""cgsurg tune on the tiny fixture with a small budget: a bar it can meet, one it cannot,
overlapping calibration/evaluation sets refused. Timings here are not judged (the suite's
numbers are noise); benchmarks/ measures speed."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import OPSET11, invoke


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("tune")
    rng = np.random.default_rng(1)
    infos = {}
    for split, count in (("calib", 4), ("eval", 3)):
        src = root / split
        src.mkdir()
        for i in range(count):
            ramp = np.linspace(0, 255, 64)[None, :, None] * np.ones((64, 1, 3))
            Image.fromarray((0.6 * ramp + 0.4 * rng.uniform(0, 255, (64, 64, 3))).astype(np.uint8)).save(
                src / f"{split}{i}.png")
        assert invoke("prep", src, "-o", root / f"{split}_prep", "--size", 64).exit_code == 0
        infos[split] = root / f"{split}_prep" / f"{split}.info"
    return infos


def _tune(sets, out, *extra):
    return invoke("tune", OPSET11, "--data", sets["calib"], "--eval", sets["eval"], "--rounds", 1,
                  "--batches", "1,2", "-o", out, *extra)


def test_tune_finds_a_candidate_meeting_a_bar_it_can_meet(sets, tmp_path):
    out = tmp_path / "t"
    result = _tune(sets, out, "--min-cos", "0.99", "--only", "exact,ConvTranspose float")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "tune.json").read_text())
    labels = [c["label"] for c in report["candidates"]]
    assert labels == ["original", "exact", "int8 qdq percentile (ConvTranspose float)"]
    assert report["winner"]["label"] in labels[1:]
    winner = next(c for c in report["candidates"] if c["label"] == report["winner"]["label"])
    assert winner["meets"] and winner["eval_cos"]["mean"] >= 0.99
    int8 = report["candidates"][2]
    assert 0.9 < int8["eval_cos"]["mean"] < 1.0  # really lossy, judged on the evaluation set
    assert set(int8["img_per_s"]) == {"1", "2"} and int8["vs_ort_fp32"]["1"] > 0
    assert (out / "best.onnx").is_file() and "<svg" in (out / "tune.html").read_text()
    assert all(Path(c["model"]).is_file() for c in report["candidates"])  # not the staging folder's paths
    assert "cgsurg apply" in result.output and "AVX" in result.output or "no AVX2" in result.output


def test_tune_exits_3_naming_the_closest_when_nothing_meets_the_bar(sets, tmp_path):
    out = tmp_path / "t"
    result = _tune(sets, out, "--min-cos", "0.99999", "--only", "qdq percentile")
    assert result.exit_code == 3, result.output
    assert "no candidate meets mean per-pixel cosine 0.99999" in result.output
    assert "closest: int8 qdq percentile (ConvTranspose float)" in result.output
    assert json.loads((out / "tune.json").read_text())["winner"] is None  # the frontier is still shown


def test_tune_says_the_budget_ran_out_when_it_evaluated_nothing(sets, tmp_path):
    out = tmp_path / "t"
    result = _tune(sets, out, "--budget", "0.00001", "--only", "exact")
    assert result.exit_code == 3, result.output
    assert "budget of 1e-05 min ran out before any candidate was evaluated" in result.output
    assert "not evaluated: exact on ort" in result.output and "--budget" in result.output
    assert "no candidate meets" not in result.output


def test_tune_refuses_overlapping_sets_and_unknown_candidates(sets, tmp_path):
    result = invoke("tune", OPSET11, "--data", sets["calib"], "--eval", sets["calib"], "-o", tmp_path / "t")
    assert result.exit_code == 2 and "share 4 sample(s)" in result.output
    assert not (tmp_path / "t").exists()
    result = _tune(sets, tmp_path / "t", "--only", "nothing-like-this")
    assert result.exit_code == 2 and "no candidate label contains" in result.output
    assert not (tmp_path / "t").exists()
