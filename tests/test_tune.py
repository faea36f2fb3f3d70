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


# --- candidate selection by ISA, the budget, the per-runtime winner ---------------------------
AVX2_ONLY = {"avx2", "fma"}
VNNI_BF16 = {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}


def _labels(found):
    return [f"{c.label} / {c.backend}" for c in found]


def test_candidates_follow_the_isa_and_say_why_they_skip():
    from graphsurgeon_cg.tune import plan

    found, skipped = plan(0.99, "c.info", ("ort", "openvino"), AVX2_ONLY)
    labels = _labels(found)
    assert "int8 qdq reduce-range / ort" in labels  # AVX2 without VNNI: u8 x s8 saturates, 7-bit weights may help
    assert not any("bf16" in label for label in labels)
    assert skipped == ["bf16 on openvino: no AVX512_BF16 or AMX-BF16: OpenVINO would emulate bf16, slower than f32"]
    found, skipped = plan(0.99, "c.info", ("ort", "openvino"), VNNI_BF16)
    labels = _labels(found)
    assert {"bf16 / openvino", "nncf int8 + bf16 (ConvTranspose bf16) / openvino"} <= set(labels)
    assert next(c for c in found if c.label == "bf16").precision == "bf16"
    assert "int8 qdq reduce-range / ort" not in labels and "reduce-range on ort: VNNI" in skipped[0]
    # the searches come last, each bounded by its runtime's all-int8 candidate
    assert labels[-3:] == ["nncf int8 accuracy control (sensitivity) / openvino",
                           "nncf int8 (ConvTranspose float), full bias correction + channel alignment / openvino",
                           "int8 mixed (auto) / ort"]
    assert {c.bounded_by for c in found[-3:]} == {"nncf int8, all quantised", "int8 qdq percentile, all quantised"}
    found, skipped = plan(0.99, "c.info", ("ort",), set())  # no AVX2: no int8 at all
    assert _labels(found) == ["original / ort", "exact / ort", "float16 build (simulated) / ort"]
    assert len(skipped) == 5 and all(s.endswith("no AVX2: int8 kernels would run on SSE, slower than float")
                                     for s in skipped)


def test_tune_on_a_cpu_without_avx2_tries_no_int8_and_lists_why(sets, tmp_path):
    from graphsurgeon_cg.tune import tune

    result = tune(OPSET11, sets["calib"], sets["eval"], tmp_path / "t", min_cos=0.99, batches=(1,), rounds=1,
                  flags=())
    assert [c.label for c in result.candidates] == ["original", "exact", "float16 build (simulated)"]
    assert any("int8 mixed (auto) on ort: no AVX2" in s for s in result.skipped)
    report = json.loads((tmp_path / "t" / "tune.json").read_text())
    assert report["skipped"] == result.skipped and report["environment"]["isa_flags"] is not None


def test_tune_names_the_candidates_the_budget_left_unevaluated(sets, tmp_path):
    from graphsurgeon_cg.core.errors import NumericCheckFailed
    from graphsurgeon_cg.tune import tune

    with pytest.raises(NumericCheckFailed) as failed:  # the originals run (the baseline), then the time is out
        tune(OPSET11, sets["calib"], sets["eval"], tmp_path / "t", batches=(1,), rounds=1, budget_minutes=0.001,
             only=["int8 qdq"], flags=AVX2_ONLY)
    assert "ran out before any candidate was evaluated" in str(failed.value)
    report = json.loads((tmp_path / "t" / "tune.json").read_text())
    over = [s for s in report["skipped"] if s.endswith("over the budget (not evaluated)")]
    assert over == ["int8 qdq percentile (ConvTranspose float) on ort: over the budget (not evaluated)",
                    "int8 qdq reduce-range on ort: over the budget (not evaluated)",
                    "int8 qdq percentile, all quantised on ort: over the budget (not evaluated)",
                    "int8 qdq minmax on ort: over the budget (not evaluated)"]


def test_an_openvino_winner_is_written_as_ir_with_the_command_that_runs_it(sets, tmp_path):
    pytest.importorskip("nncf")
    from graphsurgeon_cg.tune import tune

    out = tmp_path / "t"
    result = tune(OPSET11, sets["calib"], sets["eval"], out, min_cos=0.9, backends=("openvino",), batches=(1, 2),
                  rounds=1, only=["nncf int8, all quantised"], flags=AVX2_ONLY)
    assert result.winner is not None and result.winner.label == "nncf int8, all quantised"
    assert (out / "best_ov" / "model.xml").is_file() and (out / "best_ov" / "model.bin").is_file()
    assert not (out / "best.onnx").exists()
    run = (out / "RUN.txt").read_text()
    assert "cgsurg infer best_ov/model.xml --backend openvino" in run
    assert set(result.winner.img_per_s) == {1, 2}  # timed as deployed at both batch sizes
    from graphsurgeon_cg.check.backends import OpenVinoBackend

    runner = OpenVinoBackend().load(out / "best_ov" / "model.xml")  # the written IR runs
    assert runner.run({runner.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})[0].shape[0] == 1
    html = (out / "tune.html").read_text()
    assert "best_ov/model.xml" in html and html.count("onnxruntime") == 1  # the runtimes named once


