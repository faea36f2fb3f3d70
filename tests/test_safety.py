"""Data safety and one-line errors (issue 10): a command never destroys an input, a failed command
leaves no new file or folder, and every error is one line on stderr with the right exit code.

Every CLI test runs in-process on real files in tmp_path and checks the whole folder before and
after: the exit code, exactly one stderr line starting with ``cgsurg: error: ``, no traceback,
nothing new left behind, every input byte-identical."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from graphsurgeon_cg.core.errors import InputError
from graphsurgeon_cg.core.modelio import staged_folder, within

from models import OPSET11, invoke

PROC = Path("/proc")  # a folder nobody can create anything in
needs_proc = pytest.mark.skipif(not (PROC / "self").exists(), reason="needs Linux /proc")

INTERRUPTING_PLUGIN = '''
from graphsurgeon_cg import Pass, register_pass

@register_pass
class Interrupted(Pass):
    name = "safety-ctrl-c"
    summary = "the user presses Ctrl-C while it runs"
    exact = True

    def run(self, graph, ctx):
        raise KeyboardInterrupt
'''

NONE_PLUGIN = '''
from graphsurgeon_cg import Pass, register_pass

@register_pass
class ReturnsNone(Pass):
    name = "safety-returns-none"
    summary = "forgets to return a PassResult"
    exact = True

    def run(self, graph, ctx):
        return None
'''

DELETING_PLUGIN = '''
from graphsurgeon_cg import Pass, PassResult, register_pass

@register_pass
class DeleteOutputs(Pass):
    name = "safety-delete-outputs"
    summary = "drops every graph output"
    exact = True

    def run(self, graph, ctx):
        graph.outputs = []
        return PassResult(1, modified=True)
'''


# --- helpers ----------------------------------------------------------------------------

def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its bytes (None for folders), symlinks as their target."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[path.relative_to(root)] = ("link", os.readlink(path))
        else:
            found[path.relative_to(root)] = path.read_bytes() if path.is_file() else None
    return found


def assert_one_error(result, code: int = 2) -> str:
    """The exit code, one stderr line that is our error, no traceback; returns the line."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cgsurg: error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    return lines[0]


def fails_cleanly(root: Path, *args, code: int = 2) -> str:
    """Run the CLI; it must fail with one line and leave ``root`` exactly as it was."""
    before = snapshot(root)
    line = assert_one_error(invoke(*args), code)
    assert snapshot(root) == before
    return line


def save_images(folder: Path, count: int = 2, size: int = 20) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"im{i}.png")
    return folder


def prepped(tmp_path: Path, size: int = 64) -> Path:
    """An info file of preprocessed samples in tmp_path/data."""
    result = invoke("prep", save_images(tmp_path / "images"), "-o", tmp_path / "data", "--size", size)
    assert result.exit_code == 0, result.stderr
    return tmp_path / "data" / "images.info"


