"""How tune times: each runtime as deployed at each batch size (``stages.bench.deployment_runner``),
a quick batch-1 probe right after a candidate is built, and the final timing of the finalists,
interleaved round by round with the original, medians; the CPU and its ISA flags recorded with
every figure."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Collection, Sequence

import numpy as np

from ..check.cpu import cpu_name
from ..check.feeds import ImageInput, Shapes
from ..stages.bench import cores, deployment_runner
from ..stages.dataset import load_sample, read_info
from .candidates import cpu_flags
from .results import Candidate

# A pause before each timed run: the previous session's worker threads spin a while after their
# run (ORT's and OpenVINO's pools both do) and would steal the next one's cores.
SETTLE_S = 0.05
PROBE_RUNS = 3  # after one warm-up: enough to rank candidates, not to report them


def cpu_isa(given: Collection[str] | None = None) -> str:
    """The vector instructions that decide low-precision speed, by name."""
    flags = cpu_flags() if given is None else given
    names = [("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX512-VNNI"),
             ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"),
             ("amx_int8", "AMX-INT8")]
    found = [label for flag, label in names if flag in flags]
    return ", ".join(found) if found else "no AVX2"


def environment(threads: int | None) -> dict:
    """The machine and the runtimes behind the figures, each named once."""
    import onnxruntime

    cpu = cpu_name()
    env = {"cpu": cpu, "isa": cpu_isa(), "isa_flags": sorted(cpu_flags()), "cores": cores(),
           "threads": threads or cores(), "onnxruntime": onnxruntime.__version__}
    for name in ("openvino", "nncf"):
        try:
            env[name] = __import__(name).__version__.split("-")[0]
        except ImportError:
            pass
    return {**env, "python": platform.python_version()}


def feed_for(runner, evaluation, batch: int, shapes: Shapes | None = None) -> dict | None:
    """A batch of the evaluation samples for ``runner`` (None: its static batch differs);
    ``shapes``: ``--input-shape``, for a model with dynamic axes (see ``ImageInput.of``)."""
    image = ImageInput.of(runner, shapes)
    if image.static_batch not in (None, batch):
        return None
    samples = read_info(evaluation)
    pool = [load_sample(samples[i % len(samples)]).astype(image.dtype) for i in range(batch)]
    return {image.name: np.stack(pool)}


def probe(c: Candidate, evaluation, threads: int | None, shapes: Shapes | None = None) -> float:
    """Median seconds of a batch-1 run of ``c`` as deployed."""
    runner = deployment_runner(c.backend, c.model, 1, threads, c.precision)
    feed = feed_for(runner, evaluation, 1, shapes)
    if feed is None:
        return 0.0
    runner.run(feed)
    times = []
    for _ in range(PROBE_RUNS):
        time.sleep(SETTLE_S)
        start = time.perf_counter()
        runner.run(feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timed(tried: list[Candidate], batches: Sequence[int], rounds: int, evaluation, threads,
          progress: Callable[[str], None] = lambda m: None, finalists: Sequence[Candidate] | None = None,
          shapes: Shapes | None = None) -> tuple[list[Candidate], dict]:
    """Images per second at each batch size for ``finalists`` (default: every runnable
    candidate) and the originals: loaded as deployed at that batch, then the rounds
    interleaved (one run of each per round, so that load drifts hit all alike), medians."""
    pool = [c for c in (tried if finalists is None else finalists) if c.model and not c.error and not c.simulated]
    runnable = [c for c in tried if c.pipeline is None and c.model and not c.error] + \
        [c for c in pool if c.pipeline is not None]
    for batch in batches:
        progress(f"[tune] timing batch {batch}: {len(runnable)} candidates, interleaved")
        runners = {id(c): deployment_runner(c.backend, c.model, batch, threads, c.precision) for c in runnable}
        feeds = {key: feed for key, feed in ((k, feed_for(r, evaluation, batch, shapes)) for k, r in runners.items())
                 if feed is not None}
        times: dict[int, list[float]] = {key: [] for key in feeds}
        count = max(3, round(rounds / batch ** 0.5))  # a batch of 16 takes 16 times longer: fewer rounds
        warmup = 2 if batch < 8 else 1
        for r in range(count + warmup):
            for c in runnable:
                if id(c) not in feeds:
                    continue
                time.sleep(SETTLE_S)
                start = time.perf_counter()
                runners[id(c)].run(feeds[id(c)])
                if r >= warmup:
                    times[id(c)].append(time.perf_counter() - start)
        for c in runnable:
            if times.get(id(c)):
                c.img_per_s[batch] = batch / float(np.median(times[id(c)]))
        del runners
    for c in runnable:
        original = next((o for o in runnable if o.pipeline is None and o.backend == c.backend), None)
        ort_fp32 = next((o for o in runnable if o.pipeline is None and o.backend == "ort"), None)
        for batch, speed in c.img_per_s.items():
            if original and batch in original.img_per_s:
                c.vs_original[batch] = speed / original.img_per_s[batch]
            if ort_fp32 and batch in ort_fp32.img_per_s:
                c.vs_ort_fp32[batch] = speed / ort_fp32.img_per_s[batch]
    return tried, environment(threads)
