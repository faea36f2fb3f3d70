"""bench: throughput and latency per batch size, like the vendor tool's two modes.

On ONNX Runtime or OpenVINO (``backend``). Pure inference: random inputs of the model's
shape and range (floats in [-1, 1], uint8 images over 0..255), ``warmup`` untimed runs, then
``rounds`` timed runs. Real data: batches cut from an info file's samples, cycled. Only
``run`` is timed. A static-batch model runs only its own batch size, and the result says so.
A batch that cannot fit in memory is refused before anything runs (see ``memory_needed``),
rather than the process being killed.

Each runtime runs with the settings a deployment would use for the batch (``deployment_runner``,
shared with ``tune``): ONNX Runtime with one intra-op thread per core this process may use;
OpenVINO with ``PERFORMANCE_HINT`` LATENCY at batch 1 and THROUGHPUT above it, where the
batch is split over the streams OpenVINO chose and run as parallel requests (one request on a
THROUGHPUT model would use one stream's share of the cores).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..check.backends import OpenVinoBackend, OpenVinoRunner, Runner, TensorInfo, backend_for
from ..check.feeds import ImageInput, Shapes
from ..check.session import numpy_dtype
from ..core.errors import InputError
from .dataset import load_sample, read_info

# ORT's peak memory on the CPU per image, as a multiple of the image's input plus output bytes,
# measured on exported generators (ORT 1.32, optimisations on, batch 1 to 64): about 8x for a
# narrow one (resnet_6blocks, ngf 4, 64x64) and 90-100x for the reference resnet_9blocks (ngf 64,
# 256x256), whose 64-channel full-size activations are 20 times the image each. A batch that
# does not fit even at the low figure is refused; one that does not fit at the reference
# figure gets a notice.
ACTIVATIONS_AT_LEAST = 8
ACTIVATIONS_REFERENCE = 100


def cores() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def deployment_runner(backend: str, model: str | os.PathLike, batch: int, threads: int | None = None,
                      precision: str = "f32") -> Runner:
    """``model`` loaded as a deployment would run it at ``batch`` (see the module doc);
    ``precision``: OpenVINO's ``INFERENCE_PRECISION_HINT`` (f32, bf16)."""
    if backend != "openvino":
        return backend_for(backend, threads=threads or cores()).load(model)
    hint = "LATENCY" if batch == 1 else "THROUGHPUT"
    runner = OpenVinoBackend(threads=threads, config={"PERFORMANCE_HINT": hint,
                                                      "INFERENCE_PRECISION_HINT": precision}).load(model)
    return _Streams(runner) if hint == "THROUGHPUT" else runner


