"""The compile scripts ``apply --target`` writes beside its output (``OUT.ovc.sh``,
``OUT.trtexec.sh``, ``OUT.atc.sh``) are valid for that model: every input, every dynamic axis
spelt the compiler's way, comments that name that compiler's options only, words that survive
the shell. The ovc scripts run here, through the real ``ovc`` (the openvino package's); trtexec
and atc are not installed, so their commands are checked as text."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from graphsurgeon_cg.core.errors import InputError
from graphsurgeon_cg.targets import CompileSettings, get_target
from graphsurgeon_cg.targets.steps import compile_step
from thirdparty import model_path

from models import OPSET11, float_input, invoke, make_model

TOOLS = {"ovc": "openvino", "trtexec": "tensorrt", "atc": "ascend"}
CGSURG_OPTIONS = {"--target", "--min-shapes", "--opt-shapes", "--max-shapes", "--weights", "--input-shape"}


def two_inputs(image=("N", 3, "H", "W"), shift=("N", 3, 1, 1), names=("image", "shift")) -> onnx.ModelProto:
    """y = Conv(image, w) + shift: two inputs sharing the dynamic batch."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", [names[0], "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", names[1]], ["y"])]
    return make_model(nodes, [float_input(names[0], list(image)), float_input(names[1], list(shift))],
                      [float_input("y", 4)], [w])


def write_step(tmp_path: Path, model: onnx.ModelProto, target: str, name: str = "m.onnx",
               settings: CompileSettings | None = None) -> tuple[list[str], str]:
    """The model and its compile script written as apply writes them: (argv, script text)."""
    out = tmp_path / name
    step = compile_step(get_target(target), model, out, settings=settings)
    onnx.save(model, out)
    step.write()
    assert step.command is not None
    return step.command.argv, (tmp_path / f"{out.stem}.{step.command.tool}.sh").read_text()


def script_command(text: str) -> list[str]:
    """The script's command line, split as sh would split it."""
    return shlex.split(text.strip().splitlines()[-1])


def comment_options(text: str) -> set[str]:
    return set(re.findall(r"--[A-Za-z_][A-Za-z0-9_-]*", "".join(x for x in text.splitlines() if x.startswith("# "))))


