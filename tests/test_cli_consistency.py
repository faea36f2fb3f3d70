"""One name per concept across the commands, old spellings warned about for one release, a
help that says where to start, and the run config's apply keys (target, lossy, data, input_shape)."""

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from models import OPSET11, invoke


@pytest.fixture(scope="module")
def prepped(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    src = root / "imgs"
    src.mkdir()
    rng = np.random.default_rng(3)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(src / f"i{k}.png")
    assert invoke("prep", src, "-o", root / "data", "--size", 64).exit_code == 0
    return root / "data" / "imgs.info"


def test_help_says_where_to_start_and_cuts_no_summary():
    text = invoke("--help").output
    assert "Start here" in text and "cgsurg demo" in text and "--target tensorrt" in text
    commands = text.split("Commands:")[1]
    assert "..." not in commands
    assert all(len(line) <= 80 for line in text.splitlines())
    for name in ("apply", "compile", "demo", "diff", "eval", "infer", "prep", "run", "tune", "targets"):
        assert f"  {name} " in commands


def test_plugin_help_says_it_registers_targets_too():
    assert "passes or targets" in " ".join(invoke("targets", "--help").output.split())


@pytest.mark.parametrize("args, old, new", [
    (["bench", OPSET11, "--batch", "1", "--rounds", 1, "--warmup", 0], "--batch", "--batches"),
])
def test_old_spellings_still_work_with_a_warning(args, old, new):
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    assert f"{old} is deprecated" in result.stderr and f"use {new}" in result.stderr
    assert "deprecated" not in invoke(*[new if a == old else a for a in args]).stderr


def test_diff_and_compile_take_data_samples(tmp_path, prepped):
    same = invoke("diff", OPSET11, OPSET11, "--data", prepped, "--samples", 2, "--min-cos", "0.999999", "--json")
    assert same.exit_code == 0, same.stderr
    both = invoke("diff", OPSET11, OPSET11, "--data", prepped, "--inputs", prepped.parent)
    assert both.exit_code == 2 and "not both" in both.stderr
    pytest.importorskip("openvino")
    compiled = invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "ov", "--data", prepped)
    assert compiled.exit_code == 0, compiled.stderr
    assert (tmp_path / "ov" / "model.xml").is_file()


def _config(tmp_path, prepped, **keys):
    config = {"model": str(OPSET11), "bench_rounds": 1, "bench_warmup": 0, "batch_sizes": [1], "samples": 2, **keys}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_config_takes_target_lossy_data_and_input_shape(tmp_path, prepped):
    path = _config(tmp_path, prepped, target="tensorrt", data=str(prepped),
                   input_shape={"img_sat_maps": [1, 3, 64, 64]})
    result = invoke("run", path, "-o", tmp_path / "run")
    assert result.exit_code == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["config"]["target"] == "tensorrt" and summary["eval"]["images"] == 3
    assert list((tmp_path / "run").glob("*.trtexec.sh"))  # the target's compile step ran
    assert "prep" not in summary  # the info file's samples, not prepped again


@pytest.mark.parametrize("keys, message", [
    ({"data": "nope.info", "pipeline": "fold-constants"}, "no such info file"),
    ({"dataset": "."}, "give 'pipeline', 'target', or both"),
    ({"pipeline": "fold-constants"}, "'dataset' (a folder of images) or 'data'"),
    ({"target": "tensorrt", "dataset": ".", "input_shape": {"x": [0, 3]}}, "'input_shape' must give positive dims"),
    ({"target": "no-such-target", "dataset": "."}, "no-such-target"),
])
def test_bad_run_configs_are_one_line(tmp_path, prepped, keys, message):
    result = invoke("run", _config(tmp_path, prepped, **keys), "-o", tmp_path / "run")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
