"""What tune found: each candidate with its scores and timings, the result, the Pareto front,
and the command line that rebuilds a candidate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..check.metrics import json_safe
from ..stages.evaluate import MeanMin

FP16_SIMULATED = ("accuracy predicted by the float16 simulator; speed: not measured here "
                  "(no float16 engine on this CPU)")


@dataclass
class Candidate:
    label: str
    backend: str
    pipeline: str | None  # None: the original model
    nncf: tuple[str, ...] | None = None  # then compiled to int8 by NNCF with these layers float
    nncf_options: dict = field(default_factory=dict)  # compile's int8_options
    precision: str = "f32"  # OpenVINO's INFERENCE_PRECISION_HINT
    bounded_by: str = ""  # a candidate at least as fast (its label): when it cannot win, neither can this
    model: str = ""
    build_s: float = 0.0
    eval_cos: MeanMin | None = None  # the judged cosine (per-pixel for images) on the evaluation set
    calib_cos: MeanMin | None = None  # on the calibration set
    psnr_db: float | None = None
    ssim: float | None = None
    img_per_s: dict[int, float] = field(default_factory=dict)
    vs_original: dict[int, float] = field(default_factory=dict)  # same backend's original
    vs_ort_fp32: dict[int, float] = field(default_factory=dict)
    probe_vs_ort_fp32: float = 0.0  # the quick batch-1 timing right after the build
    evaluated: str = ""  # "full", or how far the held-out evaluation went and why it stopped
    size_mb: float = 0.0
    meets: bool = False
    error: str = ""
    # how its accuracy was found when not by running it as deployed (``FP16_SIMULATED``): such a
    # candidate is judged, never timed, never the winner
    simulated: str = ""

    @property
    def speed(self) -> float:
        """The geometric mean of the speed-ups over ORT fp32 across batch sizes (over the
        backend's own original when ORT was not run); the quick batch-1 timing for a
        candidate not in the final timing."""
        values = [v for v in (self.vs_ort_fp32 or self.vs_original).values() if v > 0]
        return float(np.exp(np.mean(np.log(values)))) if values else self.probe_vs_ort_fp32

    @property
    def eval_mean(self) -> float:
        """The mean judged cosine on the evaluation set; NaN before it is judged."""
        return self.eval_cos.mean if self.eval_cos else float("nan")

    @property
    def timed(self) -> bool:
        """In the final, interleaved timing (else only the quick probe)."""
        return bool(self.img_per_s)


@dataclass
class TuneResult:
    candidates: list[Candidate]
    winner: Candidate | None
    min_cos: float
    environment: dict
    skipped: list[str]

    @property
    def note(self) -> str:
        """Said when the winner meets the bar but is no faster than the original."""
        if self.winner is None or self.winner.speed >= 1.0:
            return ""
        return (f"{self.winner.label} on {self.winner.backend} meets the bar but runs at {self.winner.speed:.2f}x "
                "the original: no candidate that meets the bar is faster here; keep the original")

    def as_dict(self) -> dict:
        winner = {"label": self.winner.label, "backend": self.winner.backend} if self.winner else None
        return json_safe({"min_cos": self.min_cos, "winner": winner, "note": self.note,
                          "environment": self.environment, "skipped": self.skipped,
                          "candidates": [{**asdict(c), "speed": c.speed} for c in self.candidates]})


def pareto(cands: Sequence[Candidate]) -> list[Candidate]:
    """Candidates no other beats on both speed and evaluation cosine."""
    scored = [c for c in cands if c.eval_cos and c.speed > 0]
    return [c for c in scored if not any(
        o.speed >= c.speed and o.eval_mean >= c.eval_mean and (o.speed > c.speed or o.eval_mean > c.eval_mean)
        for o in scored)]


def apply_line(c: Candidate, model: str | os.PathLike) -> str:
    if c.pipeline is None:
        return f"(the original model{', compiled by OpenVINO' if c.backend == 'openvino' else ''})"
    line = f"cgsurg apply {model} -o OUT.onnx --passes '{c.pipeline}'"
    if c.nncf is not None:
        auto = " --min-cos MIN_COS" if "auto" in c.nncf else ""
        options = f"   # Python API only: compile_model(..., int8_options={c.nncf_options})" \
            if c.nncf_options else ""
        return line + (f" && cgsurg compile OUT.onnx --target openvino -o OUT_ov --int8 --data CALIB.info "
                       f"--keep-float '{','.join(c.nncf)}'{auto}{options}")
    if c.backend == "openvino":
        return line + f"   # then run it on OpenVINO ({run_line(c, 'OUT.onnx')})"
    return line


def run_line(c: Candidate, path: str | os.PathLike) -> str:
    """How to run the written model at the precision it was judged at."""
    if c.backend != "openvino":
        return f"cgsurg infer {path} --data INFO -o OUT"
    if c.precision == "f32":
        return f"cgsurg infer {path} --backend openvino --data INFO -o OUT"
    # cgsurg's openvino backend pins f32; OpenVINO reads the hint from the caller, not the IR
    return (f"python -c \"import openvino as ov; m = ov.Core().compile_model('{path}', 'CPU', "
            f"{{'INFERENCE_PRECISION_HINT': '{c.precision}', 'PERFORMANCE_HINT': 'LATENCY'}})\"")