# --- --input-shape: a third-party detector with dynamic batch, height and width --------------
@pytest.fixture(scope="module")
def page_sets(tmp_path_factory):
    """Pages of dark bars on white (text-like), prepped at 64x64 as the detector takes them."""
    root = tmp_path_factory.mktemp("pages")
    rng = np.random.default_rng(5)
    infos = {}
    for split, count in (("calib", 3), ("eval", 3)):
        (root / split).mkdir()
        for i in range(count):
            page = np.full((80, 96, 3), 230, np.uint8)
            for _ in range(4):
                y, x = rng.integers(5, 60), rng.integers(0, 50)
                page[y:y + 8, x:x + 40] = rng.integers(0, 60)
            Image.fromarray(page).save(root / split / f"{split}{i}.png")
        assert invoke("prep", root / split, "-o", root / f"{split}_prep", "--size", 64, "--norm",
                      "imagenet").exit_code == 0
        infos[split] = root / f"{split}_prep" / f"{split}.info"
    return infos


def test_tune_fixes_a_dynamic_detector_at_the_input_shape(page_sets, tmp_path):
    import onnx

    from thirdparty import model_path

    det = model_path("det")
    args = ("tune", det, "--data", page_sets["calib"], "--eval", page_sets["eval"], "--rounds", 1, "--batches", "1,2",
            "--min-cos", "0.5", "--only", "all quantised")
    refused = invoke(*args, "-o", tmp_path / "none")
    assert refused.exit_code == 2 and "give them with --input-shape x:1,3,H,W" in refused.output
    assert not (tmp_path / "none").exists()
    wrong = invoke(*args, "--input-shape", "x:1,3,96,96", "-o", tmp_path / "none")
    assert wrong.exit_code == 2 and "has shape (3, 64, 64); the model takes (3, 96, 96)" in wrong.output
    out = tmp_path / "t"
    result = invoke(*args, "--input-shape", "x:1,3,64,64", "-o", out)
    assert result.exit_code == 0, result.output
    fixed = "static-shape(shapes=[x:?,3,64,64])"  # batch left dynamic: tune times batches 1 and 2
    report = json.loads((out / "tune.json").read_text())
    int8 = next(c for c in report["candidates"] if "int8" in c["label"])
    assert int8["pipeline"].startswith(fixed + ",") and set(int8["img_per_s"]) == {"1", "2"}
    # fixed, the detector is quantised (unfixed, int8 keeps every Conv float)
    quantised = onnx.load(int8["model"])
    assert sum(n.op_type == "QuantizeLinear" for n in quantised.graph.node) > 50
    assert [d.dim_value for d in quantised.graph.input[0].type.tensor_type.shape.dim][1:] == [3, 64, 64]
    apply_line = next(line for line in result.output.splitlines() if "cgsurg apply" in line)
    assert f"--passes '{fixed}," in apply_line
    assert report["winner"] == {"label": int8["label"], "backend": "ort"}


def test_tune_adds_a_simulated_float16_build_that_is_never_the_winner(sets, tmp_path):
    """The float16 build's row is judged through the float16 simulator (a cosine below the exact
    one's: float16 rounds every tensor) and says so; it is never timed, never the winner."""
    from graphsurgeon_cg.tune import plan, tune

    for flags in (AVX2_ONLY, set()):  # predicted whatever the ISA: nothing of it runs here
        assert "float16 build (simulated) / ort" in _labels(plan(0.99, "c.info", ("ort",), flags)[0])
    out = tmp_path / "t"
    result = tune(OPSET11, sets["calib"], sets["eval"], out, min_cos=0.9, batches=(1,), rounds=1,
                  only=["exact", "float16 build"], flags=AVX2_ONLY)
    report = json.loads((out / "tune.json").read_text())
    row = next(c for c in report["candidates"] if c["label"] == "float16 build (simulated)")
    exact = next(c for c in report["candidates"] if c["label"] == "exact")
    assert not row["error"] and row["evaluated"] == "full" and row["meets"]
    assert 0.99 < row["eval_cos"]["mean"] < exact["eval_cos"]["mean"]  # float16 rounding, simulated
    assert row["pipeline"].endswith(",fp16") and row["simulated"].startswith("accuracy predicted by the float16")
    assert "speed: not measured here" in row["simulated"]
    assert row["img_per_s"] == {} and row["speed"] == 0
    assert report["winner"]["label"] == "exact" and result.winner is not None and result.winner.label == "exact"
    assert "accuracy predicted by the float16 simulator" in (out / "tune.html").read_text()
    # the cosine is the simulator's, not ORT's float32-in-disguise run of the float16 model
    import onnx

    from graphsurgeon_cg.check.fp16sim import run_simulated
    from graphsurgeon_cg.check.metrics import score
    from graphsurgeon_cg.check.session import make_session, run_session
    from graphsurgeon_cg.stages.dataset import load_sample, read_info

    half, original = onnx.load(row["model"]), make_session(OPSET11)
    feeds = [{original.get_inputs()[0].name: load_sample(s)[None]} for s in read_info(sets["eval"])]
    refs = [next(iter(o.values()))[0] for o in run_session(original, feeds)]

    def mean_cos(outputs):
        return np.mean([score("s", r, next(iter(o.values()))[0]).judged_cos for r, o in zip(refs, outputs)])

    simulated, plain = mean_cos(run_simulated(half, feeds)), mean_cos(run_session(make_session(half), feeds))
    assert abs(row["eval_cos"]["mean"] - simulated) < 1e-9 < abs(row["eval_cos"]["mean"] - plain)
