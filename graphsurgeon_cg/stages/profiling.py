"""profile: where the time goes, per operator type and per node, from ONNX Runtime's profiler
or OpenVINO's per-layer counters (``PERF_COUNT``).

The analogue of the vendor profiler that found the slow operators. One warm-up run is
excluded; kernel times of the following ``rounds`` runs are summed per op type (count of
nodes, total and per-run milliseconds, share of all kernel time) and per node (top 10).
ORT's nodes are those of its optimised graph; OpenVINO's are the layers of the compiled model
(its own op names: Convolution, MVN, ...; layers fused into others do not appear).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..check.backends import OpenVinoBackend, OrtBackend, backend_for
from ..check.feeds import ImageInput, Shapes
from ..core.errors import InputError

TOP_NODES = 10


@dataclass
class ProfileResult:
    model: str
    batch: int
    rounds: int
    ops: list[dict]  # op_type, nodes, total_ms, per_run_ms, share
    top_nodes: list[dict]  # node, op_type, total_ms, per_run_ms, share
    environment: dict

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def profile(model: str | os.PathLike, batch: int = 1, rounds: int = 5, threads: int | None = None,
            provider: str = "cpu", seed: int = 0, backend: str = "ort", shapes: Shapes | None = None) -> ProfileResult:
    """``shapes`` (``--input-shape``): the input's size on its dynamic axes but the batch."""
    if batch < 1 or rounds < 1:
        raise InputError("the batch size and rounds must be at least 1")
    runtime = backend_for(backend, provider=provider, threads=threads)
    if runtime.name == "openvino":
        return _profile_openvino(model, batch, rounds, threads, seed, shapes)
    with tempfile.TemporaryDirectory() as tmp:
        runner = OrtBackend(provider=provider, threads=threads, profile_prefix=os.path.join(tmp, "cgsurg")).load(model)
        image = ImageInput.of(runner, shapes)
        if image.static_batch:
            batch = image.static_batch
        feed = {image.name: image.random_batch(batch, np.random.default_rng(seed))}
        for _ in range(rounds + 1):
            runner.run(feed)
        with open(runner.session.end_profiling()) as f:
            events = json.load(f)
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    after_warmup = runs[1]["ts"] if len(runs) > 1 else 0
    per_op: defaultdict[str, float] = defaultdict(float)
    per_node: defaultdict[str, float] = defaultdict(float)
    node_op: dict[str, str] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < after_warmup:
            continue
        node = e["name"][: -len("_kernel_time")]
        op = e.get("args", {}).get("op_name", "?")
        per_op[op] += e["dur"] / 1000.0
        per_node[node] += e["dur"] / 1000.0
        node_op[node] = op
    return _result(model, batch, rounds, per_op, per_node, node_op, runtime.environment())


def _profile_openvino(model: str | os.PathLike, batch: int, rounds: int, threads: int | None,
                      seed: int, shapes: Shapes | None = None) -> ProfileResult:
    """OpenVINO's per-layer counters, read after each run (they describe the last one)."""
    runtime = OpenVinoBackend(threads=threads, profiling=True)
    runner = runtime.load(model)
    image = ImageInput.of(runner, shapes)
    if image.static_batch:
        batch = image.static_batch
    feed = {image.name: image.random_batch(batch, np.random.default_rng(seed))}
    runner.run(feed)  # warm-up
    per_op: defaultdict[str, float] = defaultdict(float)
    per_node: defaultdict[str, float] = defaultdict(float)
    node_op: dict[str, str] = {}
    for _ in range(rounds):
        runner.run(feed)
        for node, op, ms in runner.layer_times():
            per_op[op] += ms
            per_node[node] += ms
            node_op[node] = op
    return _result(model, batch, rounds, per_op, per_node, node_op, runtime.environment())


def _result(model: str | os.PathLike, batch: int, rounds: int, per_op: dict[str, float], per_node: dict[str, float],
            node_op: dict[str, str], environment: dict) -> ProfileResult:
    total = sum(per_op.values()) or 1.0
    nodes_per_op: defaultdict[str, int] = defaultdict(int)
    for op in node_op.values():
        nodes_per_op[op] += 1
    ops = [{"op_type": op, "nodes": nodes_per_op[op], "total_ms": ms, "per_run_ms": ms / rounds, "share": ms / total}
           for op, ms in sorted(per_op.items(), key=lambda kv: -kv[1])]
    top = [{"node": n, "op_type": node_op[n], "total_ms": ms, "per_run_ms": ms / rounds, "share": ms / total}
           for n, ms in sorted(per_node.items(), key=lambda kv: -kv[1])[:TOP_NODES]]
    return ProfileResult(model=str(model), batch=batch, rounds=rounds, ops=ops, top_nodes=top,
                         environment=environment)
