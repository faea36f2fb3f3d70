"""Layer 4: running stages on a Ray cluster (``--ray [ADDRESS]``; the ``[ray]`` extra).

``infer`` and ``eval`` shard an info file into runs of whole batches with Ray Data; every
shard is computed by a worker with the same backend and batch size as the local path, so the
outputs are the same files with the same values (tested bit for bit). The driver writes the
files (into the same staging folder as the local path: nothing is left behind on failure).
``tune`` runs its accuracy jobs (build a candidate, judge it) as Ray tasks of one CPU each,
packed, and its timing as one task that asks for all the CPUs of a node, so that no two
timings share cores.

Without an address Ray starts locally (or joins the instance this process started already);
``--ray auto`` joins the cluster of this machine, ``--ray ray://HOST:10001`` a remote one. The
model, the info file and its samples, and the output folder must be at the same paths on every
node (shared storage), as for any Ray job reading files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .check.backends import backend_for
from .check.feeds import ImageInput
from .core.errors import InputError
from .core.modelio import staged_folder
from .stages.dataset import Sample, read_info
from .stages.evaluate import EvalResult, _scored, score_samples
from .stages.infer import InferResult, _write, batches, check_output_beside_inputs, write_manifest


def connect(address: str | None = None) -> Any:
    """The ``ray`` module, initialised: locally (``None`` or ``local``), or joined to ``address``."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'cgsurg[ray]'") from None
    if not ray.is_initialized():
        _reachable(address)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ray.init(address=None if address in (None, "", "local") else address, include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
        except Exception as exc:  # a wrong address, a cluster that is down
            message = str(exc).strip().splitlines()
            raise InputError(f"cannot connect to Ray at {address or 'local'}: "
                             f"{message[0] if message else type(exc).__name__}") from None
    return ray


def _reachable(address: str | None) -> None:
    """Fail in a second on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    if address in (None, "", "local", "auto"):
        return
    host, _, port = str(address).removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"cannot connect to Ray at {address}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise InputError(f"cannot connect to Ray at {address}: {exc.strerror or exc}") from None


def _shards(samples: list[Sample], batch: int, workers: int) -> list[list[Sample]]:
    """Consecutive runs of whole batches, about ``workers`` x 4 of them (small enough to balance)."""
    batches_total = -(-len(samples) // batch)
    per_shard = max(1, -(-batches_total // max(1, workers * 4)))
    size = per_shard * batch
    return [samples[i:i + size] for i in range(0, len(samples), size)]


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _node_cpus(ray: Any) -> int:
    """The CPUs of the largest node (a timing job takes a whole node)."""
    return max((int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")), default=1) or 1


class _ShardWorker:
    """A Ray Data worker: models loaded once (in ``__init__``), then ``compute`` on each shard of
    the rows it is given; the results go back tagged with their shard number."""

    def compute(self, samples: list[Sample]) -> Any:
        raise NotImplementedError

    def __call__(self, rows: dict) -> dict:
        import numpy as np

        out = [(int(shard), self.compute(_samples(paths))) for shard, paths in zip(rows["shard"], rows["samples"])]
        payload = np.empty(len(out), dtype=object)
        payload[:] = out
        return {"result": payload}


class _InferShard(_ShardWorker):
    """Runs shards of samples, in batches, through the model."""

    def __init__(self, model: str, backend: str, batch: int, threads: int, provider: str):
        self.runner = backend_for(backend, provider=provider, threads=threads).load(model)
        self.batch = batch

    def compute(self, samples: list[Sample]) -> list:
        return [(chunk, outputs) for chunk, outputs, _ in batches(self.runner, samples, self.batch)]


def _rows(shards: list[list[Sample]]) -> list[dict]:
    return [{"shard": k, "samples": json.dumps([(s.index, str(s.path), s.width, s.height) for s in shard])}
            for k, shard in enumerate(shards)]


def _samples(encoded: str) -> list[Sample]:
    return [Sample(int(i), Path(p), int(w), int(h)) for i, p, w, h in json.loads(str(encoded))]


def _map_shards(ray: Any, shards: list[list[Sample]], worker: type, kwargs: dict, cpus: int) -> list:
    """Each shard through ``worker`` with Ray Data; the results in shard order."""
    import logging

    import ray.data

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its progress lines would bury ours
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    workers = max(1, min(len(shards), _cluster_cpus(ray) // cpus))
    dataset = ray.data.from_items(_rows(shards), override_num_blocks=len(shards))
    mapped = dataset.map_batches(worker, fn_constructor_kwargs=kwargs, batch_size=1, num_cpus=cpus,
                                 compute=ray.data.ActorPoolStrategy(size=workers), batch_format="numpy")
    results = [r for row in mapped.iter_rows() for r in [row["result"]]]
    return [result for _, result in sorted(results, key=lambda r: r[0])]


def infer_ray(model: str | os.PathLike, info: str | os.PathLike, out_dir: str | os.PathLike, batch: int = 16,
              address: str | None = None, threads: int = 1, provider: str = "cpu", png: bool = False,
              backend: str = "ort", notice: Callable[[str], None] = lambda m: None,
              overwrite: bool = False) -> InferResult:
    """``stages.infer.infer`` over a Ray cluster: the same output files."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    samples = read_info(info)
    runner = backend_for(backend, provider=provider, threads=1).load(model)  # checks the model before Ray starts
    image = ImageInput.of(runner)
    size = image.static_batch or batch
    names = [o.name for o in runner.get_outputs()]
    out = check_output_beside_inputs(out_dir, info, samples, overwrite)
    ray = connect(address)
    start = time.perf_counter()
    shards = _shards(samples, size, _cluster_cpus(ray) // threads)
    notice(f"[ray] {len(samples)} samples in {len(shards)} shards over {_cluster_cpus(ray)} CPUs")
    with staged_folder(out, replace=True) as staging:
        results = _map_shards(ray, shards, _InferShard,
                              dict(model=str(Path(model).resolve()), backend=backend, batch=size, threads=threads,
                                   provider=provider), threads)
        for shard in results:
            for chunk, outputs in shard:
                _write(staging, chunk, outputs, names, png)
        write_manifest(staging)
    seconds = time.perf_counter() - start
    return InferResult(count=len(samples), batch=size, seconds=seconds, inference_seconds=seconds)


class _EvalShard(_ShardWorker):
    """Scores shards image by image, the model against the reference."""

    def __init__(self, ref_model: str, model: str, backend: str, batch: int, threads: int, provider: str):
        from .check.backends import OrtBackend

        self.ref = OrtBackend(provider=provider, threads=threads).load(ref_model)
        self.runner = backend_for(backend, provider=provider if backend == "ort" else "cpu",
                                  threads=threads).load(model)
        self.batch = batch

    def compute(self, samples: list[Sample]) -> list:
        return score_samples(self.ref, self.runner, samples, self.batch)


def evaluate_ray(ref_model: str | os.PathLike, model: str | os.PathLike, info: str | os.PathLike,
                 batch: int = 16, address: str | None = None, threads: int = 1, provider: str = "cpu",
                 backend: str = "ort") -> EvalResult:
    """``stages.evaluate.evaluate_models`` over a Ray cluster: the same scores."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    samples = read_info(info)
    for path in (ref_model, model):
        if not Path(path).is_file():
            raise InputError(f"no such model file: {path}")
    ray = connect(address)
    shards = _shards(samples, batch, _cluster_cpus(ray) // threads)
    results = _map_shards(ray, shards, _EvalShard,
                          dict(ref_model=str(Path(ref_model).resolve()), model=str(Path(model).resolve()),
                               backend=backend, batch=batch, threads=threads, provider=provider), threads)
    return _scored([m for shard in results for m in shard])


def run_tasks(ray: Any, fn: Callable, jobs: Sequence[tuple], cpus: int = 1) -> list:
    """``fn(*job)`` for each job as Ray tasks of ``cpus`` CPUs; results in job order."""
    remote = ray.remote(num_cpus=cpus)(fn)
    return ray.get([remote.remote(*job) for job in jobs])


def node_task(ray: Any, fn: Callable, *args: Any) -> Any:
    """``fn(*args)`` as one task holding every CPU of a node: nothing else runs beside it."""
    return ray.get(ray.remote(num_cpus=_node_cpus(ray))(fn).remote(*args))