@pytest.fixture(scope="module")
def ovc_env(tmp_path_factory):
    """The environment in which ``ovc`` is the real converter: the console script when installed,
    else a shim that runs the same module (``python -m openvino.tools.ovc``)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed (pip install -e '.[openvino]')")
    env = dict(os.environ)
    if shutil.which("ovc") is None:
        bin_dir = tmp_path_factory.mktemp("bin")
        (bin_dir / "ovc").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m openvino.tools.ovc "$@"\n')
        (bin_dir / "ovc").chmod(0o755)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_script(script: Path, env: dict) -> dict[str, str]:
    """Runs an ovc script from another folder (it must cd itself); the IR's inputs and shapes."""
    import openvino

    done = subprocess.run(["sh", str(script)], cwd="/", env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    xml = script.with_name(script.name.removesuffix(".ovc.sh") + ".xml")
    assert xml.is_file() and xml.with_suffix(".bin").is_file()
    ir = openvino.Core().read_model(str(xml))
    return {i.get_any_name(): str(i.get_partial_shape()) for i in ir.inputs}


def float_weight_bytes(path: Path) -> int:
    return sum(numpy_helper.to_array(t).nbytes for t in onnx.load(str(path)).graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT)


# --- ovc: the real converter on the written scripts -------------------------------------------------
def test_ovc_script_of_a_dynamic_batch_model_runs_and_keeps_float32_weights(tmp_path, ovc_env):
    result = invoke("apply", OPSET11, "-o", tmp_path / "v.onnx", "--target", "openvino", "--no-check")
    assert result.exit_code == 0, result.output + result.stderr
    script = tmp_path / "v.ovc.sh"
    assert script_command(script.read_text()) == ["ovc", "v.onnx", "--output_model", "v.xml", "--input",
                                                  "img_sat_maps[?,3,64,64]", "--compress_to_fp16=False"]
    assert run_script(script, ovc_env) == {"img_sat_maps": "[?,3,64,64]"}
    weights = float_weight_bytes(tmp_path / "v.onnx")
    assert 0.95 * weights < (tmp_path / "v.bin").stat().st_size < 1.1 * weights  # float32, not ovc's float16


def test_ovc_script_of_the_third_party_text_detector_writes_question_marks(tmp_path, ovc_env):
    det = model_path("det")  # paddle2onnx's x[p2o.DynamicDimension.0,3,p2o.DynamicDimension.1,...]
    result = invoke("apply", det, "-o", tmp_path / "det.onnx", "--target", "openvino", "--no-check")
    assert result.exit_code == 0, result.output + result.stderr
    assert "ovc det.onnx --output_model det.xml --input 'x[?,3,?,?]' --compress_to_fp16=False" in \
        (tmp_path / "det.ovc.sh").read_text()
    assert run_script(tmp_path / "det.ovc.sh", ovc_env) == {"x": "[?,3,?,?]"}


def test_ovc_script_of_a_two_input_model_names_both(tmp_path, ovc_env):
    argv, text = write_step(tmp_path, two_inputs(), "openvino")
    assert argv[argv.index("--input") + 1] == "image[?,3,?,?],shift[?,3,1,1]"
    assert run_script(tmp_path / "m.ovc.sh", ovc_env) == {"image": "[?,3,?,?]", "shift": "[?,3,1,1]"}


def test_ovc_input_names_ovc_cannot_parse_go_unnamed_in_order(tmp_path, ovc_env):
    argv, _ = write_step(tmp_path, two_inputs(names=("image,0", "shift")), "openvino")
    assert argv[argv.index("--input") + 1] == "[?,3,?,?],[?,3,1,1]"
    assert run_script(tmp_path / "m.ovc.sh", ovc_env) == {"image,0": "[?,3,?,?]", "shift": "[?,3,1,1]"}


def test_apply_and_compile_agree_on_weights_fp32_by_default_fp16_on_request(tmp_path, ovc_env):
    for weights in ("fp32", "fp16"):
        out = tmp_path / weights
        out.mkdir()
        applied = invoke("apply", OPSET11, "-o", out / "v.onnx", "--target", "openvino", "--no-check",
                         *(["--weights", weights] if weights == "fp16" else []))
        assert applied.exit_code == 0, applied.output + applied.stderr
        assert f"--compress_to_fp16={weights == 'fp16'}" in (out / "v.ovc.sh").read_text()
        run_script(out / "v.ovc.sh", ovc_env)
        compiled = invoke("compile", out / "v.onnx", "--target", "openvino", "-o", out / "ir",
                          *(["--weights", weights] if weights == "fp16" else []))
        assert compiled.exit_code == 0, compiled.output + compiled.stderr
        assert compiled.stdout.splitlines()[0].endswith(f"weights {'float16' if weights == 'fp16' else 'float32'}")
        assert abs((out / "v.bin").stat().st_size - (out / "ir" / "model.bin").stat().st_size) < 1024
    assert (tmp_path / "fp16" / "v.bin").stat().st_size < 0.6 * (tmp_path / "fp32" / "v.bin").stat().st_size


def test_compile_fp16_still_works_and_says_it_is_deprecated(tmp_path):
    pytest.importorskip("openvino")
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "ir", "--fp16", "--no-check")
    assert result.exit_code == 0, result.output + result.stderr
    assert "--fp16 is deprecated" in result.stderr and "--weights fp16" in result.stderr
    assert result.stdout.splitlines()[0].endswith("weights float16")


# --- trtexec and atc: the command as text -------------------------------------------------------------
def test_trtexec_profiles_every_dynamic_axis_of_the_text_detector(tmp_path):
    argv, text = write_step(tmp_path, onnx.load(str(model_path("det"))), "tensorrt", "det.onnx")
    assert argv[2:5] == ["--minShapes=x:1x3x32x32", "--optShapes=x:8x3x640x640", "--maxShapes=x:16x3x1280x1280"]
    assert "DynamicDimension" not in text and script_command(text) == ["trtexec", "--onnx=det.onnx", *argv[2:]]


