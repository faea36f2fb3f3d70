"""Typed results: a report is records end to end (built, written, ``Report.load``-ed back equal),
a target's lint and compile step are fields of the pipeline result, and eval's scores are typed."""

import json
import subprocess
import sys

import numpy as np
import pytest

import graphsurgeon_cg
from graphsurgeon_cg import InputError, api
from graphsurgeon_cg.check.metrics import score
from graphsurgeon_cg.report import MetricSummary, PassReport, Report, SampleScore
from graphsurgeon_cg.stages.evaluate import EvalResult, MeanMin
from graphsurgeon_cg.targets import LintResult

from models import OPSET11, invoke

PIPELINE = "fold-constants,reflect2const(min_cos=0.5),static-batch(batch=1)"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One apply with a report on seeded random inputs: its result and the folder it wrote."""
    tmp = tmp_path_factory.mktemp("report")
    result = api.apply(OPSET11, tmp / "out.onnx", PIPELINE, report=api.ReportSettings(tmp / "rep", samples=2))
    return result, tmp / "rep"


def test_the_report_is_handed_back_typed_and_loads_back_equal(written):
    result, folder = written
    report = result.report
    assert isinstance(report, Report) and result.report_dir == folder
    assert [p.name for p in report.passes] == ["fold-constants", "reflect2const", "static-batch"]
    r2c = report.passes[1]
    assert isinstance(r2c, PassReport) and isinstance(r2c.metrics, MetricSummary)
    assert r2c.metrics.judged_by == "pixel_cos" and r2c.metrics.judged_mean == r2c.metrics.pixel_cos_mean < 0.99
    assert r2c.delta.cos == pytest.approx(r2c.metrics.judged_mean - 1.0)
    assert r2c.step.bound == "cosine >= 0.5" and r2c.step.held
    assert all(isinstance(s, SampleScore) for s in r2c.samples) and len(r2c.samples) == 2
    loaded = graphsurgeon_cg.Report.load(folder / "report.json")
    assert loaded == report  # write -> load -> equal
    text = (folder / "report.json").read_text()
    assert loaded.to_json() == text  # load -> as_dict -> the same JSON, byte for byte
    assert Report.load(folder) == report  # the folder names its report.json


def test_optional_keys_stay_absent_and_unknown_keys_are_ignored(written):
    _, folder = written
    data = json.loads((folder / "report.json").read_text())
    assert "throughput_batch1" not in data["passes"][0] and "baseline_spec" not in data["passes"][0]
    data["passes"][0]["from_a_newer_cgsurg"] = {"worst_layer": "Conv_3"}
    loaded = Report.parse(data)
    assert loaded.passes[0].throughput_batch1 is None
    assert "from_a_newer_cgsurg" not in loaded.as_dict()["passes"][0]


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(schema="other"), "is not a cgsurg report"),
    (lambda d: d.update(version=1), "is a cgsurg report of version 1, not 2"),
    (lambda d: d["passes"][1]["metrics"].pop("close"), "passes[1].metrics.close: missing"),
    (lambda d: d["passes"][0].update(rewrites="many"), "passes[0].rewrites: expected int, got 'many'"),
    (lambda d: d["passes"][0]["samples"][1].pop("pixel_cos"), "passes[0].samples[1]: a sample needs"),
    (lambda d: d.update(passes={}), "passes: expected a list, got dict"),
])
def test_a_bad_report_is_one_line_naming_the_key(written, tmp_path, edit, message):
    _, folder = written
    data = json.loads((folder / "report.json").read_text())
    edit(data)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(data))
    with pytest.raises(InputError) as failed:
        Report.load(path)
    assert message in str(failed.value) and str(path) in str(failed.value)
    assert "\n" not in str(failed.value)


def test_unreadable_reports_and_baselines(tmp_path):
    with pytest.raises(InputError, match="cannot read report .*nope.json"):
        Report.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read report"):
        Report.load(tmp_path / "bad.json")
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants", "--report",
                    tmp_path / "rep", "--baseline", tmp_path / "bad.json")
    assert result.exit_code == 2 and "baseline: cannot read report" in result.stderr
    assert not (tmp_path / "o.onnx").exists()


def test_a_failed_run_leaves_a_report_that_loads_with_its_error(tmp_path):
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants,reflect2const",
                    "--report", tmp_path / "rep", "--samples", 1, "--min-cos", 0.999, "--no-check")
    assert result.exit_code == 3
    report = Report.load(tmp_path / "rep")
    assert report.error and "after pass 'reflect2const'" in report.error
    assert report.bar == 0.999 and report.shown_samples == ["sample 1"]


def test_lint_and_compile_are_typed_fields(tmp_path):
    result = api.apply(OPSET11, tmp_path / "o.onnx", None, target="openvino", check=False)
    assert isinstance(result.lint, LintResult) and result.lint.target.startswith("openvino")
    assert result.compile is not None and result.compile.command is not None
    assert result.compile.command.tool == "ovc" and all(p.exists() for p in result.compile.files)
    assert result.report is None and result.extras == {}
    plain = api.apply(OPSET11, tmp_path / "p.onnx", "fold-constants", check=False)
    assert plain.lint is None and plain.compile is None


def test_eval_result_from_scores_is_typed():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(3, 8, 8)).astype(np.float32)
    scores = [score("same", ref, ref), score("noisy", ref, ref + 0.3 * rng.normal(size=ref.shape))]
    result = EvalResult.from_scores(scores)
    assert result.judged_by == "pixel_cos"
    assert isinstance(result.judged, MeanMin)
    assert result.judged.min == scores[1].judged_cos < result.judged.mean < 1.0
    assert result.stat("psnr_db") == MeanMin(scores[1].psnr_db, scores[1].psnr_db)  # identical: no PSNR


def test_reading_a_report_loads_no_runtime(written):
    """A CI script that reads report.json back pays for no ONNX Runtime or matplotlib import."""
    _, folder = written
    code = (f"import sys, graphsurgeon_cg\ngraphsurgeon_cg.Report.load({str(folder)!r})\n"
            "print([m for m in ('onnxruntime', 'matplotlib', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"
