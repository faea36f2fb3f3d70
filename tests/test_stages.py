"""prep -> infer -> eval -> bench -> profile on the fixture generators and generated images."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from graphsurgeon_cg import load_model, save_model
from graphsurgeon_cg.check.images import load_image
from graphsurgeon_cg.check.metrics import score
from graphsurgeon_cg.stages.dataset import read_info
from graphsurgeon_cg.stages.evaluate import evaluate_dirs, evaluate_models

from models import OPSET11, invoke, run_pass


@pytest.fixture
def images(tmp_path):
    """Four readable images of different kinds, and one file that is not an image."""
    src = tmp_path / "testA"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)).save(src / "b_color.jpg", quality=95)
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(src / "a_gray.png")
    Image.fromarray(rng.integers(0, 256, (40, 20, 4), dtype=np.uint8), "RGBA").save(src / "c_rgba.png")
    Image.fromarray(np.tile(np.linspace(0, 255, 50, dtype=np.uint8), (50, 1))).convert("RGB").save(src / "d_grad.bmp")
    (src / "e_notes.jpg").write_text("not an image")
    return src


@pytest.fixture
def prepped(tmp_path, images):
    result = invoke("prep", images, "-o", tmp_path / "prep", "--size", 64)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "prep" / "testA.info"


def test_prep_writes_npy_and_info_and_skips_the_bad_file(tmp_path, images, prepped):
    lines = prepped.read_text().splitlines()
    assert lines == ["0 a_gray.npy 30 30", "1 b_color.npy 80 48", "2 c_rgba.npy 20 40", "3 d_grad.npy 50 50"]
    for sample in read_info(prepped):
        arr = np.load(sample.path)
        assert arr.shape == (3, 64, 64)
        assert arr.dtype == np.float32
        assert -1 <= arr.min() <= arr.max() <= 1
    gray = np.load(tmp_path / "prep" / "a_gray.npy")
    np.testing.assert_array_equal(gray[0], gray[1])  # gray became RGB
    # the reference preprocessing: ToTensor + Normalize(0.5, 0.5) on the bicubic-resized image
    ref = np.asarray(Image.open(images / "d_grad.bmp").convert("RGB").resize((64, 64), Image.BICUBIC), np.float32)
    expected = (ref / 255 - 0.5).transpose(2, 0, 1) / 0.5
    np.testing.assert_allclose(np.load(tmp_path / "prep" / "d_grad.npy"), expected, atol=1e-6)


def test_prep_range_0_1_is_to_tensor_alone(tmp_path, images):
    """--range 0..1: x / 255 (fast style transfer takes that), not Normalize(0.5, 0.5)."""
    result = invoke("prep", images, "-o", tmp_path / "p", "--size", 64, "--range", "0..1")
    assert result.exit_code == 0, result.stderr
    ref = np.asarray(Image.open(images / "d_grad.bmp").convert("RGB").resize((64, 64), Image.BICUBIC), np.float32)
    np.testing.assert_allclose(np.load(tmp_path / "p" / "d_grad.npy"), ref.transpose(2, 0, 1) / 255, atol=1e-6)


def test_prep_cli_reports_the_skip(tmp_path, images):
    result = invoke("prep", images, "-o", tmp_path / "p", "--size", 32, "--dtype", "uint8")
    assert result.exit_code == 0
    assert "skipped" in result.stderr
    assert "e_notes.jpg" in result.stderr
    assert "wrote 4 samples" in result.output
    assert "skipped 1 unreadable file(s)" in result.output
    assert np.load(tmp_path / "p" / "b_color.npy").dtype == np.uint8


def test_exif_orientation_is_applied(tmp_path):
    src = tmp_path / "exif"
    src.mkdir()
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90: a 40x20 landscape file shown as 20x40 portrait
    img.save(src / "rot.jpg", exif=exif.tobytes())
    _, width, height = load_image(src / "rot.jpg", 16)
    assert (width, height) == (20, 40)


def test_infer_one_output_per_input_with_stems_and_partial_batches(tmp_path, prepped):
    out = tmp_path / "out"
    result = invoke("infer", OPSET11, "--data", prepped, "-o", out, "--batch", 3, "--png")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.npy")) == ["a_gray.npy", "b_color.npy", "c_rgba.npy", "d_grad.npy"]
    assert len(list(out.glob("*.png"))) == 4
    assert "images/s" in result.output
    # batch 3 over 4 images (a partial batch) equals one-by-one inference
    one = tmp_path / "one"
    invoke("infer", OPSET11, "--data", prepped, "-o", one, "--batch", 1)
    for name in ("a_gray", "d_grad"):
        np.testing.assert_allclose(np.load(out / f"{name}.npy"), np.load(one / f"{name}.npy"), atol=1e-5)


def test_static_batch_model_pads_and_drops(tmp_path, prepped):
    static, _ = run_pass(load_model(OPSET11), "static-batch(batch=3)")
    path = save_model(static, tmp_path / "static3.onnx")
    out = tmp_path / "out"
    result = invoke("infer", path, "--data", prepped, "-o", out, "--batch", 16)
    assert result.exit_code == 0, result.stderr
    assert "static batch 3" in result.stderr
    assert len(list(out.glob("*.npy"))) == 4
    ref = tmp_path / "ref"
    invoke("infer", OPSET11, "--data", prepped, "-o", ref)
    assert evaluate_dirs(ref, out).summary["max_abs"]["max"] < 1e-5


def test_eval_self_is_one_and_lossy_rewrite_is_below(tmp_path, prepped):
    same = evaluate_models(OPSET11, OPSET11, prepped)
    assert same.summary["pixel_cos"]["min"] == 1.0  # identical outputs score exactly 1
    assert same.summary["max_abs"]["max"] == 0
    assert same.summary["judged_by"] == "pixel_cos"
    lossy, _ = run_pass(load_model(OPSET11), "fold-constants,reflect2const")
    lossy_path = save_model(lossy, tmp_path / "lossy.onnx")
    result = evaluate_models(OPSET11, lossy_path, prepped, batch=2)
    assert result.summary["images"] == 4
    assert result.summary["pixel_cos"]["mean"] < 0.99
    assert [s.pixel_cos for s in result.worst] == sorted(s.pixel_cos for s in result.scores)
    # the folder form gives the same numbers
    invoke("infer", OPSET11, "--data", prepped, "-o", tmp_path / "ref")
    invoke("infer", lossy_path, "--data", prepped, "-o", tmp_path / "new")
    by_dirs = evaluate_dirs(tmp_path / "ref", tmp_path / "new")
    assert by_dirs.summary["pixel_cos"]["mean"] == pytest.approx(result.summary["pixel_cos"]["mean"], abs=1e-6)


def test_eval_cli_gate_json_and_csv(tmp_path, prepped):
    lossy, _ = run_pass(load_model(OPSET11), "fold-constants,reflect2const")
    lossy_path = save_model(lossy, tmp_path / "lossy.onnx")
    args = ["eval", "--ref", OPSET11, "--model", lossy_path, "--data", prepped]
    gated = invoke(*args, "--min-cos", 0.99, "--csv", tmp_path / "scores.csv")
    assert gated.exit_code == 3
    assert "worst images:" in gated.stderr
    assert "a_gray" in gated.stderr + gated.output
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 4
    assert {"name", "pixel_cos", "ssim", "psnr_db", "judged_by"} <= set(rows[0])
    data = json.loads(invoke(*args, "--json").output)
    assert len(data["images"]) == 4
    assert len(data["worst"]) == 4
    assert data["summary"]["ssim"]["mean"] < 1


def test_vendor_metric_matches_a_direct_computation():
    rng = np.random.default_rng(5)
    a = rng.uniform(-1, 1, (3, 9, 8))
    b = np.tanh(a + 0.5 * rng.standard_normal(a.shape))
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0)) * np.sqrt((b * b).sum(axis=0))
    s = score("x", a, b)
    assert s.pixel_cos == pytest.approx(float(np.mean(num / den)), abs=1e-12)
    # PSNR's data range is the reference sample's peak-to-peak (about 2 for outputs in [-1, 1])
    assert s.psnr_db == pytest.approx(10 * np.log10(np.ptp(a) ** 2 / np.mean((a - b) ** 2)))


def test_eval_reports_missing_files(tmp_path, prepped):
    invoke("infer", OPSET11, "--data", prepped, "-o", tmp_path / "ref")
    invoke("infer", OPSET11, "--data", prepped, "-o", tmp_path / "new")
    (tmp_path / "new" / "c_rgba.npy").unlink()
    result = invoke("eval", tmp_path / "ref", tmp_path / "new")
    assert result.exit_code == 2
    assert "1 missing from" in result.stderr
    assert "c_rgba" in result.stderr


def test_bench_json_for_both_batch_sizes(tmp_path, prepped):
    result = invoke("bench", OPSET11, "--batches", "1,16", "--rounds", 2, "--warmup", 1, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.output)
    assert [r["batch"] for r in data["results"]] == [1, 16]
    assert data["mode"] == "random"
    for r in data["results"]:
        assert r["throughput"] > 0
        assert set(r["latency_ms"]) == {"mean", "p50", "p90", "p99"}
    assert {"onnxruntime", "provider", "threads", "cpu"} <= set(data["environment"])
    real = json.loads(invoke("bench", OPSET11, "--batches", "2", "--rounds", 2, "--data", prepped, "--json").output)
    assert real["mode"] == "data"
    assert real["results"][0]["batch"] == 2


def test_bench_static_model_runs_only_its_batch(tmp_path):
    static, _ = run_pass(load_model(OPSET11), "static-batch(batch=1)")
    path = save_model(static, tmp_path / "s.onnx")
    data = json.loads(invoke("bench", path, "--batches", "1,16", "--rounds", 1, "--json").output)
    assert [r["batch"] for r in data["results"]] == [1]
    assert "batch sizes 16 not run" in data["skipped"][0]


def test_profile_lists_conv():
    result = invoke("profile", OPSET11, "--rounds", 2, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.output)
    ops = {o["op_type"]: o for o in data["ops"]}
    assert "Conv" in ops
    assert ops["Conv"]["nodes"] >= 1
    assert sum(o["share"] for o in data["ops"]) == pytest.approx(1)
    assert 0 < len(data["top_nodes"]) <= 10


def test_unknown_provider_is_a_clear_error(prepped, tmp_path):
    result = invoke("bench", OPSET11, "--provider", "cuda")
    assert result.exit_code == 2
    assert "not available in this onnxruntime build" in result.stderr


def _bad_stage_inputs(tmp_path, prepped):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken_info = tmp_path / "broken.info"
    broken_info.write_text("0 nowhere.npy 10 10\n")
    return {
        "prep missing folder": ["prep", tmp_path / "nope", "-o", tmp_path / "p"],
        "prep empty folder": ["prep", empty, "-o", tmp_path / "p"],
        "infer missing model": ["infer", tmp_path / "nope.onnx", "--data", prepped, "-o", tmp_path / "o"],
        "infer missing info": ["infer", OPSET11, "--data", tmp_path / "nope.info", "-o", tmp_path / "o"],
        "infer info with missing files": ["infer", OPSET11, "--data", broken_info, "-o", tmp_path / "o"],
        "infer batch 0": ["infer", OPSET11, "--data", prepped, "-o", tmp_path / "o", "--batch", 0],
        "infer wrong size": ["infer", OPSET11, "--data", _other_size(tmp_path), "-o", tmp_path / "o"],
        "eval missing folder": ["eval", tmp_path / "nope", empty],
        "eval empty folders": ["eval", empty, empty],
        "eval missing info": ["eval", "--ref", OPSET11, "--model", OPSET11, "--data", tmp_path / "nope.info"],
        "bench missing model": ["bench", tmp_path / "nope.onnx"],
        "bench batch 0": ["bench", OPSET11, "--batches", "0"],
        "bench bad batch list": ["bench", OPSET11, "--batches", "one"],
        "profile missing model": ["profile", tmp_path / "nope.onnx"],
        "profile batch 0": ["profile", OPSET11, "--batch", 0],
    }


def _other_size(tmp_path):
    folder = tmp_path / "small"
    folder.mkdir(exist_ok=True)
    np.save(folder / "x.npy", np.zeros((3, 8, 8), np.float32))
    (folder / "small.info").write_text("0 x.npy 8 8\n")
    return folder / "small.info"


BAD_CASES = ["prep missing folder", "prep empty folder", "infer missing model", "infer missing info",
             "infer info with missing files", "infer batch 0", "infer wrong size", "eval missing folder",
             "eval empty folders", "eval missing info", "bench missing model", "bench batch 0",
             "bench bad batch list", "profile missing model", "profile batch 0"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_stage_input_is_one_line_and_nonzero(tmp_path, prepped, case):
    result = invoke(*_bad_stage_inputs(tmp_path, prepped)[case])
    assert result.exit_code == 2, (case, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (case, result.stderr)
    assert lines[0].startswith("cgsurg: error: "), (case, result.stderr)
    assert "Traceback" not in result.stderr
