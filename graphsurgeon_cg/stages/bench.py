"""bench: throughput and latency per batch size, like the vendor tool's two modes.

Pure inference: random inputs of the model's shape and range (floats in [-1, 1], uint8
images over 0..255), ``warmup`` untimed runs, then ``rounds`` timed runs. Real data: batches
cut from an info file's samples, cycled. Only ``session.run`` is timed. A static-batch model
runs only its own batch size, and the result says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..check.feeds import ImageInput
from ..check.session import environment, make_session
from ..core.errors import InputError
from .dataset import load_sample, read_info


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


def bench(model: str | os.PathLike, batch_sizes: Sequence[int] = (1, 16), rounds: int = 20, warmup: int = 3,
          data: str | os.PathLike | None = None, threads: int | None = None, provider: str = "cpu",
          seed: int = 0) -> BenchResult:
    if rounds < 1 or warmup < 0:
        raise InputError("rounds must be at least 1 and warm-up runs at least 0")
    if not batch_sizes or min(batch_sizes) < 1:
        raise InputError("batch sizes must be at least 1")
    samples = read_info(data) if data else None
    session = make_session(model, optimize=True, provider=provider, threads=threads)
    image = ImageInput.of(session)
    skipped = []
    if image.static_batch:
        others = [b for b in batch_sizes if b != image.static_batch]
        if others:
            skipped.append(f"static batch {image.static_batch}: batch sizes {', '.join(map(str, others))} not run")
        batch_sizes = [image.static_batch]
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
        for k in range(warmup):
            session.run(None, {image.name: feeds[k % len(feeds)]})
        times = []
        for k in range(rounds):
            start = time.perf_counter()
            session.run(None, {image.name: feeds[k % len(feeds)]})
            times.append(time.perf_counter() - start)
        ms = np.array(times) * 1000
        results.append(BatchTiming(batch=batch, rounds=rounds, throughput=batch * rounds / sum(times),
                                   latency_ms={"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)),
                                               "p90": float(np.percentile(ms, 90)),
                                               "p99": float(np.percentile(ms, 99))}))
    return BenchResult(model=str(model), mode="data" if samples else "random", results=results, skipped=skipped,
                       environment=environment(provider, threads))
