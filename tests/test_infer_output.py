"""infer: the last partial batch at its real size on a dynamic-batch model, and an output
folder that holds only this run's outputs (another run's folder replaced whole, others refused)."""

import numpy as np
import pytest
from onnx import helper

from graphsurgeon_cg import save_model
from graphsurgeon_cg.stages.dataset import Sample, write_info

from models import float_input, int64_init, invoke, make_model


@pytest.fixture
def samples(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    listed = []
    for k in range(4):
        np.save(data / f"s{k}.npy", rng.uniform(-1, 1, (3, 8, 8)).astype(np.float32))
        listed.append(Sample(k, data / f"s{k}.npy", 8, 8))
    write_info(data / "data.info", listed)
    return data / "data.info"


@pytest.fixture
def batch_sum(tmp_path):
    """y = x + sum of x over the batch: each output shows how big the batch it ran in was."""
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1),
             helper.make_node("Add", ["x", "s"], ["y"])]
    model = make_model(nodes, [float_input("x", ["N", 3, 8, 8])], [float_input("y", ["N", 3, 8, 8])],
                       [int64_init("axes", [0])])
    return save_model(model, tmp_path / "batch_sum.onnx")


def test_partial_last_batch_runs_at_its_real_size(tmp_path, samples, batch_sum):
    out = tmp_path / "out"
    assert invoke("infer", batch_sum, "--data", samples, "-o", out, "--batch", 3).exit_code == 0
    data = [np.load(samples.parent / f"s{k}.npy") for k in range(4)]
    # s3 ran alone (batch 1): y = x + x, not x + 3x as when padded with copies to batch 3
    np.testing.assert_allclose(np.load(out / "s3.npy"), 2 * data[3], rtol=1e-6)
    np.testing.assert_allclose(np.load(out / "s0.npy"), data[0] + data[0] + data[1] + data[2], rtol=1e-5, atol=1e-6)
    one = tmp_path / "one"
    assert invoke("infer", batch_sum, "--data", samples, "-o", one).exit_code == 0  # default batch 16, 4 samples
    np.testing.assert_allclose(np.load(one / "s3.npy"), data[3] + sum(data), rtol=1e-5, atol=1e-6)


def test_rerun_replaces_an_earlier_infer_folder_whole(tmp_path, samples, batch_sum):
    out = tmp_path / "out"
    assert invoke("infer", batch_sum, "--data", samples, "-o", out).exit_code == 0
    (samples.parent / "s3.npy").unlink()
    write_info(samples, [Sample(k, samples.parent / f"s{k}.npy", 8, 8) for k in range(3)])
    rerun = invoke("infer", batch_sum, "--data", samples, "-o", out)
    assert rerun.exit_code == 0, rerun.stderr
    assert sorted(p.name for p in out.glob("*.npy")) == ["s0.npy", "s1.npy", "s2.npy"]  # no stale s3
    assert not list(tmp_path.glob(".out.*"))


def test_folder_with_foreign_files_is_refused_unless_overwrite(tmp_path, samples, batch_sum):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "stale.npy").write_bytes(b"")
    refused = invoke("infer", batch_sum, "--data", samples, "-o", out)
    assert refused.exit_code == 2
    assert "did not write" in refused.stderr and "notes.txt" in refused.stderr and "--overwrite" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "stale.npy"]
    forced = invoke("infer", batch_sum, "--data", samples, "-o", out, "--overwrite")
    assert forced.exit_code == 0, forced.stderr
    assert sorted(p.name for p in out.iterdir()) == [".cgsurg-infer", "s0.npy", "s1.npy", "s2.npy", "s3.npy"]


def test_empty_existing_folder_is_used(tmp_path, samples, batch_sum):
    out = tmp_path / "out"
    out.mkdir()
    assert invoke("infer", batch_sum, "--data", samples, "-o", out).exit_code == 0
    assert len(list(out.glob("*.npy"))) == 4