class _Streams:
    """An OpenVINO THROUGHPUT model (a ``Runner``): ``run`` splits the batch into one slice per request
    (OpenVINO's optimal number; whole batch when the model's batch is static) and runs the
    slices in parallel (``AsyncInferQueue``), outputs concatenated in order."""

    backend: ClassVar[str] = "openvino"

    def __init__(self, runner: OpenVinoRunner):
        import openvino

        self.runner = runner
        self.requests = max(1, int(runner.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.queue = openvino.AsyncInferQueue(runner.compiled, self.requests)
        self.results: dict[int, list[np.ndarray]] = {}
        ports = runner.compiled.outputs
        self.queue.set_callback(lambda request, k: self.results.__setitem__(
            k, [np.array(request.get_tensor(port).data) for port in ports]))

    def get_inputs(self) -> list[TensorInfo]:
        return self.runner.get_inputs()

    def get_outputs(self) -> list[TensorInfo]:
        return self.runner.get_outputs()

    def run(self, feed: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        (name, batch), = feed.items()  # tune and bench feed the one image input
        static = ImageInput.of(self.runner).static_batch
        parts = 1 if static else min(self.requests, len(batch))
        slices = np.array_split(batch, parts)
        self.results.clear()
        for k, part in enumerate(slices):
            self.queue.start_async({self.runner.compiled.inputs[0]: np.ascontiguousarray(part)}, k)
        self.queue.wait_all()
        return [np.concatenate([self.results[k][i] for k in range(len(slices))])
                for i in range(len(self.runner.get_outputs()))]


@dataclass
class BatchTiming:
    batch: int
    rounds: int
    throughput: float  # images per second
    latency_ms: dict  # mean, p50, p90, p99 of one batch


@dataclass
class BenchResult:
    model: str
    mode: str  # "random" or "data"
    results: list[BatchTiming]
    skipped: list[str] = field(default_factory=list)
    environment: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"model": self.model, "mode": self.mode, "environment": self.environment, "skipped": self.skipped,
                "results": [r.__dict__ for r in self.results]}


def available_memory() -> int | None:
    """Bytes that this process can still get: the kernel's MemAvailable (free memory plus the page
    cache it can drop; ``os.sysconf``'s free pages where /proc is missing), within the cgroup's
    limit when there is one (a container's limit is what the OOM killer enforces)."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (OSError, ValueError, AttributeError):
            pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            found.append(max(int(limit) - used, 0))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def memory_needed(session: Runner, batch: int, data_images: int = 0,
                  factor: int = ACTIVATIONS_AT_LEAST, shapes: Shapes | None = None) -> tuple[int, int]:
    """(bytes, bytes per image) that one run at ``batch`` needs: each image's input and output
    bytes (an output with dynamic dims other than the batch counted as large as the input)
    times ``factor`` for the activations, plus ``data_images`` real samples held in memory."""
    image = ImageInput.of(session, shapes)
    input_bytes = int(np.prod(image.sample_shape)) * image.dtype.itemsize
    output_bytes = 0
    for out in session.get_outputs():
        dims = out.shape[1:]
        if all(isinstance(d, int) and d > 0 for d in dims):
            output_bytes += math.prod(d for d in dims if isinstance(d, int)) * numpy_dtype(out.type).itemsize
        else:
            output_bytes += input_bytes
    per_image = input_bytes + output_bytes
    return batch * per_image * factor + 2 * data_images * input_bytes, per_image


def _gb(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 2**10:.0f} KB"


def check_memory(session: Runner, batch_sizes: Sequence[int], data_images: Callable[[int], int],
                 notice: Callable[[str], None] = lambda m: None, shapes: Shapes | None = None) -> None:
    """Refuse a batch size that cannot fit in the memory available; a notice for one that may not."""
    available = available_memory()
    if available is None:
        return
    batch = max(batch_sizes)
    need, per_image = memory_needed(session, batch, data_images(batch), shapes=shapes)
    if need > available:
        raise InputError(f"batch {batch} needs at least {_gb(need)} of memory ({ACTIVATIONS_AT_LEAST}x the "
                         f"{_gb(per_image)} of each image's input and output, for ONNX Runtime's activations), "
                         f"more than the {_gb(available)} available; use a smaller batch size")
    likely, _ = memory_needed(session, batch, data_images(batch), ACTIVATIONS_REFERENCE, shapes)
    if likely > available:
        notice(f"warning: batch {batch} may need up to {_gb(likely)} of memory ({_gb(available)} available)")


def bench(model: str | os.PathLike, batch_sizes: Sequence[int] = (1, 16), rounds: int = 20, warmup: int = 3,
          data: str | os.PathLike | None = None, threads: int | None = None, provider: str = "cpu",
          seed: int = 0, notice: Callable[[str], None] = lambda m: None, backend: str = "ort",
          shapes: Shapes | None = None) -> BenchResult:
    """``shapes`` (``--input-shape``): the input's size on its dynamic axes but the batch."""
    if rounds < 1 or warmup < 0:
        raise InputError("rounds must be at least 1 and warm-up runs at least 0")
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError("batch sizes must be at least 1")
    samples = read_info(data) if data else None
    if provider == "cpu" and backend != "openvino":
        threads = threads or cores()  # as deployed: one intra-op thread per core (see the module doc)
    runtime = backend_for(backend, provider=provider, threads=threads)
    session = runtime.load(model)
    image = ImageInput.of(session, shapes)
    skipped = []
    if image.static_batch:
        others = [b for b in batch_sizes if b != image.static_batch]
        if others:
            skipped.append(f"static batch {image.static_batch}: batch sizes {', '.join(map(str, others))} not run")
        batch_sizes = [image.static_batch]
    if provider == "cpu":  # other providers' memory is the device's, and ORT reports running out of it
        check_memory(session, batch_sizes, lambda b: b * min(rounds, 4) if samples else 0, notice, shapes)
    rng = np.random.default_rng(seed)
    results = []
    for batch in batch_sizes:
        if samples:
            pool = [load_sample(samples[i % len(samples)]).astype(image.dtype) for i in range(batch * min(rounds, 4))]
            feeds = [np.stack(pool[k * batch:(k + 1) * batch]) for k in range(len(pool) // batch)]
        else:
            feeds = [image.random_batch(batch, rng)]
        for feed in feeds:
            if feed.shape[1:] != image.sample_shape:
                raise InputError(f"the data has shape {feed.shape[1:]}; the model takes {image.sample_shape}")
        if backend == "openvino" and batch > 1:  # the THROUGHPUT hint's streams (see the module doc)
            session = deployment_runner(backend, model, batch, threads)
        for k in range(warmup):
            session.run({image.name: feeds[k % len(feeds)]})
        times = []
        for k in range(rounds):
            start = time.perf_counter()
            session.run({image.name: feeds[k % len(feeds)]})
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        results.append(BatchTiming(batch=batch, rounds=rounds, throughput=batch * rounds / sum(times),
                                   latency_ms={"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
                                               "p90": float(np.percentile(ms, 90)),
                                               "p99": float(np.percentile(ms, 99))}))
    return BenchResult(model=str(model), mode="data" if samples else "random", results=results, skipped=skipped,
                       environment=runtime.environment())
