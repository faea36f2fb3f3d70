"""Work on a Ray cluster with no shared storage, through the loss of worker nodes.

Nothing a worker runs opens a path of the driver's machine: the driver reads the model's files
once and puts them in Ray's object store (``ship``); a worker writes them, once per node, into a
node-local cache folder named by their digest (``materialise``) and keeps the loaded model for
the life of its process (``cached``). The object store moves each object to a node once, however
many tasks on that node read it, so a model with > 2 GB of external data crosses the network
once per node, not once per task. Samples travel as arrays in the tasks' arguments, results come
back as values, and the driver writes the files.

``run_all`` runs the jobs as plain Ray tasks and waits for them in one-second steps (so Ctrl-C
and SIGTERM are honoured at once, which a blocking ``ray.get`` or Ray Data's iterator do not):

- a task whose worker process or node dies is re-run by Ray (``max_retries``) on a live node;
- a finished result lost with its node before the driver fetched it is resubmitted by us
  (``ray.wait`` fetches each result to the driver as soon as it is ready, so this is rare);
- when no live node can run the work for ``CGSURG_RAY_NODE_WAIT`` seconds (default 60: time for
  a node to come back), or a job was lost more than ``RESUBMITS`` times, a one-line
  ``ClusterError`` ends the run: never a silent hang.

Why not Ray Data (used before): its streaming executor waited, without a word and without a
timeout, for the actors and blocks of a removed node (actor restarts, object reconstruction),
and its blocking iterator kept the driver's main thread in C++ so that SIGTERM went unhandled.
Plain tasks with a bounded wait are simpler and give every failure a message.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .core.errors import CgsurgError, ClusterError, first_line

RETRIES = 3  # Ray's re-runs of a task whose worker process or node died
RESUBMITS = 2  # ours, of a job whose finished result was lost before the driver fetched it
STEP_S = 1.0  # the driver's wait step: signals are handled between steps
QUIET_S = 30.0  # a progress line at least this often while nothing finishes


def node_wait_s() -> float:
    return float(os.environ.get("CGSURG_RAY_NODE_WAIT", "60"))


@dataclass(frozen=True)
class Shipped:
    """Files in the object store: ``refs`` are (relative name, ObjectRef of its bytes), nested in
    a tuple so that Ray hands a task the references, not the bytes, and a worker that has the
    files already (same digest) fetches nothing."""

    digest: str
    main: str
    refs: tuple


def model_files(path: str | os.PathLike) -> list[Path]:
    """The files a model is made of: an ONNX file and its external data, or an OpenVINO IR
    ``.xml`` and its ``.bin``."""
    path = Path(path)
    if path.suffix == ".xml":
        return [path, *[p for p in [path.with_suffix(".bin")] if p.is_file()]]
    import onnx
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # the loader on the driver reports a bad model; ship what is there
        return [path]
    names = sorted({entry.value for tensor in _get_all_tensors(proto) if uses_external_data(tensor)
                    for entry in tensor.external_data if entry.key == "location"})
    return [path, *(path.parent / name for name in names)]


def ship(ray: Any, files: Sequence[Path]) -> Shipped:
    """Put ``files`` (the first one is the model) into the object store, once."""
    root = files[0].parent
    return ship_named(ray, [(str(path.relative_to(root)), path) for path in files])


def ship_named(ray: Any, items: Sequence[tuple[str, Path | bytes]]) -> Shipped:
    """Put each (relative name, file or bytes) into the object store, once; the first is the
    main file (``materialise`` returns its path on the worker)."""
    import numpy as np

    digest = hashlib.sha256()
    refs = []
    for name, source in items:
        if isinstance(source, bytes):
            data, content = np.frombuffer(source, dtype=np.uint8), hashlib.sha256(source).digest()
        else:
            data, content = np.fromfile(source, dtype=np.uint8), _file_digest(source)
        digest.update(name.encode() + b"\0" + content)  # numpy arrays: workers read them without a copy
        refs.append((name, ray.put(data)))
        del data
    return Shipped(digest.hexdigest()[:24], refs[0][0], tuple(refs))


def ship_set(ray: Any, info: str | os.PathLike) -> Shipped:
    """A sample set (an info file and the files it lists) into the object store: the info is
    rewritten to name its files beside it, so the set reads the same from the worker's copy
    (stems are unique in an info file, hence so are the names)."""
    from .stages.dataset import read_info

    samples = read_info(info)
    lines = "".join(f"{s.index} {s.path.name} {s.width} {s.height}\n" for s in samples)
    return ship_named(ray, [(Path(info).name, lines.encode()), *((s.path.name, s.path) for s in samples)])


def _file_digest(path: Path) -> bytes:
    found = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 24):
            found.update(block)
    return found.digest()


def materialise(shipped: Shipped) -> Path:
    """On a worker: the shipped files in this node's cache folder (written by the first worker of
    the node that needs them, then renamed into place whole); the model's path there."""
    import ray

    folder = Path(tempfile.gettempdir()) / "cgsurg-ray" / shipped.digest
    if not folder.is_dir():
        staging = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        for name, ref in shipped.refs:
            target = staging / name
            target.parent.mkdir(parents=True, exist_ok=True)
            ray.get(ref).tofile(target)
        try:
            os.rename(staging, folder)
        except OSError:  # another worker of this node was first: its copy is the same
            shutil.rmtree(staging, ignore_errors=True)
    return folder / shipped.main


