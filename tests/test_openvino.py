"""The OpenVINO backend and ``cgsurg compile --target openvino``: a real compiler on this machine.

OpenVINO's output must equal ONNX Runtime's within 1e-4 on the fixture generators, read from
ONNX or from the IR that ``compile`` writes; the stages run on it (eval against ORT on real
photos scores a per-pixel cosine of at least 0.9999); bad input is one line, exit 2, and leaves
nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install -e '.[openvino]')")

from graphsurgeon_cg import load_model, save_model  # noqa: E402
from graphsurgeon_cg.check.backends import OpenVinoBackend, OrtBackend, backend_for, run_all  # noqa: E402
from graphsurgeon_cg.check.feeds import random_feeds  # noqa: E402
from graphsurgeon_cg.core.errors import InputError  # noqa: E402
from graphsurgeon_cg.stages.compile import compile_model  # noqa: E402

from models import ALL_FIXTURES, OPSET11, OPSET17, image_feeds, invoke, run_pass  # noqa: E402

ATOL = 1e-4


def _max_diff(a: list, b: list) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The photos scikit-image ships (as the demo uses), prepped to the fixtures' 64x64."""
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    src = root / "testA"
    src.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).save(src / f"{name}.png")
    result = invoke("prep", src, "-o", root / "prep", "--size", 64)
    assert result.exit_code == 0, result.stderr
    return root / "prep" / "testA.info"


@pytest.fixture(scope="module")
def ir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ir") / "opset17"
    result = invoke("compile", OPSET17, "--target", "openvino", "-o", out)
    assert result.exit_code == 0, result.stderr
    return out / "model.xml"


# --- the backend ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ALL_FIXTURES, ids=lambda p: p.stem)
def test_openvino_equals_ort_on_the_fixtures(fixture):
    feeds = [image_feeds(batch=2, seed=s) for s in (1, 2)]
    ort = run_all(OrtBackend(optimize=False).load(fixture), feeds)
    from_file = run_all(OpenVinoBackend().load(fixture), feeds)
    from_proto = run_all(OpenVinoBackend().load(load_model(fixture)), feeds)
    for got in (from_file, from_proto):
        assert [list(o) for o in got] == [["maps"]] * 2
        assert _max_diff([o["maps"] for o in ort], [o["maps"] for o in got]) <= ATOL


def test_runner_reads_like_an_ort_session():
    runner = OpenVinoBackend(threads=1).load(OPSET11)
    (inp,), (out,) = runner.get_inputs(), runner.get_outputs()
    assert (inp.name, inp.shape, inp.type, inp.dtype) == ("img_sat_maps", (None, 3, 64, 64), "tensor(float)",
                                                          np.float32)
    assert (out.name, out.shape[1:]) == ("maps", (3, 64, 64))
    assert random_feeds(runner)[0]["img_sat_maps"].shape == (1, 3, 64, 64)  # the feeds take any backend
    assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert str(runner.compiled.get_property("INFERENCE_PRECISION_HINT")) in ("<Type: 'float32'>", "f32")


def test_a_rewritten_model_in_memory_runs_and_matches():
    rewritten, _ = run_pass(load_model(OPSET11), "fold-constants,reflect2slice,pad-conv-fusion")
    feeds = [image_feeds(batch=3)]
    assert _max_diff(OrtBackend(optimize=False).load(OPSET11).run(feeds[0]),
                     OpenVinoBackend().load(rewritten).run(feeds[0])) <= ATOL


def test_wrong_input_shape_is_one_line():
    runner = OpenVinoBackend().load(OPSET11)
    with pytest.raises(InputError, match="OpenVINO failed to run the model: .*incompatible") as info:
        runner.run({"img_sat_maps": np.zeros((1, 3, 32, 32), np.float32)})
    assert "\n" not in str(info.value)


