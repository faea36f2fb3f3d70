"""What a pass may ask of the run beyond the graph: samples, a runtime and the vendor metric.

Passes live above core and below everything else: a pass that calibrates (int8) or searches
(mixed precision) needs samples and a runtime, but may not import the checker or the stages.
The caller that builds the pass manager (``graphsurgeon_cg.api``, ``graphsurgeon_cg.testing``)
hands it an implementation (``graphsurgeon_cg.check.services.OrtServices``); a pass reaches
it through ``PassContext.services``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import onnx

Feed = Mapping[str, np.ndarray]


@dataclass
class TensorLoss:
    """What float16 did to one tensor over the samples: ``overflow`` when its float32 value
    passes float16's 65,504 (largest |value| in ``peak``), ``cos`` of its simulated against its float32
    value, ``error`` the relative L2 error and ``added`` the part of it its node adds (its error
    less its inputs' worst: how much keeping that node alone in float32 could win)."""

    tensor: str
    node: str
    op: str
    peak: float
    cos: float
    error: float
    added: float = 0.0

    @property
    def overflow(self) -> bool:
        return self.peak > 65504.0  # float16's largest finite value


class PassServices(Protocol):
    def samples(self, info: str, limit: int) -> list[np.ndarray]:
        """The first ``limit`` samples of an info file (``cgsurg prep``), each without a batch axis."""
        ...

    def run(self, model: onnx.ModelProto, feeds: Sequence[Feed], optimize: bool = False) -> list[list[np.ndarray]]:
        """Every output of ``model`` for each feed (``optimize``: the runtime's graph optimisations
        on, i.e. the kernels a deployed model runs)."""
        ...

    def judged_cos(self, reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> float:
        """The vendor metric of one output over samples (each array with its batch axis): mean
        per-pixel cosine for images, flat cosine otherwise."""
        ...

    def simulate_fp16(self, model: onnx.ModelProto, feeds: Sequence[Feed]) -> list[list[np.ndarray]]:
        """Every output of ``model`` (one with float16 tensors, e.g. ``core.float16.as_float16``'s)
        for each feed, computed as a float16 engine computes it: each float16 tensor rounded to
        float16 after its op (overflow to inf), float32 accumulation inside each op."""
        ...

    def fp16_losses(self, reference: onnx.ModelProto, half: onnx.ModelProto,
                    feeds: Sequence[Feed]) -> list[TensorLoss]:
        """What the simulated float16 computation of ``half`` does to each of its float16 tensors
        against their float32 values in ``reference`` (the model ``half`` was converted from)."""
        ...

    def differs(self, original: onnx.ModelProto, changed: onnx.ModelProto, max_abs: float) -> str | None:
        """Why ``changed`` does not compute what ``original`` does on seeded random inputs
        ("output 'y' by up to 0.3", "the shape of output 'y': [1, 2] -> [2, 2]"), or None when
        every output agrees within ``max_abs``. ``InputError`` when the original cannot be fed
        random inputs (dynamic axes other than the batch); a ``changed`` the runtime cannot run
        is a difference."""
        ...
