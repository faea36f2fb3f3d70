"""cgsurg run CONFIG and cgsurg demo, end to end on small models."""

import json
from pathlib import Path

import pytest
import yaml

from models import OPSET11, invoke

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_example_config_runs_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = invoke("run", EXAMPLES / "run.yaml", "-o", out)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failed"] is None
    assert summary["eval"]["images"] == 4
    assert summary["eval"]["pixel_cos"]["min"] > 0.999  # fp16 output rounding only
    assert [r["batch"] for r in summary["bench"]["rewritten"]["results"]] == [1, 16]
    assert [p["name"] for p in summary["passes"]] == ["fold-constants", "reflect2slice", "pad-conv-fusion", "fp16out"]
    for name in ("model_rewritten.onnx", "report/report.html", "eval.json", "bench.json", "summary.md"):
        assert (out / name).exists(), name
    assert len(list((out / "infer_rewritten").glob("*.npy"))) == 4


def test_a_failing_gate_exits_3_and_still_writes_the_summary(tmp_path):
    config = yaml.safe_load((EXAMPLES / "run.yaml").read_text())
    config.update(model=str(OPSET11), dataset=str(EXAMPLES / "images"), bench_rounds=1,
                  pipeline="fold-constants,reflect2const(min_cos=0.5),pad-conv-fusion")
    path = tmp_path / "lossy.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "run"
    result = invoke("run", path, "-o", out)
    assert result.exit_code == 3, result.output + result.stderr
    assert "reflect2const" in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "reflect2const" in summary["failed"]
    assert (out / "report" / "report.html").exists()
    assert not (out / "model_rewritten.onnx").exists()


@pytest.mark.parametrize("content, message", [
    ("pipeline: fold-constants\n", "'dataset' is required"),
    ("pipeline: x\ndataset: d\nmodel: m.onnx\ncheckpoint: c.pth\n", "exactly one of 'model'"),
    ("pipeline: x\ndataset: d\nmodel: m.onnx\nbatchsize: 3\n", "unknown key 'batchsize'"),
    ("- just\n- a list\n", "must be a mapping"),
    ("pipeline: [unclosed\n", "is not YAML or JSON"),
])
def test_bad_configs(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    result = invoke("run", path)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_demo_reduced_size(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "demo"
    result = invoke("demo", "-o", out, "--ngf", 8, "--blocks", 2, "--size", 64, "--rounds", 1)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    passes = {p["name"]: p for p in summary["passes"]}
    assert passes["fold-constants"]["metrics"]["pixel_cos_mean"] == 1.0  # exact
    assert passes["reflect2const"]["metrics"]["pixel_cos_mean"] < 1.0  # lossy, and the report shows it
    assert "report.html" in result.output
    assert (out / "report" / "report.html").stat().st_size > 10_000
