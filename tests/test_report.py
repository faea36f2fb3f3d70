"""apply --report: per-pass accuracy report, gates naming the culprit pass, baseline comparison."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from models import BILINEAR, OPSET11, invoke


@pytest.fixture
def info(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        base = np.linspace(0, 255, 64)[None, :, None] * np.ones((64, 1, 3))
        Image.fromarray((0.7 * base + 0.3 * rng.uniform(0, 255, (64, 64, 3))).astype(np.uint8)).save(src / f"p{i}.png")
    assert invoke("prep", src, "-o", tmp_path / "prep", "--size", 64).exit_code == 0
    return tmp_path / "prep" / "imgs.info"


PIPELINE = "fold-constants,reflect2const(min_cos=0.5),pad-conv-fusion,fp16out"


def test_report_json_md_html(tmp_path, info):
    out, rep = tmp_path / "out.onnx", tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", out, "--passes", PIPELINE, "--report", rep, "--data", info, "--samples", 3)
    assert result.exit_code == 0, result.stderr
    data = json.loads((rep / "report.json").read_text())
    assert data["schema"] == "cgsurg-report"
    assert data["version"] == 2
    assert data["inputs"] == {"kind": "info", "samples": 3, "names": ["p0", "p1", "p2"], "source": "imgs.info"}
    names = [p["name"] for p in data["passes"]]
    assert names == ["fold-constants", "reflect2const", "pad-conv-fusion", "fp16out"]
    fold, r2c, fusion, fp16 = data["passes"]
    assert fold["metrics"]["pixel_cos_mean"] == 1.0
    assert fold["metrics"]["max_abs"] == 0
    assert fold["exact"]
    assert r2c["metrics"]["pixel_cos_mean"] < 0.99
    assert r2c["metrics"]["cos_min"] <= r2c["metrics"]["cos_mean"] < 1.0
    assert r2c["options"] == {"min_cos": 0.5}
    assert r2c["changed_outputs"]
    assert fusion["metrics"] == r2c["metrics"]  # exact: nothing moved
    assert not fusion["changed_outputs"]
    assert fp16["op_delta"] == {"Cast": 1}
    assert fp16["rewrites"] == 1
    for p in data["passes"]:  # an RGB image output is judged by the vendor's per-pixel cosine
        assert p["metrics"]["judged_by"] == "pixel_cos", p["name"]
        assert {"pixel_cos_mean", "pixel_cos_min", "cos_mean", "cos_min"} <= set(p["metrics"]), p["name"]
    md = (rep / "report.md").read_text()
    assert md.count("\n| ") == 5  # header and one row per pass
    assert "reflect2const(min_cos=0.5)" in md
    assert "3 samples of imgs.info (p0, p1, p2)" in md  # not "3 info input(s)"
    page = (rep / "report.html").read_text()
    # chart, colour bar, then per sample: input, original, reflect2const's output and heat map
    # (fp16out's change is under half a grey level, pad-conv-fusion changed nothing)
    assert len(re.findall(r"<img [^>]*src='data:image/png;base64,", page)) == 2 + 3 * 4
    assert all(f"<h3>p{i}</h3>" in page for i in range(3))  # sample rows named by their image
    assert "143\u00a0→\u00a035" in page and "white-space:nowrap" in page  # no wrapped node counts
    for remote in ("http://", "https://", "<script"):  # self-contained
        assert remote not in page


def test_gate_names_the_lossy_pass_in_the_middle_and_writes_no_model(tmp_path, info):
    out, rep = tmp_path / "out.onnx", tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", out, "--passes", PIPELINE, "--report", rep, "--data", info,
                    "--min-cos", 0.99)
    assert result.exit_code == 3
    assert "after pass 'reflect2const'" in result.stderr  # the first stage below the bar
    assert "cosine >= 0.99 (the bar given, min_cos)" in result.stderr
    assert not out.exists()
    data = json.loads((rep / "report.json").read_text())
    assert "reflect2const" in data["error"]
    assert len(data["passes"]) == 4
    psnr = invoke("apply", OPSET11, "-o", out, "--passes", PIPELINE, "--report", rep, "--min-psnr", 40)
    assert psnr.exit_code == 3
    assert "PSNR" in psnr.stderr
    assert "reflect2const" in psnr.stderr


def test_baseline_flags_a_worse_pipeline(tmp_path, info):
    good, bad = tmp_path / "good", tmp_path / "bad"
    baseline = "fold-constants,resize-nearest(min_cos=0.1)"
    worse = "fold-constants,resize-nearest(min_cos=0.1,nearest_mode=floor)"  # floor shifts every pixel
    assert invoke("apply", BILINEAR, "-o", tmp_path / "a.onnx", "--passes", baseline, "--report", good,
                  "--data", info).exit_code == 0
    same = invoke("apply", BILINEAR, "-o", tmp_path / "b.onnx", "--passes", baseline, "--report", tmp_path / "same",
                  "--data", info, "--baseline", good / "report.json")
    assert same.exit_code == 0, same.stderr
    result = invoke("apply", BILINEAR, "-o", tmp_path / "c.onnx", "--passes", worse, "--report", bad,
                    "--data", info, "--baseline", good / "report.json")
    assert result.exit_code == 3
    assert "regressed against the baseline after pass resize-nearest" in result.stderr
    assert not (tmp_path / "c.onnx").exists()
    fold, resize = json.loads((bad / "report.json").read_text())["passes"]
    assert fold["regressions"] == []
    assert resize["regressions"]
    assert resize["baseline_spec"] == "resize-nearest(min_cos=0.1)"
    assert "REGRESSED" in (bad / "report.md").read_text()
    assert "class='bad'" in (bad / "report.html").read_text()
    other = invoke("apply", BILINEAR, "-o", tmp_path / "d.onnx", "--passes", "fold-constants", "--report", bad,
                   "--baseline", good / "report.json")
    assert other.exit_code == 2
    assert "not this pipeline's" in other.stderr


def test_report_with_random_inputs_and_bench(tmp_path):
    rep = tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants,static-batch(batch=2)",
                    "--report", rep, "--samples", 2, "--bench")
    assert result.exit_code == 0, result.stderr
    data = json.loads((rep / "report.json").read_text())
    assert data["inputs"]["kind"] == "random"
    assert all(p["throughput_batch1"] > 0 for p in data["passes"])
    assert "No pass changed the outputs" in (rep / "report.html").read_text()


def test_report_options_need_report_dir(tmp_path):
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants", "--min-psnr", 30)
    assert result.exit_code == 2
    assert "--min-psnr needs --report DIR" in result.stderr


def test_report_shows_each_pass_own_effect_and_its_bound(tmp_path, info):
    """Δ columns (the pass's own change), pictures only for passes that visibly changed the
    outputs, each pass's declared bound judged on its own change, scoring time apart."""
    out, rep = tmp_path / "out.onnx", tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", out, "--passes", PIPELINE, "--report", rep, "--data", info)
    assert result.exit_code == 0, result.stderr
    fold, r2c, fusion, fp16 = json.loads((rep / "report.json").read_text())["passes"]
    assert fold["delta"] == {"cos": 0.0, "psnr_db": None}  # exact: nothing moved (PSNR stays infinite)
    assert r2c["delta"]["cos"] == pytest.approx(r2c["metrics"]["pixel_cos_mean"] - 1.0)
    assert r2c["delta"]["cos"] < -0.01  # lossy: the cosine drops, and this pass is the one that did it
    assert fusion["delta"] == {"cos": 0.0, "psnr_db": 0.0}
    assert -1e-4 < fp16["delta"]["cos"] <= 0
    assert r2c["step"]["held"] and r2c["step"]["bound"] == "cosine >= 0.5"
    assert fold["step"]["held"] and fp16["step"]["held"]
    assert all(p["score_seconds"] > 0 for p in (fold, r2c, fusion, fp16))
    md = (rep / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| reflect2const"))
    assert "lossy, cosine >= 0.5: held" in row
    assert f"| −{-r2c['delta']['cos']:.6f} |" in row and "| from identical |" in row  # Δ cosine, Δ PSNR
    assert "Δ pixel cos" in md and "Δ PSNR" in md and "scoring s" in md
    page = (rep / "report.html").read_text()
    assert "after reflect2const(min_cos=0.5)" in page
    assert "changed by reflect2const(min_cos=0.5) (max " in page
    for quiet in ("pad-conv-fusion", "fp16out", "fold-constants"):  # no pictures of passes that changed nothing
        assert f"<figcaption>after {quiet}" not in page and f"<figcaption>changed by {quiet}" not in page
    assert "Outputs unchanged by fold-constants, pad-conv-fusion." in page
    assert "fp16out changed the outputs by at most" in page


def test_report_shows_a_broken_bound(tmp_path, info):
    """Without the check stopping the run, the report still says which pass broke its bound."""
    rep = tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants,reflect2const",
                    "--report", rep, "--data", info, "--no-check")
    assert result.exit_code == 0, result.stderr
    fold, r2c = json.loads((rep / "report.json").read_text())["passes"]
    assert fold["step"]["held"]
    assert not r2c["step"]["held"]
    assert "is below 0.9" in r2c["step"]["violation"]
    assert "lossy, cosine >= 0.9: FAILED" in (rep / "report.md").read_text()


def test_final_check_runs_on_the_data_samples(tmp_path, info):
    """With --data the final check uses the same real samples as the report: the cosine it
    prints is the report's final one."""
    rep = tmp_path / "rep"
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", PIPELINE, "--report", rep,
                    "--data", info, "--samples", 2)
    assert result.exit_code == 0, result.stderr
    assert "OK, judged by mean per-pixel cosine >= " in result.output and f"on 2 samples of {info}" in result.output
    printed = re.search(r"pixel_cos (\d\.\d+)", result.output).group(1)
    final = json.loads((rep / "report.json").read_text())["passes"][-1]["metrics"]["pixel_cos_mean"]
    assert printed == f"{final:.6f}"
    alone = invoke("apply", OPSET11, "-o", tmp_path / "p.onnx", "--passes", PIPELINE, "--data", info)
    assert alone.exit_code == 0, alone.stderr
    assert f"on 3 samples of {info}" in alone.output  # without a report: the info file's samples (up to 4)


