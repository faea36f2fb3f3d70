"""--ray on a cluster of several nodes (a head with no CPUs, two 1-CPU worker nodes, all on
loopback): a worker node killed mid-run changes nothing in the outputs, workers open no path of
the driver's, and a cluster with no worker left fails in one line instead of hanging."""

import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from models import OPSET11, invoke

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
from ray.cluster_utils import Cluster  # noqa: E402

pytestmark = pytest.mark.cluster
SAMPLES = 24
LOOPBACK = "127.0.0.1"
RUN_LIMIT_S = 150  # a run that takes longer has hung: the test fails instead of waiting
FAST_FAILURE = {"health_check_period_ms": 500, "health_check_failure_threshold": 4}  # a dead node noticed in 2 s


def _worker(cluster):
    return cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK, object_store_memory=80 * 2**20)


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    made = Cluster(initialize_head=True, head_node_args=dict(
        num_cpus=0, node_ip_address=LOOPBACK, include_dashboard=False, object_store_memory=80 * 2**20,
        _system_config=FAST_FAILURE))
    for _ in range(2):
        _worker(made)
    made.wait_for_nodes()
    yield made
    ray.shutdown()
    made.shutdown()


def _slow_model(path):
    """A seeded 3->3-channel generator heavy enough (about 0.1 s per 64x64 image on one core) that a
    node can be killed while shards are in flight."""
    rng = np.random.default_rng(7)
    widths = [3] + [48] * 7 + [3]
    nodes, inits, name = [], [], "x"
    for k, (cin, cout) in enumerate(zip(widths, widths[1:])):
        w = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        nodes.append(helper.make_node("Conv", [name, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
        last = k == len(widths) - 2
        nodes.append(helper.make_node("Tanh" if last else "Relu", [f"c{k}"], ["y" if last else f"r{k}"]))
        name = f"r{k}"
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, 64, 64])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(3)
    lines = []
    for i in range(SAMPLES):
        np.save(root / f"s{i:02d}.npy", rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32))
        lines.append(f"{i} s{i:02d}.npy 64 64")
    (root / "set.info").write_text("\n".join(lines) + "\n")
    return root / "set.info", _slow_model(root / "slow.onnx")