def resized_model(path: Path, size: int) -> Path:
    """The fixture generator declared for ``size`` x ``size`` images (it is fully convolutional)."""
    model = onnx.load(str(OPSET11))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_value = dims[3].dim_value = size
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny seeded CycleGAN generator checkpoint (ResNet, ngf 4), as in test_export."""
    torch = pytest.importorskip("torch")
    from graphsurgeon_cg import GeneratorSpec, build_generator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "latest_net_G.pth"
    torch.save(build_generator(GeneratorSpec("resnet_6blocks", ngf=4)).state_dict(), path)
    return path


@pytest.fixture
def ckpt(tmp_path, checkpoint) -> Path:
    shutil.copy(checkpoint, tmp_path / "g.pth")
    return tmp_path / "g.pth"


# --- the staging helper itself ---------------------------------------------------------

def test_staged_folder_puts_files_in_place_or_leaves_nothing(tmp_path):
    target = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError):
        with staged_folder(target) as staging:
            (staging / "half.npy").write_bytes(b"x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # not even the missing parents
    with staged_folder(target) as staging:
        (staging / "one.npy").write_bytes(b"1")
    assert sorted(p.name for p in target.iterdir()) == ["one.npy"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # like mkdir, not mkdtemp's 0700
    # An existing folder: new files move in, same-named ones are replaced, others stay.
    other = tmp_path / "kept.npy"
    other.write_bytes(b"kept")
    os.link(other, target / "linked.npy")  # a hard link is replaced, never written through
    with staged_folder(target) as staging:
        (staging / "one.npy").write_bytes(b"2")
        (staging / "linked.npy").write_bytes(b"new")
    assert (target / "one.npy").read_bytes() == b"2"
    assert other.read_bytes() == b"kept"
    assert (target / "linked.npy").read_bytes() == b"new"
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(target) as staging:
            (staging / "one.npy").write_bytes(b"3")
            raise KeyboardInterrupt
    assert (target / "one.npy").read_bytes() == b"2"
    assert sorted(p.name for p in target.iterdir()) == ["linked.npy", "one.npy"]


def test_staged_folder_keeps_what_explains_a_failure(tmp_path):
    with pytest.raises(ValueError):
        with staged_folder(tmp_path / "out", keep=lambda e: isinstance(e, ValueError)) as staging:
            (staging / "summary.json").write_text("{}")
            raise ValueError("gate failed")
    assert (tmp_path / "out" / "summary.json").exists()


def test_within_sees_through_symlinks_and_dotdot(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert within(tmp_path / "d" / "sub" / "x.npy", tmp_path / "link")
    assert within(tmp_path / "d" / "sub" / ".." / "x.npy", tmp_path / "d")
    assert within(tmp_path / "d", tmp_path / "d")
    assert not within(tmp_path / "d", tmp_path / "d" / "sub")
    assert not within(tmp_path / "d", tmp_path / "nowhere")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- never destroy an input ------------------------------------------------------------

@pytest.mark.parametrize("how", ["same path", "symlink", "hard link", "dotdot"])
def test_export_refuses_to_overwrite_its_checkpoint(tmp_path, ckpt, how):
    output = {"same path": ckpt, "symlink": tmp_path / "link.pth", "hard link": tmp_path / "hard.pth",
              "dotdot": tmp_path / "sub" / ".." / "g.pth"}[how]
    (tmp_path / "sub").mkdir()
    if how == "symlink":
        output.symlink_to(ckpt)
    elif how == "hard link":
        os.link(ckpt, output)
    line = fails_cleanly(tmp_path, "export", ckpt, "-o", output, "--size", 16)
    assert "is the checkpoint itself" in line


def test_export_pair_refuses_to_overwrite_a_checkpoint(tmp_path, ckpt):
    out = tmp_path / "od"
    out.mkdir()
    shutil.copy(ckpt, out / "model_Ga.onnx")
    line = fails_cleanly(tmp_path, "export", "--g-a", out / "model_Ga.onnx", "-o", out, "--size", 16)
    assert "is the checkpoint itself" in line


@pytest.mark.parametrize("where", ["the info folder", "a folder above it"])
def test_infer_refuses_an_output_folder_holding_its_inputs(tmp_path, where):
    info = prepped(tmp_path)
    out = info.parent if where == "the info folder" else tmp_path
    line = fails_cleanly(tmp_path, "infer", OPSET11, "--data", info, "-o", out)
    assert "is or contains the inputs" in line


def test_infer_refuses_an_output_folder_holding_samples_listed_elsewhere(tmp_path):
    info = prepped(tmp_path)
    moved = tmp_path / "other.info"
    moved.write_text("".join(f"{i} {Path('data') / line.split()[1]} 20 20\n"
                             for i, line in enumerate(info.read_text().splitlines())))
    fails_cleanly(tmp_path, "infer", OPSET11, "--data", moved, "-o", tmp_path / "data")


@pytest.mark.parametrize("where", ["the source", "a folder above it", "through a symlink"])
def test_prep_refuses_its_source_folder_as_output(tmp_path, where):
    src = save_images(tmp_path / "images")
    (tmp_path / "link").symlink_to(src)
    out = {"the source": src, "a folder above it": tmp_path, "through a symlink": tmp_path / "link"}[where]
    line = fails_cleanly(tmp_path, "prep", src, "-o", out)
    assert "is or contains the images' folder" in line


# --- a failed command leaves no new file or folder -------------------------------------

def test_failed_export_pair_leaves_no_folder(tmp_path, ckpt):
    bad = tmp_path / "bad.pth"
    bad.write_text("not a checkpoint")
    fails_cleanly(tmp_path, "export", "--g-a", bad, "-o", tmp_path / "od", "--size", 16)
    # G_A is exported, then G_B fails: neither file is left, nor the folder.
    line = fails_cleanly(tmp_path, "export", "--g-a", ckpt, "--g-b", bad, "-o", tmp_path / "od", "--size", 16)
    assert "is not a PyTorch checkpoint" in line


def test_prep_of_a_folder_without_images_leaves_no_folder(tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    before = snapshot(tmp_path)
    result = invoke("prep", src, "-o", tmp_path / "deep" / "out")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("cgsurg: error: none of the 1 files")
    assert snapshot(tmp_path) == before


def test_infer_shape_mismatch_leaves_no_folder_and_an_old_one_untouched(tmp_path):
    info = prepped(tmp_path, size=32)
    line = fails_cleanly(tmp_path, "infer", OPSET11, "--data", info, "-o", tmp_path / "out")
    assert "the model takes (3, 64, 64)" in line
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "im0.npy").write_bytes(b"earlier result")
    fails_cleanly(tmp_path, "infer", OPSET11, "--data", info, "-o", tmp_path / "old")


def test_apply_report_on_bad_inputs_leaves_no_report(tmp_path):
    info = prepped(tmp_path, size=32)  # samples of the wrong size
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                         "--report", tmp_path / "rep", "--data", info)
    assert "(3, 32, 32)" in line
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "x.npy", np.zeros((1, 3, 32, 32), np.float32))
    (tmp_path / "rep").mkdir()  # an earlier report stays as it was
    (tmp_path / "rep" / "report.json").write_text("{}")
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                         "--report", tmp_path / "rep", "--inputs", arrays)
    assert "Expected: 64" in line


def test_ctrl_c_exits_130_and_leaves_nothing(tmp_path):
    plugin = tmp_path / "interrupt.py"
    plugin.write_text(INTERRUPTING_PLUGIN)
    before = snapshot(tmp_path)
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants,safety-ctrl-c",
                    "--plugin", plugin, "--report", tmp_path / "rep")
    assert result.exit_code == 130
    assert result.stderr.strip() == "cgsurg: interrupted"
    assert snapshot(tmp_path) == before


# --- every error is one line with the right exit code ----------------------------------

@needs_proc
@pytest.mark.parametrize("case", ["prep -o", "infer -o", "eval --csv under /proc", "eval --csv folder",
                                  "apply --report", "apply --report file", "demo -o", "run -o", "prep -o file"])
def test_unwritable_or_invalid_outputs_are_one_line(tmp_path, case):
    info = prepped(tmp_path)
    images = tmp_path / "images"
    (tmp_path / "a_file").write_text("x")
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {OPSET11}\npipeline: fold-constants\ndataset: {images}\n")
    outs = tmp_path / "outs"
    assert invoke("infer", OPSET11, "--data", info, "-o", outs).exit_code == 0
    args = {
        "prep -o": ["prep", images, "-o", PROC / "cgsurg"],
        "prep -o file": ["prep", images, "-o", tmp_path / "a_file"],
        "infer -o": ["infer", OPSET11, "--data", info, "-o", PROC / "cgsurg"],
        "eval --csv under /proc": ["eval", outs, outs, "--csv", PROC / "scores.csv"],
        "eval --csv folder": ["eval", outs, outs, "--csv", outs],
        "apply --report": ["apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                           "--report", PROC / "cgsurg"],
        "apply --report file": ["apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                                "--report", tmp_path / "a_file"],
        "demo -o": ["demo", "-o", PROC / "cgsurg", "--ngf", 1, "--blocks", 1, "--size", 16, "--rounds", 1],
        "run -o": ["run", config, "-o", PROC / "cgsurg"],
    }[case]
    fails_cleanly(tmp_path, *args)


def test_run_is_staged_and_names_its_final_paths(tmp_path):
    save_images(tmp_path / "images", size=64)
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {OPSET11}\npipeline: fold-constants\ndataset: images\nbatch_sizes: [1]\n"
                      "bench_rounds: 1\nbench_warmup: 0\nsamples: 1\n")
    for _ in range(2):  # a new folder, then the same one again
        result = invoke("run", config, "-o", tmp_path / "out")
        assert result.exit_code == 0, result.stderr
    names = [p.name for p in tmp_path.rglob("*")]
    assert not [n for n in names if ".tmp-" in n]
    for path in (tmp_path / "out").rglob("*.json"):
        assert ".tmp-" not in path.read_text(), path


def test_run_reports_every_unknown_key_at_once_export_included(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m.onnx\npipeline: x\ndataset: d\nfoo: 1\nbar: 2\nexport: {sizee: 16}\n")
    line = fails_cleanly(tmp_path, "run", config)
    assert "unknown keys 'bar', 'foo', 'export.sizee'" in line
    assert "export options: " in line


def test_run_yaml_error_gives_line_and_column(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("model: m.onnx\npipeline: [fold-constants\ndataset: d\n")
    line = fails_cleanly(tmp_path, "run", config)
    assert "is not YAML or JSON: line 3, column 8: " in line


def test_run_checks_the_pipeline_before_any_work(tmp_path):
    save_images(tmp_path / "images")
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {OPSET11}\npipeline: fold-constants,fold-constantz\ndataset: images\n")
    line = fails_cleanly(tmp_path, "run", config, "-o", tmp_path / "out")
    assert "unknown pass 'fold-constantz'" in line


def test_run_refuses_an_output_folder_holding_its_dataset(tmp_path):
    save_images(tmp_path / "images")
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {OPSET11}\npipeline: fold-constants\ndataset: images\noutput: .\n")
    line = fails_cleanly(tmp_path, "run", config)
    assert "is or contains the dataset" in line


def test_run_with_a_bad_export_option_fails_before_exporting(tmp_path, ckpt):
    save_images(tmp_path / "images")
    config = tmp_path / "run.yaml"
    config.write_text(f"checkpoint: {ckpt}\nexport: {{size: 12}}\npipeline: fold-constants\ndataset: images\n")
    line = fails_cleanly(tmp_path, "run", config, "-o", tmp_path / "out")
    assert "image size 12 must be a multiple of 8" in line


@pytest.mark.parametrize("args, message", [
    (["--size", 12], "image size 12 must be a multiple of 8"),
    (["--rounds", 0], "0 is not in the range"),
    (["--ngf", 0], "0 is not in the range"),
])
def test_demo_checks_its_settings_before_any_work(tmp_path, args, message):
    line = fails_cleanly(tmp_path, "demo", "-o", tmp_path / "demo", "--ngf", 1, "--blocks", 1, *args)
    assert message in line


@pytest.mark.parametrize("setting", [{"rounds": 0}, {"ngf": 0}, {"blocks": 0}, {"size": 7},
                                     {"batch_sizes": (1, 0)}])
def test_demo_library_checks_its_settings_before_any_work(tmp_path, setting):
    from graphsurgeon_cg.workflows.demo import demo

    with pytest.raises(InputError):
        demo(tmp_path / "demo", **setting)
    assert list(tmp_path.iterdir()) == []


def test_export_with_an_architecture_that_does_not_fit(tmp_path, ckpt):
    line = fails_cleanly(tmp_path, "export", ckpt, "-o", tmp_path / "g.onnx", "--arch", "unet_256", "--size", 256)
    assert "architecture unet_256 does not fit the checkpoint: it holds a resnet generator" in line


def test_export_of_an_onnx_model_says_so(tmp_path):
    shutil.copy(OPSET11, tmp_path / "g.onnx")
    line = fails_cleanly(tmp_path, "export", tmp_path / "g.onnx", "-o", tmp_path / "out.onnx")
    assert "is an ONNX model, not a PyTorch checkpoint" in line


@pytest.mark.parametrize("content", [b"hello world\n", bytes(range(256)) * 20, b"\x93NUMPY\x01\x00"])
def test_export_of_a_file_that_is_no_checkpoint(tmp_path, content):
    pytest.importorskip("torch")
    (tmp_path / "x.pth").write_bytes(content)
    line = fails_cleanly(tmp_path, "export", tmp_path / "x.pth", "-o", tmp_path / "out.onnx")
    assert line.endswith("is not a PyTorch checkpoint (neither the zip archive of torch.save nor a pickle)")


def test_export_of_a_malicious_pickle_is_one_line_without_torch_warnings(tmp_path):
    torch = pytest.importorskip("torch")
    torch.save({"weights": _Evil()}, tmp_path / "evil.pth")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        line = fails_cleanly(tmp_path, "export", tmp_path / "evil.pth", "-o", tmp_path / "out.onnx")
    assert "unpickling it would run code" in line
    assert "nothing was executed" in line
    assert [str(w.message) for w in seen if issubclass(w.category, UserWarning)] == []


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_plugin_run_returning_none_is_a_pass_failure(tmp_path):
    plugin = tmp_path / "none.py"
    plugin.write_text(NONE_PLUGIN)
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "safety-returns-none",
                         "--plugin", plugin, code=1)
    assert "run() returned NoneType, not a PassResult" in line


def test_plugin_exiting_at_import_is_a_plugin_error(tmp_path):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(0)\n")
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                         "--plugin", plugin)
    assert "failed to import: SystemExit: 0" in line


def test_diff_of_models_with_different_input_sizes_keeps_the_axis_detail(tmp_path):
    small = resized_model(tmp_path / "small.onnx", 32)
    line = fails_cleanly(tmp_path, "diff", OPSET11, small)
    assert "index: 2 Got: 64 Expected: 32; index: 3 Got: 64 Expected: 32" in line


def test_apply_inputs_of_the_wrong_size_keeps_the_axis_detail(tmp_path):
    arrays = tmp_path / "arrays"
    arrays.mkdir()
    np.save(arrays / "x.npy", np.zeros((3, 16, 16), np.float32))
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                         "--inputs", arrays)
    assert "index: 2 Got: 16 Expected: 64" in line


def test_apply_checks_data_without_a_report(tmp_path):
    line = fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                         "--data", tmp_path / "missing.info")
    assert "no such info file" in line
    (tmp_path / "bad.info").write_text("not an info file\n")
    fails_cleanly(tmp_path, "apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants",
                  "--data", tmp_path / "bad.info")


def test_apply_inputs_skips_unreadable_files_like_prep(tmp_path):
    inputs = save_images(tmp_path / "inputs", count=1, size=64)
    (inputs / "broken.png").write_text("not a picture")
    (inputs / "notes.txt").write_text("ignored: not an input file")
    np.save(inputs / "arr.npy", np.zeros((3, 64, 64), np.float32))
    result = invoke("apply", OPSET11, "-o", tmp_path / "o.onnx", "--passes", "fold-constants", "--inputs", inputs,
                    "--report", tmp_path / "rep", "--json")
    assert result.exit_code == 0, result.stderr
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 1  # once, though the check and the report both read the folder
    assert warnings[0].startswith(f"warning: skipped {inputs / 'broken.png'}: ")
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["inputs"]["samples"] == 2


def test_bench_refuses_a_batch_that_cannot_fit_in_memory(tmp_path):
    line = fails_cleanly(tmp_path, "bench", OPSET11, "--batches", "1,100000000")
    assert "batch 100000000 needs at least" in line
    assert "use a smaller batch size" in line


def test_bench_memory_estimate_refuses_or_warns(tmp_path, monkeypatch):
    from graphsurgeon_cg.stages import bench

    image_bytes = 2 * 3 * 64 * 64 * 4  # the fixture's input and output per image
    monkeypatch.setattr(bench, "available_memory", lambda: 16 * image_bytes * bench.ACTIVATIONS_AT_LEAST - 1)
    fails_cleanly(tmp_path, "bench", OPSET11, "--batches", 16, "--rounds", 1, "--warmup", 0)
    monkeypatch.setattr(bench, "available_memory", lambda: 16 * image_bytes * bench.ACTIVATIONS_AT_LEAST)
    result = invoke("bench", OPSET11, "--batches", 16, "--rounds", 1, "--warmup", 0)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("warning: batch 16 may need up to")


def test_batch_list_with_an_empty_item_is_refused(tmp_path):
    line = fails_cleanly(tmp_path, "bench", OPSET11, "--batches", "1,,2")
    assert "expected batch sizes like 1,16" in line


def test_no_onnx_runtime_log_lines_reach_the_terminal(tmp_path):
    """ORT logs from C++ straight to file descriptor 2, past click's runner: a real process."""
    plugin = tmp_path / "delete.py"
    plugin.write_text(DELETING_PLUGIN)
    script = (
        "from click.testing import CliRunner\n"
        "from graphsurgeon_cg.cli import cli\n"
        f"profile = CliRunner().invoke(cli, ['profile', {str(OPSET11)!r}, '--rounds', '1'])\n"
        f"apply = CliRunner().invoke(cli, ['apply', {str(OPSET11)!r}, '-o', {str(tmp_path / 'o.onnx')!r},"
        f" '--passes', 'safety-delete-outputs', '--plugin', {str(plugin)!r}])\n"
        "print(profile.exit_code, apply.exit_code, repr(apply.stderr))\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.stderr == ""  # nothing from ORT (or anyone else) outside our own messages
    profile_code, apply_code, apply_stderr = run.stdout.split(" ", 2)
    assert profile_code == "0"
    assert apply_code == "1"
    assert apply_stderr.count("\\n") == 1
    assert "cgsurg: error: pass 'safety-delete-outputs' failed" in apply_stderr
    assert not (tmp_path / "o.onnx").exists()