def test_report_names_the_worst_layer_of_a_pass_that_broke_its_bound(tmp_path):
    """reflect2const breaks a 0.9999 bound at the first reflect Pad: the report names that Pad's
    output as the pass's worst layer, in report.json (read back by Report.load), MD and HTML."""
    import onnx

    from graphsurgeon_cg import api
    from graphsurgeon_cg.report import Report

    rep = tmp_path / "rep"
    api.apply(OPSET11, tmp_path / "o.onnx", "fold-constants,reflect2const(min_cos=0.9999)", check=False,
              inputs=api.InputSettings(samples=1), report=api.ReportSettings(rep))
    first_pad = next(n for n in onnx.load(OPSET11).graph.node if n.op_type == "Pad"
                     and any(a.name == "mode" and a.s == b"reflect" for a in n.attribute))
    fold, r2c = Report.load(rep).passes
    assert fold.worst_layer is None and not r2c.step.held
    assert r2c.worst_layer is not None
    assert (r2c.worst_layer.name, r2c.worst_layer.node, r2c.worst_layer.op) == (first_pad.output[0],
                                                                                 first_pad.name, "Pad")
    assert r2c.worst_layer.cos is not None and r2c.worst_layer.cos < 0.9999 and r2c.worst_layer.max_abs > 0
    text = f"worst layer: {first_pad.output[0]} (Pad '{first_pad.name}'), cos"
    assert text in (rep / "report.md").read_text()
    assert text.replace("'", "&#x27;") in (rep / "report.html").read_text()