def test_unsupported_model_names_openvinos_reason(tmp_path):
    """Pad mode wrap is valid ONNX (opset 19) that ORT runs and OpenVINO's frontend rejects."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 10, 10])
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    graph = helper.make_graph([helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")], "g", [x], [y], [pads])
    path = save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), tmp_path / "wrap.onnx")
    with pytest.raises(InputError, match=r"OpenVINO cannot read .*wrap\.onnx: .*Pad-19.*wrap") as info:
        OpenVinoBackend().load(path)
    assert "\n" not in str(info.value) and "Exception from" not in str(info.value)
    result = invoke("compile", path, "--target", "openvino", "-o", tmp_path / "ir")
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Pad-19" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wrap.onnx"]


def test_without_openvino_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed: importing it fails
    with pytest.raises(InputError, match=r"install cgsurg\[openvino\]"):
        OpenVinoBackend().load(OPSET11)


def test_backend_names_and_providers():
    assert backend_for("ort").name == "ort" and backend_for("OpenVINO").name == "openvino"
    with pytest.raises(InputError, match="unknown backend 'tvm'"):
        backend_for("tvm")
    with pytest.raises(InputError, match="provider 'cuda' is ONNX Runtime's"):
        backend_for("openvino", provider="cuda")


def test_importing_cgsurg_does_not_load_openvino():
    code = ("import sys, graphsurgeon_cg, graphsurgeon_cg.check.backends, graphsurgeon_cg.stages.compile\n"
            "from graphsurgeon_cg.cli import cli\nprint('openvino' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


# --- compile -------------------------------------------------------------------------------------
def test_compile_writes_the_ir_and_it_equals_ort(ir):
    assert sorted(p.name for p in ir.parent.iterdir()) == ["model.bin", "model.xml"]
    feeds = [image_feeds(batch=2)]
    ort = run_all(OrtBackend(optimize=False).load(OPSET17), feeds)
    got = run_all(OpenVinoBackend().load(ir), feeds)
    assert _max_diff([ort[0]["maps"]], [got[0]["maps"]]) <= ATOL


def test_compile_output_and_api(tmp_path):
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "ir")
    assert result.exit_code == 0, result.stderr
    lines = result.output.splitlines()
    assert lines[0].startswith(f"compiled {OPSET11} with openvino ") and lines[0].endswith("weights float32")
    assert lines[1].startswith("check on OpenVINO vs ONNX Runtime: OK, judged by mean per-pixel cosine >= 0.9999 "
                               "on 1 random input (seed 0)")
    assert lines[-1] == f"wrote {tmp_path / 'ir' / 'model.xml'} and {tmp_path / 'ir' / 'model.bin'}"
    api = compile_model(OPSET11, tmp_path / "again", weights="fp16")
    assert api.fp16 and api.min_cos == 0.999 and api.check is not None and api.check.ok
    assert api.bin.stat().st_size < 0.6 * (tmp_path / "ir" / "model.bin").stat().st_size  # float16 weights


def test_compile_fp16_stays_close_and_a_failed_check_writes_nothing(tmp_path):
    data = json.loads(invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "h", "--weights", "fp16",
                             "--json").output)
    assert data["fp16"] and data["weights"] == "fp16" and data["check"]["ok"]
    assert data["check"]["outputs"][0]["pixel_cos"] >= 0.9999
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "strict", "--weights", "fp16",
                    "--min-cos", 1)
    assert result.exit_code == 3, result.stderr
    assert "the compiled model differs from ONNX Runtime" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h"]  # no folder, no staging left


def test_compile_into_an_existing_folder_replaces_only_its_files(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert invoke("compile", OPSET11, "--target", "openvino", "-o", out, "--no-check").exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt", "model.bin", "model.xml"]


# --- the stages on OpenVINO ----------------------------------------------------------------------
def test_eval_on_openvino_against_ort_on_photos(photos, ir):
    for model in (OPSET17, ir):
        result = invoke("eval", "--ref", OPSET17, "--model", model, "--data", photos, "--backend", "openvino",
                        "--min-cos", 0.9999, "--json")
        assert result.exit_code == 0, result.stderr
        summary = json.loads(result.output)["summary"]
        assert summary["images"] == 4
        assert summary["pixel_cos"]["min"] >= 0.9999
        assert summary["max_abs"]["max"] <= ATOL


def test_infer_on_openvino_equals_ort(tmp_path, photos, ir):
    for model, out in ((OPSET17, "ov"), (ir, "ir"), (OPSET17, "ort")):
        args = ["infer", model, "--data", photos, "-o", tmp_path / out, "--batch", 3]
        result = invoke(*args, *(["--backend", "openvino"] if out != "ort" else []))
        assert result.exit_code == 0, result.stderr
    for out in ("ov", "ir"):
        data = json.loads(invoke("eval", tmp_path / "ort", tmp_path / out, "--json").output)
        assert data["summary"]["max_abs"]["max"] <= ATOL


def test_bench_and_profile_on_openvino(ir):
    data = json.loads(invoke("bench", ir, "--backend", "openvino", "--batches", "1,2", "--rounds", 2, "--warmup", 1,
                             "--threads", 1, "--json").output)
    assert [r["batch"] for r in data["results"]] == [1, 2]
    assert data["environment"]["backend"] == "openvino" and data["environment"]["threads"] == 1
    text = invoke("bench", ir, "--backend", "openvino", "--batches", 1, "--rounds", 1)
    assert "on OpenVINO CPU, openvino 20" in text.output
    result = invoke("profile", OPSET11, "--backend", "openvino", "--rounds", 2, "--json")
    assert result.exit_code == 0, result.stderr
    profile = json.loads(result.output)
    ops = {o["op_type"]: o for o in profile["ops"]}
    assert "Convolution" in ops and ops["Convolution"]["nodes"] >= 1
    assert sum(o["share"] for o in profile["ops"]) == pytest.approx(1)


def test_diff_on_openvino(tmp_path, ir):
    result = invoke("diff", OPSET17, ir, "--backend", "openvino", "--atol", ATOL)
    assert result.exit_code == 0, result.stderr
    assert result.output.startswith(f"{ir} on OpenVINO vs {OPSET17}: OK, judged by |diff| <= 0.0001 on 1 random input")
    lossy, _ = run_pass(load_model(OPSET11), "fold-constants,reflect2const")
    lossy_path = save_model(lossy, tmp_path / "lossy.onnx")
    result = invoke("diff", OPSET11, lossy_path, "--backend", "openvino", "--min-cos", 0.99)
    assert result.exit_code == 3


# --- bad input: one line, exit 2, nothing written ------------------------------------------------
def _bad_cases(tmp_path, photos, ir):
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    not_xml = tmp_path / "notes.xml"
    not_xml.write_text("not a model")
    lonely = tmp_path / "lonely.xml"
    lonely.write_text(ir.read_text())  # an IR without its .bin
    fake = tmp_path / "fake.xml"
    fake.write_text("<html></html>")
    (tmp_path / "fake.bin").write_bytes(b"\0" * 16)
    model = tmp_path / "g.onnx"
    model.write_bytes(OPSET11.read_bytes())
    out = tmp_path / "out"
    return {
        "compile missing model": ["compile", tmp_path / "nope.onnx", "--target", "openvino", "-o", out],
        "compile not a model": ["compile", text, "--target", "openvino", "-o", out],
        "compile unknown target": ["compile", OPSET11, "--target", "ascend", "-o", out],
        "compile output is a file": ["compile", OPSET11, "--target", "openvino", "-o", text],
        "compile output holds the model": ["compile", model, "--target", "openvino", "-o", tmp_path],
        "infer missing model": ["infer", tmp_path / "nope.onnx", "--data", photos, "-o", out, "--backend", "openvino"],
        "infer not a model": ["infer", text, "--data", photos, "-o", out, "--backend", "openvino"],
        "infer IR without weights": ["infer", lonely, "--data", photos, "-o", out, "--backend", "openvino"],
        "infer not an IR": ["infer", fake, "--data", photos, "-o", out, "--backend", "openvino"],
        "infer unknown backend": ["infer", OPSET11, "--data", photos, "-o", out, "--backend", "tvm"],
        "infer provider with openvino": ["infer", OPSET11, "--data", photos, "-o", out, "--backend", "openvino",
                                         "--provider", "cuda"],
        "eval folders with a backend": ["eval", tmp_path, tmp_path, "--backend", "openvino"],
        "bench missing model": ["bench", tmp_path / "nope.xml", "--backend", "openvino"],
        "bench IR that is not XML": ["bench", not_xml, "--backend", "openvino"],
        "bench the IR's weights": ["bench", ir.with_suffix(".bin"), "--backend", "openvino"],
        "diff not a model": ["diff", OPSET11, text, "--backend", "openvino"],
    }


BAD = ["compile missing model", "compile not a model", "compile unknown target", "compile output is a file",
       "compile output holds the model", "infer missing model", "infer not a model", "infer IR without weights",
       "infer not an IR", "infer unknown backend", "infer provider with openvino", "eval folders with a backend",
       "bench missing model", "bench IR that is not XML", "bench the IR's weights",
       "diff not a model"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, photos, ir, case):
    args = _bad_cases(tmp_path, photos, ir)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    result = invoke(*args)
    assert result.exit_code == 2, (case, result.output, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cgsurg: error: "), (case, result.stderr)
    assert "Traceback" not in result.stderr and "Exception from" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before, case  # no output folder, no staging folder


def test_inputs_are_not_modified(tmp_path, ir):
    model = tmp_path / "g.onnx"
    model.write_bytes(OPSET11.read_bytes())
    before = model.read_bytes(), ir.read_bytes(), ir.with_suffix(".bin").read_bytes()
    assert invoke("compile", model, "--target", "openvino", "-o", tmp_path / "ir").exit_code == 0
    assert invoke("bench", ir, "--backend", "openvino", "--batches", 1, "--rounds", 1).exit_code == 0
    assert (model.read_bytes(), ir.read_bytes(), ir.with_suffix(".bin").read_bytes()) == before
    assert onnx.load(str(model)) == onnx.load(str(OPSET11))


@pytest.mark.parametrize("name, content", [("fake.xml", "<html></html>"), ("fake.onnx", "hello")])
def test_no_runtime_noise_on_stderr_of_the_real_process(tmp_path, name, content):
    """OpenVINO handed an unknown file tries all its frontends and TensorFlow's logs to the
    process's stderr directly (not through Python): such files never reach it."""
    path = tmp_path / name
    path.write_text(content)
    path.with_suffix(".bin").write_bytes(b"\0" * 16)
    proc = subprocess.run([sys.executable, "-m", "graphsurgeon_cg", "bench", str(path), "--backend", "openvino"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
