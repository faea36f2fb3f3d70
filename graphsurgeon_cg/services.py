"""The pass services (``core.services.PassServices``) on ONNX Runtime, cgsurg's metrics and the
info-file format: what ``api`` and ``testing`` hand the pass manager."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from .check.feeds import random_feeds
from .check.fp16sim import run_simulated, tensor_losses
from .check.metrics import measure
from .check.session import make_session, run_feed, run_session
from .core.errors import InputError
from .core.services import Feed, TensorLoss
from .stages.dataset import load_sample, read_info


class OrtServices:
    def samples(self, info: str, limit: int) -> list[np.ndarray]:
        return [load_sample(s) for s in read_info(info)[:limit]]

    def run(self, model: onnx.ModelProto, feeds: Sequence[Feed], optimize: bool = False) -> list[list[np.ndarray]]:
        session = make_session(model, optimize=optimize)
        return [run_feed(session, dict(feed)) for feed in feeds]

    def judged_cos(self, reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
        return measure("out", reference, outputs).judged_cos

    def simulate_fp16(self, model: onnx.ModelProto, feeds: Sequence[Feed]) -> list[list[np.ndarray]]:
        return [list(out.values()) for out in run_simulated(model, [dict(f) for f in feeds])]

    def fp16_losses(self, reference: onnx.ModelProto, half: onnx.ModelProto,
                    feeds: Sequence[Feed]) -> list[TensorLoss]:
        return tensor_losses(reference, half, [dict(f) for f in feeds])

    def differs(self, original: onnx.ModelProto, changed: onnx.ModelProto, max_abs: float) -> str | None:
        before = make_session(original)
        feeds = random_feeds(before, seed=0, samples=2)
        expected = run_session(before, feeds)
        try:
            got = run_session(make_session(changed), feeds)
        except InputError as exc:
            return f"the model into one ONNX Runtime cannot run ({exc})"
        for want, have in zip(expected, got):
            for name, e in want.items():
                a, e = np.asarray(have[name]), np.asarray(e)
                if a.shape != e.shape:
                    return f"the shape of output '{name}': {list(e.shape)} -> {list(a.shape)}"
                worst = _max_difference(a, e)
                if not worst <= max_abs:  # NaN fails too
                    return f"output '{name}' by up to {worst:.3g}"
        return None


def _max_difference(a: np.ndarray, e: np.ndarray) -> float:
    """The largest |a - e|; equal values (NaN with NaN, inf with inf) count 0, NaN against a
    number gives NaN; outputs that are not numbers are equal (0) or not (inf)."""
    if a.dtype.kind in "OSUV" or e.dtype.kind in "OSUV":
        return 0.0 if np.array_equal(a, e) else float("inf")
    af, ef = a.astype(np.float64), e.astype(np.float64)
    same = (af == ef) | (np.isnan(af) & np.isnan(ef))
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity: counted 0 above
        diff = np.where(same, 0.0, np.abs(af - ef))
    return float(diff.max()) if diff.size else 0.0
