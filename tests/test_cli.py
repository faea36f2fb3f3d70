import json
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from models import BILINEAR, FIXTURE_PADS, OPSET11, invoke

PLUGIN = '''
from graphsurgeon_cg import Pass, PassResult, register_pass

@register_pass
class DropNothing(Pass):
    name = "cli-plugin-noop"
    summary = "A user's pass loaded with --plugin"
    exact = True

    def run(self, graph, ctx):
        return PassResult(0, ["nothing to do"])
'''


def test_apply_prints_the_pass_table_and_check(tmp_path):
    out = tmp_path / "out.onnx"
    result = invoke("apply", OPSET11, "-o", out, "--passes", "fold-constants,reflect2slice,pad-conv-fusion,fp16out")
    assert result.exit_code == 0, result.output + result.stderr
    assert "reflect2slice" in result.output
    assert f"Pad -{FIXTURE_PADS}" in result.output  # the op delta column
    assert "why not: no Pad" in result.output  # pad-conv-fusion found nothing after reflect2slice
    assert "OK, judged by" in result.output and "on 1 random input (seed 0)" in result.output
    assert out.exists()


def test_apply_json(tmp_path):
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants", "--json")
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(result.output)
    assert data["passes"][0]["name"] == "fold-constants"
    assert data["passes"][0]["modified"] is True
    assert data["check"]["ok"] is True


def test_numeric_breach_exits_3_and_names_the_pass(tmp_path):
    out = tmp_path / "o.onnx"
    result = invoke("apply", BILINEAR, "-o", out, "--passes", "fold-constants,resize-nearest,reflect2slice")
    assert result.exit_code == 3
    assert result.stderr.startswith("cgsurg: error: numeric check failed after pass 'resize-nearest'")
    assert not out.exists()


def test_plugin_on_the_command_line(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text(PLUGIN)
    listed = invoke("passes", "--plugin", plugin, "--json")
    assert "cli-plugin-noop" in [p["name"] for p in json.loads(listed.output)]
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "cli-plugin-noop", "--plugin", plugin)
    assert result.exit_code == 0, result.output + result.stderr
    assert "why not: nothing to do" in result.output


def test_passes_json_lists_every_built_in_with_options():
    data = json.loads(invoke("passes", "--json").output)
    by_name = {p["name"]: p for p in data}
    assert by_name["resize-nearest"]["options"]["nearest_mode"]["default"] == "round_prefer_ceil"
    assert by_name["reflect2slice"]["exact"] is True
    assert by_name["reflect2const"]["exact"] is False


def test_diff(tmp_path):
    out = tmp_path / "o.onnx"
    invoke("apply", BILINEAR, "-o", out, "--passes", "fold-constants,resize-nearest", "--no-check")
    same = invoke("diff", BILINEAR, BILINEAR, "--json")
    assert json.loads(same.output)["outputs"][0]["max_abs"] == 0.0
    changed = invoke("diff", BILINEAR, out, "--json")
    metrics = json.loads(changed.output)["outputs"][0]
    assert changed.exit_code == 0
    assert 0 < metrics["pixel_cos"] < 1
    assert metrics["psnr_db"] > 0
    assert metrics["judged_by"] == "pixel_cos"
    gated = invoke("diff", BILINEAR, out, "--atol", "1e-5")
    assert gated.exit_code == 3
    assert "would pass" in gated.stderr


def _bad_inputs(tmp_path):
    d = tmp_path
    (d / "empty.onnx").write_bytes(b"")
    (d / "text.onnx").write_text("not a model")
    (d / "trunc.onnx").write_bytes(OPSET11.read_bytes()[:50_000])
    (d / "dir.onnx").mkdir()
    copy = d / "copy.onnx"
    shutil.copy(OPSET11, copy)
    out = str(d / "out.onnx")
    return {
        "missing file": ["apply", d / "nope.onnx", "-o", out, "--passes", "fold-constants"],
        "directory": ["apply", d / "dir.onnx", "-o", out, "--passes", "fold-constants"],
        "empty file": ["apply", d / "empty.onnx", "-o", out, "--passes", "fold-constants"],
        "not onnx": ["apply", d / "text.onnx", "-o", out, "--passes", "fold-constants"],
        "truncated": ["apply", d / "trunc.onnx", "-o", out, "--passes", "fold-constants"],
        "unknown pass": ["apply", copy, "-o", out, "--passes", "fold-constant"],
        "unknown option": ["apply", copy, "-o", out, "--passes", "opset(versoin=13)"],
        "badly typed option": ["apply", copy, "-o", out, "--passes", "opset(version=thirteen)"],
        "output is input": ["apply", copy, "-o", copy, "--passes", "fold-constants"],
        "unwritable output dir": ["apply", copy, "-o", "/sys/out.onnx", "--passes", "fold-constants"],
        "missing output dir": ["apply", copy, "-o", d / "no" / "out.onnx", "--passes", "fold-constants"],
        "bad input shape": ["apply", copy, "-o", out, "--passes", "fold-constants", "--input-shape", "x:1,a"],
        "diff missing": ["diff", d / "nope.onnx", copy],
        "missing required option": ["apply", copy, "-o", out],
        "unknown flag": ["apply", copy, "-o", out, "--passes", "fold-constants", "--no-such-flag"],
        "missing plugin": ["passes", "--plugin", d / "nope.py"],
    }


@pytest.mark.parametrize("case", [
    "missing file", "directory", "empty file", "not onnx", "truncated", "unknown pass", "unknown option",
    "badly typed option", "output is input", "unwritable output dir", "missing output dir", "bad input shape",
    "diff missing", "missing plugin", "missing required option", "unknown flag"])
def test_bad_input_one_line_no_traceback_no_output(tmp_path, case):
    args = _bad_inputs(tmp_path)[case]
    before = (tmp_path / "copy.onnx").read_bytes()
    result = invoke(*args)
    assert result.exit_code == 2, (case, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, (case, result.stderr)
    assert lines[0].startswith("cgsurg: error: "), (case, result.stderr)
    assert "Traceback" not in result.output + result.stderr
    assert not (tmp_path / "out.onnx").exists()
    assert (tmp_path / "copy.onnx").read_bytes() == before


def test_real_subprocesses(tmp_path):
    """The CLI as a real process, run as ``python -m graphsurgeon_cg`` so that it works without the
    console script on PATH; the console script itself is checked next to the interpreter."""
    out = tmp_path / "o.onnx"
    cgsurg = [sys.executable, "-m", "graphsurgeon_cg"]
    run = subprocess.run([*cgsurg, "apply", str(OPSET11), "-o", str(out), "--passes", "fold-constants,reflect2slice"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert out.exists()
    listed = subprocess.run([*cgsurg, "passes"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "reflect2slice" in listed.stdout
    bad = subprocess.run([*cgsurg, "apply", str(tmp_path / "nope.onnx"), "-o", str(out), "--passes", "opset"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1, bad.stderr
    assert bad.stderr.startswith("cgsurg: error: ")
    script = Path(sys.executable).parent / "cgsurg"  # installed with the package, next to the interpreter
    assert script.is_file(), "the console script is installed with the package"
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr


def test_every_option_of_every_command_has_help_text():
    from graphsurgeon_cg.cli import cli

    missing = [f"{name} {param.opts[0]}" for name, command in cli.commands.items() for param in command.params
               if isinstance(param, click.Option) and not param.help]
    assert not missing