_CACHE: dict[Any, Any] = {}


def cached(key: Any, make: Callable[[], Any]) -> Any:
    """``make()`` once per worker process and ``key`` (Ray reuses a job's worker processes)."""
    if key not in _CACHE:
        _CACHE.clear()  # one model set at a time: a worker's memory is not for old jobs
        _CACHE[key] = make()
    return _CACHE[key]


def _on_node(fn: Callable, *args: Any) -> tuple[Any, str, float]:
    """``fn(*args)`` and where and how long it ran (the task body)."""
    import ray

    start = time.perf_counter()
    value = fn(*args)
    return value, ray.get_runtime_context().get_node_id(), time.perf_counter() - start


class _Nodes:
    """Which nodes did how much, and whether any live node can still run a job."""

    def __init__(self, ray: Any, cpus: int):
        self.ray, self.cpus = ray, cpus
        self.done: dict[str, list[int]] = {}

    def add(self, node: str, items: int) -> None:
        self.done.setdefault(node, [0, 0])
        self.done[node][0] += 1
        self.done[node][1] += items

    def able(self) -> int:
        """Live nodes with at least ``cpus`` CPUs."""
        return sum(1 for n in self.ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= self.cpus)

    def summary(self, unit: str) -> str:
        info = {n["NodeID"]: n for n in self.ray.nodes()}
        parts = []
        for node, (jobs, items) in sorted(self.done.items(), key=lambda kv: -kv[1][1]):
            about = info.get(node, {})
            lost = "" if about.get("Alive", True) else ", lost later"
            parts.append(f"{about.get('NodeManagerAddress', '?')} ({node[:8]}{lost}): {jobs} job(s), {items} {unit}")
        return "; ".join(parts)


def run_all(ray: Any, fn: Callable, jobs: Sequence[Callable[[], tuple]], sizes: Sequence[int], *, cpus: int = 1,
            notice: Callable[[str], None] = lambda m: None, what: str = "shard", unit: str = "images",
            on_result: Callable[[int, Any], None] | None = None, window: int | None = None) -> list:
    """``fn(*jobs[k]())`` for each job as a Ray task of ``cpus`` CPUs (``jobs[k]()`` builds the
    arguments when the job is sent, so at most ``window`` jobs' data are in flight); results in
    job order (``on_result(k, value)`` as each arrives, in any order). ``sizes``: the items of
    each job, for the progress lines."""
    from ray.exceptions import GetTimeoutError, RayError, RayTaskError

    remote = ray.remote(num_cpus=cpus, max_retries=RETRIES)(_on_node)
    nodes = _Nodes(ray, cpus)
    total, count = sum(sizes), len(jobs)
    window = window or max(2, 2 * max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus))
    results: list[Any] = [None] * count
    lost = [0] * count
    pending: dict[Any, int] = {}
    queue = list(range(count))
    finished = items = 0
    start = last = time.monotonic()
    no_node_since: float | None = None
    while queue or pending:
        while queue and len(pending) < window:
            k = queue.pop(0)
            pending[remote.remote(fn, *jobs[k]())] = k
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=STEP_S)
        now = time.monotonic()
        for ref in ready:
            k = pending.pop(ref)
            try:
                value, node, _ = ray.get(ref, timeout=60)
            except RayTaskError as exc:  # the job itself failed: its own error, in one line
                cause = getattr(exc, "cause", None)
                if isinstance(cause, CgsurgError):
                    raise cause from None
                raise ClusterError(f"{what} {k + 1} failed on the cluster: {first_line(cause or exc)}") from None
            except (GetTimeoutError, RayError) as exc:  # its worker or node is gone, Ray's retries spent
                lost[k] += 1
                if lost[k] > RESUBMITS:
                    raise ClusterError(f"{what} {k + 1} was lost {lost[k]} times ({first_line(exc)}); "
                                       f"{finished}/{count} done, giving up") from None
                notice(f"[ray] {what} {k + 1} lost ({first_line(exc, 120)}): sending it again")
                queue.insert(0, k)
                continue
            results[k] = value
            if on_result is not None:
                on_result(k, value)
            finished += 1
            items += sizes[k]
            nodes.add(node, sizes[k])
            last = now
            rate = items / max(now - start, 1e-9)
            notice(f"[ray] {what} {finished}/{count} done on node {node[:8]}: {items}/{total} {unit}, "
                   f"{rate:.1f} {unit}/s across the cluster")
        if ready:
            continue
        if nodes.able():
            no_node_since = None
        else:
            no_node_since = no_node_since or now
            if now - no_node_since > node_wait_s():
                raise ClusterError(f"no live Ray node with {cpus} CPU(s) for {node_wait_s():.0f}s; "
                                   f"{finished}/{count} {what}s done ({items}/{total} {unit}): start worker nodes "
                                   "(ray start --address HEAD:6379) and run again")
        if now - last > QUIET_S:
            waiting = "waiting for a node" if no_node_since else "running"
            notice(f"[ray] {finished}/{count} {what}s done, {len(pending)} {waiting} ({now - start:.0f}s so far)")
            last = now
    notice(f"[ray] {count} {what}s in {time.monotonic() - start:.1f}s; by node: {nodes.summary(unit)}")
    return results