def _driver(cluster, *args, **env_vars):
    """``cgsurg ARGS --ray ADDRESS`` as its own process (a driver of its own, as a user runs it)."""
    env = dict(os.environ, **env_vars)
    return subprocess.Popen([sys.executable, "-m", "graphsurgeon_cg", *map(str, args), "--ray", cluster.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _run_killing_a_node(cluster, *args, what="shard"):
    """Run the driver; when its first ``what`` (shard, candidate) is done, kill (not gracefully)
    the node that did it while the next are in flight. (exit code, stdout, stderr lines, killed
    mid-run)."""
    proc = _driver(cluster, *args)
    timer = threading.Timer(RUN_LIMIT_S, proc.kill)
    timer.start()
    lines, killed_mid_run = [], False
    reader = threading.Thread(target=lambda: out_holder.append(proc.stdout.read()))
    out_holder: list[str] = []
    reader.start()
    try:
        for line in proc.stderr:
            lines.append(line.rstrip())
            done = re.search(rf"{what} 1/\d+ done on node (\w+)", line)
            if done and not killed_mid_run:
                node = next(n for n in cluster.worker_nodes if n.node_id.startswith(done.group(1)))
                cluster.remove_node(node, allow_graceful=False)
                killed_mid_run = proc.poll() is None
        proc.wait()
    finally:
        timer.cancel()
        reader.join()
        if len(cluster.worker_nodes) < 2:
            _worker(cluster)  # the next test gets two worker nodes again
            cluster.wait_for_nodes()
    return proc.returncode, out_holder[0] if out_holder else "", lines, killed_mid_run


def test_infer_survives_a_lost_node_with_the_same_files(cluster, data, tmp_path):
    info, model = data
    assert invoke("infer", model, "--data", info, "-o", tmp_path / "local", "--batch", 2).exit_code == 0
    code, _, lines, killed = _run_killing_a_node(cluster, "infer", model, "--data", info, "-o", tmp_path / "ray",
                                                 "--batch", 2)
    assert code == 0, "\n".join(lines[-20:])
    assert killed, "the node was killed after the run: make the model slower"
    later = lines[[i for i, line in enumerate(lines) if "shard 1/" in line][0] + 1:]
    assert any(re.search(r"shard \d+/\d+ done", line) for line in later)  # work went on after the kill
    assert "by node:" in lines[-2] or any("by node:" in line for line in lines)
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(local) == SAMPLES + 1
    for name in (n for n in local if n.endswith(".npy")):
        assert np.load(tmp_path / "local" / name).tobytes() == np.load(tmp_path / "ray" / name).tobytes(), name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_eval_survives_a_lost_node_with_the_same_scores(cluster, data, tmp_path):
    info, model = data
    local = invoke("eval", "--ref", OPSET11, "--model", model, "--data", info, "--batch", 2, "--json")
    assert local.exit_code == 0, local.output
    # OPSET11 is fast and `model` slow: the scores compare two different generators, so they are not 1
    code, out, lines, killed = _run_killing_a_node(cluster, "eval", "--ref", OPSET11, "--model", model, "--data",
                                                   info, "--batch", 2, "--json")
    assert code == 0 and killed, "\n".join(lines[-20:])
    here, there = json.loads(local.stdout)["images"], json.loads(out)["images"]
    assert [i["name"] for i in here] == [i["name"] for i in there] and len(here) == SAMPLES
    # the same outputs; float64 metric sums may differ in the last bit (numpy's pairwise
    # summation follows memory alignment), hence 1e-12
    for a, b in zip(here, there):
        for key in ("max_abs", "mean_abs", "cos", "pixel_cos", "psnr_db", "ssim"):
            assert b[key] == pytest.approx(a[key], rel=1e-12, abs=1e-12), key


def _forbid(prefix):
    """In each worker process: opening anything under the driver's folder raises."""
    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and \
                os.fsdecode(args[0]).startswith(prefix):
            raise PermissionError(f"a worker opened the driver's {os.fsdecode(args[0])}")
    return lambda: sys.addaudithook(hook)


def test_workers_open_no_path_of_the_driver(cluster, data, tmp_path):
    from graphsurgeon_cg.distributed import _shard_job, connect, infer_ray
    from graphsurgeon_cg.stages.dataset import read_info

    info, model = data
    folder = str(info.parent)
    jobs = [_shard_job({}, "MODEL", [s])() for s in read_info(info)[:3]]

    def strings(value):
        if isinstance(value, (str, os.PathLike)):
            yield os.fspath(value)
        elif isinstance(value, (list, tuple, dict)):
            for item in (value.values() if isinstance(value, dict) else value):
                yield from strings(item)

    assert not [s for job in jobs for s in strings(job) if folder in s]  # names and arrays, no path
    connect(cluster.address, runtime_env={"worker_process_setup_hook": _forbid(folder)})
    try:
        lines: list[str] = []
        result = infer_ray(model, info, tmp_path / "out", batch=4, notice=lines.append)
        assert result.count == SAMPLES and len(list((tmp_path / "out").glob("*.npy"))) == SAMPLES
        assert re.search(r"by node: .*\d+ job\(s\)", lines[-1]), lines[-1]
    finally:
        ray.shutdown()


def test_a_cluster_without_workers_fails_in_one_line(cluster, data, tmp_path):
    info, model = data
    for node in list(cluster.worker_nodes):
        cluster.remove_node(node, allow_graceful=False)
    start = time.monotonic()
    proc = _driver(cluster, "infer", model, "--data", info, "-o", tmp_path / "out", "--batch", 2,
                   CGSURG_RAY_NODE_WAIT="3")
    try:
        out, err = proc.communicate(timeout=RUN_LIMIT_S)
    finally:
        proc.kill()
        for _ in range(2):
            _worker(cluster)
    assert proc.returncode == 1, err
    assert "no live Ray node with 1 CPU(s)" in err and "Traceback" not in err
    assert time.monotonic() - start < RUN_LIMIT_S and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tune_sets(data):
    """Disjoint calibration (4) and evaluation (6) sets of the module's samples."""
    info, _ = data
    lines = info.read_text().splitlines()
    (info.parent / "calib.info").write_text("\n".join(lines[:4]) + "\n")
    (info.parent / "eval.info").write_text("\n".join(lines[4:10]) + "\n")
    return info.parent / "calib.info", info.parent / "eval.info"


# exact meets the bar, the int8 candidate (the slow one, in flight when the node dies) does not:
# the winner cannot depend on timing noise
TUNE_ARGS = ("--rounds", 1, "--batches", 1, "--min-cos", "0.9999", "--only", "exact,ConvTranspose float")


def test_tune_survives_a_lost_node_with_the_same_winner(cluster, tune_sets, tmp_path):
    calib, evaluation = tune_sets
    args = ("tune", OPSET11, "--data", calib, "--eval", evaluation, *TUNE_ARGS)
    local = invoke(*args, "-o", tmp_path / "local")
    assert local.exit_code == 0, local.output
    code, out, lines, killed = _run_killing_a_node(cluster, *args, "-o", tmp_path / "ray", what="candidate")
    assert code == 0 and killed, "\n".join(lines[-20:])
    done = [i for i, line in enumerate(lines) if re.search(r"candidate \d/3 done", line)]
    assert len(done) == 3, "\n".join(line for line in lines if line.startswith("["))  # the node's candidate re-run
    here, there = (json.loads((tmp_path / run / "tune.json").read_text()) for run in ("local", "ray"))
    assert here["winner"] == there["winner"] == {"label": "exact", "backend": "ort"}
    assert [c["label"] for c in here["candidates"]] == [c["label"] for c in there["candidates"]]
    assert not [c["error"] for c in there["candidates"] if c["error"]]
    for mine, theirs in zip(here["candidates"], there["candidates"]):
        if mine["evaluated"] == "full":  # the local search judges in full only what could win
            assert theirs["eval_cos"]["mean"] == pytest.approx(mine["eval_cos"]["mean"], rel=1e-12, abs=1e-12)
        assert theirs["img_per_s"]["1"] > 0
    for run in ("local", "ray"):  # every candidate's model is in the driver's folder, the winner written
        report = json.loads((tmp_path / run / "tune.json").read_text())
        assert all(os.path.isfile(c["model"]) for c in report["candidates"])
    assert (tmp_path / "ray" / "best.onnx").read_bytes() == (tmp_path / "local" / "best.onnx").read_bytes()


def test_tune_workers_open_no_path_of_the_driver(cluster, tune_sets, tmp_path):
    import shutil

    from graphsurgeon_cg.distributed import connect
    from graphsurgeon_cg.tune import tune

    calib, evaluation = tune_sets
    folder = str(calib.parent)
    model = shutil.copyfile(OPSET11, calib.parent / "tune_model.onnx")  # the model too, in the forbidden folder
    connect(cluster.address, runtime_env={"worker_process_setup_hook": _forbid(folder)})
    try:
        result = tune(model, calib, evaluation, calib.parent / "tune_out", min_cos=0.9, batches=(1,), rounds=1,
                      only=["exact", "ConvTranspose float"], ray_address=cluster.address)
    finally:
        ray.shutdown()
    assert not [c.error for c in result.candidates if c.error]  # a worker that opened a driver path fails
    int8 = next(c for c in result.candidates if "int8" in c.label)
    assert int8.eval_cos and int8.calib_cos and "data=" + str(calib) in int8.pipeline  # the driver's path, back
    assert os.path.isfile(int8.model) and str(int8.model).startswith(folder)