def test_trtexec_profile_set_by_the_user_and_widened_around_it(tmp_path):
    det = onnx.load(str(model_path("det")))
    argv, _ = write_step(tmp_path, det, "tensorrt", "det.onnx",
                         CompileSettings(opt_shapes={"x": (1, 3, 1536, 736)}, max_shapes={"x": (4, 3, 1536, 1536)}))
    assert argv[2:5] == ["--minShapes=x:1x3x32x32", "--optShapes=x:1x3x1536x736", "--maxShapes=x:4x3x1536x1536"]
    argv, _ = write_step(tmp_path, det, "tensorrt", "det.onnx", CompileSettings(max_shapes={"x": (4, 3, 320, 320)}))
    assert argv[2:5] == ["--minShapes=x:1x3x32x32", "--optShapes=x:4x3x320x320", "--maxShapes=x:4x3x320x320"]
    for settings, message in [(CompileSettings(opt_shapes={"y": (1, 3, 64, 64)}), "'y', which is not an input"),
                              (CompileSettings(opt_shapes={"x": (1, 1, 64, 64)}), "does not fit its shape"),
                              (CompileSettings(opt_shapes={"x": (1, 3, 64)}), "does not fit its shape"),
                              (CompileSettings(min_shapes={"x": (1, 3, 64, 64)}, max_shapes={"x": (1, 3, 32, 32)}),
                               "axis 2: min 64, opt 32, max 32 are not in order")]:
        with pytest.raises(InputError, match=message):
            write_step(tmp_path, det, "tensorrt", "det.onnx", settings)


def test_trtexec_two_inputs_each_flag_lists_both_and_a_static_model_has_no_profile(tmp_path):
    argv, text = write_step(tmp_path, two_inputs(names=("image:0", "shift")), "tensorrt")
    assert argv[2:5] == ["--minShapes='image:0':1x3x32x32,shift:1x3x1x1",
                         "--optShapes='image:0':8x3x640x640,shift:8x3x1x1",
                         "--maxShapes='image:0':16x3x1280x1280,shift:16x3x1x1"]
    assert script_command(text)[1:] == ["--onnx=m.onnx", *argv[2:]]  # the quotes reach trtexec
    argv, _ = write_step(tmp_path, two_inputs(image=(1, 3, 8, 8), shift=(1, 3, 1, 1)), "tensorrt")
    assert not any(a.startswith(("--minShapes", "--optShapes", "--maxShapes")) for a in argv)


def test_atc_gets_every_input_with_the_dynamic_batch_and_refuses_other_dynamic_axes(tmp_path):
    argv, text = write_step(tmp_path, two_inputs(image=("N", 3, 8, 8)), "ascend")
    assert "--input_shape=image:-1,3,8,8;shift:-1,3,1,1" in argv and "--dynamic_batch_size=1,2,4,8" in argv
    assert script_command(text) == [a.replace(str(tmp_path) + "/", "") for a in argv]  # ';' quoted for sh
    with pytest.raises(InputError, match=r"ATC varies only the batch .*input 'x' has dynamic axes 2, 3 .*"
                                         r"--input-shape x:1,3,H,W \(the static-shape pass\)"):
        write_step(tmp_path, onnx.load(str(model_path("det"))), "ascend", "det.onnx")
    assert not (tmp_path / "det.onnx").exists()


@pytest.mark.parametrize("tool", list(TOOLS))
def test_script_comments_name_only_that_compilers_options(tmp_path, tool):
    model = two_inputs(image=("N", 3, 8, 8))
    own = {}
    for other, target in TOOLS.items():
        argv, text = write_step(tmp_path, model, target, f"{other}.onnx")
        own[other] = {a.split("=")[0] for a in argv if a.startswith("--")}
        subprocess.run(["sh", "-n", str(tmp_path / f"{other}.{other}.sh")], check=True)  # valid sh
    text = (tmp_path / f"{tool}.{tool}.sh").read_text()
    mentioned = comment_options(text) - CGSURG_OPTIONS
    assert mentioned and mentioned <= own[tool], mentioned
    others = set().union(*(opts for t, opts in own.items() if t != tool)) - own[tool]
    assert not mentioned & others
    assert tool == "atc" or "soc_version" not in text


def test_settings_for_another_compiler_are_refused_before_any_work(tmp_path):
    for args, message in [(["--target", "tensorrt", "--weights", "fp16"], "OpenVINO's weight compression"),
                          (["--target", "ascend", "--max-shapes", "img_sat_maps:4,3,64,64"], "--input-shape"),
                          (["--target", "openvino", "--opt-shapes", "img_sat_maps:4,3,64,64"], "TensorRT's")]:
        result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", *args)
        assert result.exit_code == 2 and message in result.stderr, result.output + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
