"""--ray: infer, eval and tune on a local Ray (2 CPUs) give what the local path gives."""

import json

import numpy as np
import pytest
from PIL import Image

from models import OPSET11, invoke

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


@pytest.fixture(scope="module")
def local_ray():
    from graphsurgeon_cg.distributed import _keep_loopback

    _keep_loopback("127.0.0.1:0")  # loopback only, never the machine's outward address
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    rng = np.random.default_rng(2)
    infos = {}
    for split, count in (("calib", 3), ("eval", 5)):
        src = root / split
        src.mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / f"{split}{i}.png")
        assert invoke("prep", src, "-o", root / f"{split}_prep", "--size", 64).exit_code == 0
        infos[split] = root / f"{split}_prep" / f"{split}.info"
    return infos


def test_a_wrong_ray_address_is_one_line(sets, tmp_path):
    if ray.is_initialized():
        pytest.skip("Ray is already up in this process")
    result = invoke("eval", "--ref", OPSET11, "--model", OPSET11, "--data", sets["eval"], "--ray", "127.0.0.1:1")
    assert result.exit_code == 2 and "cannot connect to Ray at 127.0.0.1:1" in result.output


def test_infer_on_ray_writes_the_same_files(local_ray, sets, tmp_path):
    for out, extra in ((tmp_path / "local", ()), (tmp_path / "ray", ("--ray",))):
        result = invoke("infer", OPSET11, "--data", sets["eval"], "-o", out, "--batch", 2, *extra)
        assert result.exit_code == 0, result.output
    local = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert local == sorted(p.name for p in (tmp_path / "ray").iterdir()) and len(local) == 6  # 5 + .cgsurg-infer
    for name in (n for n in local if n.endswith(".npy")):
        assert np.array_equal(np.load(tmp_path / "local" / name), np.load(tmp_path / "ray" / name))


def test_eval_on_ray_gives_the_same_scores(local_ray, sets, tmp_path):
    # a lossy model, so that the scores are not all 1
    lossy = tmp_path / "lossy.onnx"
    assert invoke("apply", OPSET11, "-o", lossy, "--passes", "reflect2const(min_cos=0.5)").exit_code == 0
    runs = []
    for extra in ((), ("--ray",)):
        result = invoke("eval", "--ref", OPSET11, "--model", lossy, "--data", sets["eval"],
                        "--batch", 2, "--json", *extra)
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))  # Ray may log on stderr
    # Same outputs; the float64 metric sums may differ in the last bit (numpy's pairwise summation
    # follows memory alignment), so compare to 1e-12.
    for local, remote in zip(runs[0]["images"], runs[1]["images"]):
        assert local.keys() == remote.keys() and local["name"] == remote["name"]
        for key in ("max_abs", "mean_abs", "cos", "pixel_cos", "psnr_db", "ssim"):
            assert remote[key] == pytest.approx(local[key], rel=1e-12, abs=1e-12), key
    assert len(runs[0]["images"]) == 5 and runs[0]["summary"]["pixel_cos"]["mean"] < 1


def test_tune_on_ray_judges_like_the_local_path(local_ray, sets, tmp_path):
    reports = []
    for out, extra in ((tmp_path / "local", ()), (tmp_path / "ray", ("--ray",))):
        result = invoke("tune", OPSET11, "--data", sets["calib"], "--eval", sets["eval"], "--rounds", 1, "--batches", 1,
                        "--min-cos", "0.9", "--only", "exact,ConvTranspose float", "-o", out, *extra)
        assert result.exit_code == 0, result.output
        reports.append(json.loads((out / "tune.json").read_text()))
    full = 0
    for local, remote in zip(*(r["candidates"] for r in reports)):
        assert local["label"] == remote["label"] and remote["evaluated"] == "full"
        # the local search judges in full only what could win (tune.search); Ray judges all in full
        for key in ("eval_cos", "calib_cos") if local["evaluated"] == "full" else ():
            if local[key]:
                full += 1
                assert remote[key]["mean"] == pytest.approx(local[key]["mean"], rel=1e-12, abs=1e-12)
        assert remote["img_per_s"]["1"] > 0
    assert full >= 2  # the winner at least, on both sets
