"""Layer 4: running stages on a Ray cluster (``--ray [ADDRESS]``; the ``[ray]`` extra).

``infer`` and ``eval`` shard an info file into runs of whole batches, one Ray task each
(``cluster.run_all``: retried when a worker or node dies, never a silent wait); every shard is
computed with the same backend and batch size as the local path, so the outputs are the same
files with the same values (tested bit for bit, with a worker node killed mid-run). The driver
reads the model and the samples and ships them (``cluster.ship``: no shared storage), and
writes the files it gets back (into the same staging folder as the local path: nothing is left
behind on failure).
``tune`` runs its accuracy jobs (build a candidate, judge it) as Ray tasks of one CPU each,
packed, and its timing as one task that asks for all the CPUs of a node (``node_task``), so
that no two timings share cores; the model, both sample sets and the built candidates travel
through the object store too (``tune.remote``).

Without an address Ray starts locally (or joins the instance this process started already);
``--ray auto`` joins the cluster of this machine, ``--ray HOST:6379`` or ``ray://HOST:10001`` a
remote one. Only the driver's machine needs the files; the workers need cgsurg installed.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .check.backends import backend_for
from .check.feeds import ImageInput
from .cluster import Shipped, cached, materialise, model_files, run_all, ship
from .core.errors import InputError
from .core.modelio import staged_folder
from .stages.dataset import Sample, load_sample, read_info
from .stages.evaluate import EvalResult, score_samples
from .stages.infer import InferResult, _write, batches, check_output_beside_inputs, write_manifest


def connect(address: str | None = None, runtime_env: dict | None = None) -> Any:
    """The ``ray`` module, initialised: locally (``None`` or ``local``), or joined to ``address``
    (``runtime_env``: the job's, for tests)."""
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'cgsurg[ray]'") from None
    if not ray.is_initialized():
        _reachable(address)
        local = address in (None, "", "local")
        _keep_loopback("127.0.0.1:0" if local else address)
        _cluster_news_to_stderr()
        # A local Ray is this machine's own: it listens on loopback only, never on the outward address.
        bind: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if local else {}
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ray.init(address=None if local else address, include_dashboard=False,
                         log_to_driver=False, configure_logging=False, runtime_env=runtime_env, **bind)
        except Exception as exc:  # a wrong address, a cluster that is down
            message = str(exc).strip().splitlines()
            raise InputError(f"cannot connect to Ray at {address or 'local'}: "
                             f"{message[0] if message else type(exc).__name__}") from None
    return ray


def _keep_loopback(address: str | None) -> None:
    """Join a loopback address by loopback. Ray rewrites 127.0.0.1/localhost to the machine's
    outward address (``services.resolve_ip_for_localhost``); a head started with
    ``--node-ip-address 127.0.0.1`` does not answer there, and ``ray.init`` then retries for
    minutes printing "Failed to connect to GCS" (the hang seen in issue 22). Ray's switch for
    loopback-only machines (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) is read once at import, so
    it is set on the loaded module."""
    host = str(address or "").removeprefix("ray://").rpartition(":")[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False


def _cluster_news_to_stderr() -> None:
    """Ray prints the cluster's error messages ("Raylet is terminated", a node lost) on the
    driver's stdout, where ``--json`` writes; send them to stderr with our progress lines."""
    from ray._private import worker

    show = worker.print_to_stdstream
    if getattr(show, "cgsurg", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool = False) -> None:
        show({**data, "is_err": True}, ignore_prefix)

    to_stderr.cgsurg = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


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


def _rows(shard: list[Sample]) -> list[tuple[int, str, int, int]]:
    """A shard's samples as a worker sees them: names and sizes, never the driver's paths."""
    return [(s.index, s.stem, s.width, s.height) for s in shard]


def _shard_job(spec: dict, model: Any, shard: list[Sample]) -> Callable[[], tuple]:
    """The arguments of a shard's task, read when it is sent: the samples as arrays."""
    return lambda: (spec, model, _rows(shard), [load_sample(s) for s in shard])


def _local(rows: list, arrays: list) -> tuple[list[Sample], Callable[[Sample], Any]]:
    """On a worker: the shard's samples (named as on the driver) and a reader of their arrays."""
    samples = [Sample(int(i), Path(f"{stem}.npy"), int(w), int(h)) for i, stem, w, h in rows]
    by_stem = {s.stem: a for s, a in zip(samples, arrays)}
    return samples, lambda s: by_stem[s.stem]


def _infer_shard(spec: dict, model: Shipped, rows: list, arrays: list) -> list:
    """A Ray task: the outputs of each batch of the shard."""
    runner = cached((model.digest, spec["backend"], spec["provider"], spec["threads"]),
                    lambda: backend_for(spec["backend"], provider=spec["provider"],
                                        threads=spec["threads"]).load(str(materialise(model))))
    samples, read = _local(rows, arrays)
    return [outputs for _, outputs, _ in batches(runner, samples, spec["batch"], read=read)]


def infer_ray(model: str | os.PathLike, info: str | os.PathLike, out_dir: str | os.PathLike, batch: int = 16,
              address: str | None = None, threads: int = 1, provider: str = "cpu", png: bool = False,
              backend: str = "ort", notice: Callable[[str], None] = lambda m: None,
              overwrite: bool = False) -> InferResult:
    """``stages.infer.infer`` over a Ray cluster: the same output files, written by the driver."""
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
    shipped = ship(ray, model_files(model))
    spec = dict(backend=backend, batch=size, threads=threads, provider=provider)
    with staged_folder(out, replace=True) as staging:
        def write(k: int, outputs: list) -> None:
            chunks = [shards[k][i:i + size] for i in range(0, len(shards[k]), size)]
            for chunk, values in zip(chunks, outputs):
                _write(staging, chunk, values, names, png)

        run_all(ray, _infer_shard, [_shard_job(spec, shipped, shard) for shard in shards],
                [len(shard) for shard in shards], cpus=threads, notice=notice, on_result=write)
        write_manifest(staging)
    seconds = time.perf_counter() - start
    return InferResult(count=len(samples), batch=size, seconds=seconds, inference_seconds=seconds)


def _eval_shard(spec: dict, models: tuple[Shipped, Shipped], rows: list, arrays: list) -> list:
    """A Ray task: the scores of the shard's samples, the model against the reference."""
    from .check.backends import OrtBackend

    ref_model, model = models

    def load() -> tuple:
        ref = OrtBackend(provider=spec["provider"], threads=spec["threads"]).load(str(materialise(ref_model)))
        runner = backend_for(spec["backend"], provider=spec["provider"] if spec["backend"] == "ort" else "cpu",
                             threads=spec["threads"]).load(str(materialise(model)))
        return ref, runner

    ref, runner = cached((ref_model.digest, model.digest, spec["backend"], spec["provider"], spec["threads"]), load)
    samples, read = _local(rows, arrays)
    return score_samples(ref, runner, samples, spec["batch"], read=read)


def evaluate_ray(ref_model: str | os.PathLike, model: str | os.PathLike, info: str | os.PathLike,
                 batch: int = 16, address: str | None = None, threads: int = 1, provider: str = "cpu",
                 backend: str = "ort", notice: Callable[[str], None] = lambda m: None) -> EvalResult:
    """``stages.evaluate.evaluate_models`` over a Ray cluster: the same scores."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    samples = read_info(info)
    for path in (ref_model, model):
        if not Path(path).is_file():
            raise InputError(f"no such model file: {path}")
    ray = connect(address)
    shards = _shards(samples, batch, _cluster_cpus(ray) // threads)
    notice(f"[ray] {len(samples)} samples in {len(shards)} shards over {_cluster_cpus(ray)} CPUs")
    models = (ship(ray, model_files(ref_model)), ship(ray, model_files(model)))
    spec = dict(backend=backend, batch=batch, threads=threads, provider=provider)
    results = run_all(ray, _eval_shard, [_shard_job(spec, models, shard) for shard in shards],
                      [len(shard) for shard in shards], cpus=threads, notice=notice)
    return EvalResult.from_scores([m for shard in results for m in shard])


def node_task(ray: Any, fn: Callable, *args: Any, notice: Callable[[str], None] = lambda m: None) -> Any:
    """``fn(*args)`` as one task holding every CPU of a node: nothing else runs beside it (re-run
    on another node if its node dies)."""
    return run_all(ray, fn, [lambda: args], [1], cpus=_node_cpus(ray), notice=notice, what="timing",
                   unit="timings")[0]
