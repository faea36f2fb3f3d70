"""The pass services (``core.services.PassServices``) on ONNX Runtime, cgsurg's metrics and the
info-file format: what ``api`` and ``testing`` hand the pass manager."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from .check.metrics import measure
from .check.session import make_session, run_feed
from .core.services import Feed
from .stages.dataset import load_sample, read_info


class OrtServices:
    def samples(self, info: str, limit: int) -> list[np.ndarray]:
        return [load_sample(s) for s in read_info(info)[:limit]]

    def run(self, model: onnx.ModelProto, feeds: Sequence[Feed], optimize: bool = False) -> list[list[np.ndarray]]:
        session = make_session(model, optimize=optimize)
        return [run_feed(session, dict(feed)) for feed in feeds]

    def judged_cos(self, reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
        return measure("out", reference, outputs).judged_cos
