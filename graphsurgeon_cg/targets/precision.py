"""The precision a compiler computes in, and the accuracy predicted for it before the device.

Each target declares its default precision and the options that change it (facts and sources
in ../shared/notes/TARGETS.md, "Precision the compiler chooses"): Ascend ATC computes in
float16 by default (``--precision_mode=force_fp16``); TensorRT in float32 unless built with
``--fp16`` (or ``--best``), so its prediction is for ``--fp16`` only when asked
(``--precision fp16``); OpenVINO's CPU plugin in float32, or bfloat16 by default on CPUs with
native bf16 (avx512_bf16, AMX), read here from /proc/cpuinfo.

``predict`` runs the model as that precision computes it (``check.fp16sim``: every tensor
rounded to float16 or bfloat16 after its op, float32 accumulation) on the samples, scores the
output against float32 (mean and worst per-pixel cosine, PSNR), names the tensors that
overflow or lose most, and gives the nodes to keep in float32 in the form the compiler takes:
ATC's ``--keep_dtype`` file (one node name a line), TensorRT's ``--layerPrecisions`` (with
``--precisionConstraints=obey``; onnx-tensorrt names layers after the ONNX nodes), or
cgsurg's ``fp16(keep=[...])`` / ``fp16(auto=true)``. It is printed, not written to a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from ..check.cpu import cpu_flags
from ..check.fp16sim import run_simulated, tensor_losses
from ..check.metrics import pixel_cosine, psnr
from ..check.session import make_session, run_session
from ..core.errors import InputError
from ..core.float16 import as_float16
from ..core.services import TensorLoss

FP32, FP16, BF16 = "fp32", "fp16", "bf16"


@dataclass(frozen=True)
class Precision:
    """What a compiler computes in (fp32, fp16 or bf16) and the option that makes it so."""

    name: str
    how: str


@dataclass
class Prediction:
    target: str
    precision: Precision
    inputs: str
    cos_mean: float | None = None
    cos_min: float | None = None
    psnr_mean: float | None = None
    psnr_min: float | None = None
    worst: list[TensorLoss] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    keep_form: str = ""
    bar: float = 0.99

    @property
    def meets(self) -> bool:
        return self.cos_mean is not None and self.cos_mean >= self.bar

    def as_dict(self) -> dict:
        return {"target": self.target, "precision": self.precision.name, "how": self.precision.how,
                "inputs": self.inputs, "cos_mean": self.cos_mean, "cos_min": self.cos_min,
                "psnr_mean": self.psnr_mean, "psnr_min": self.psnr_min, "bar": self.bar,
                "worst": [{"tensor": t.tensor, "node": t.node, "op": t.op, "peak": t.peak, "cos": t.cos,
                           "overflow": t.overflow, "added": t.added} for t in self.worst],
                "keep_float32": self.keep, "keep_form": self.keep_form}


def cpu_has_bf16() -> bool:
    """Native bfloat16 on this CPU (avx512_bf16 or AMX): where OpenVINO may pick bf16 by default."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def keep_form(target: str, nodes: Sequence[str]) -> str:
    """The keep-in-float32 list as the compiler takes it."""
    if not nodes:
        return ""
    if target == "ascend":
        return ("atc --keep_dtype=FILE, FILE holding one node a line:\n" + "\n".join(nodes))
    if target == "tensorrt":
        layers = ",".join(f"{n}:fp32" for n in nodes)
        return f"trtexec --fp16 --precisionConstraints=obey --layerPrecisions={layers}"
    return f"cgsurg apply --passes 'fp16(keep=[{','.join(nodes)}])' (or fp16(auto=true) with --data)"


def predict(model: onnx.ModelProto, target, precision: Precision, feeds: Sequence[dict], inputs: str,
            worst: int = 5) -> Prediction:
    """The compiled model's accuracy at ``precision`` on ``feeds``, by simulation."""
    result = Prediction(str(target), precision, inputs, bar=target.min_cos)
    if precision.name == FP32:
        return result
    rounding = "bfloat16" if precision.name == BF16 else "float16"
    half = as_float16(model)
    reference = run_session(make_session(model), list(feeds))
    simulated = run_simulated(half, feeds, rounding)
    name = next(iter(reference[0]))
    cosines, psnrs = [], []
    for ref, new in zip(reference, simulated):
        r, n = np.asarray(ref[name], np.float64), np.asarray(new[name], np.float64)
        if not np.isfinite(n).all():
            cosines.append(float("nan"))
            psnrs.append(float("nan"))
            continue
        cos = pixel_cosine(r, n)
        if cos is None:
            cos = float(r.ravel() @ n.ravel() / (np.linalg.norm(r) * np.linalg.norm(n) or 1.0))
        cosines.append(cos)
        p = psnr(r[0], n[0])
        psnrs.append(float("inf") if p is None else p)
    result.cos_mean, result.cos_min = float(np.mean(cosines)), float(np.min(cosines))
    result.psnr_mean, result.psnr_min = float(np.mean(psnrs)), float(np.min(psnrs))
    losses = tensor_losses(model, half, feeds, rounding)
    over = [t for t in losses if t.overflow]
    lossy = sorted((t for t in losses if not t.overflow and t.added > 0), key=lambda t: -t.added)
    result.worst = (over + lossy)[:max(worst, len(over))]
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for i in node.input:
            readers.setdefault(i, []).append(node.name)
    keep = [n for t in over for n in [t.node, *readers.get(t.tensor, [])]]
    if not over and not result.meets:  # an overflow explains the miss: its region first
        keep += [t.node for t in result.worst]
    result.keep = list(dict.fromkeys(n for n in keep if n))  # an unnamed node cannot be listed
    result.keep_form = keep_form(target.name, result.keep)
    return result


def choose(default: Precision, options: dict[str, Precision], asked: str | None) -> Precision:
    """The precision ``asked`` for (an option value of the compiler, or fp32/fp16/bf16), else
    the compiler's default."""
    if not asked:
        return default
    if asked in options:
        return options[asked]
    if asked in (FP32, FP16, BF16):
        return Precision(asked, f"{asked} asked for (--precision {asked})")
    raise InputError(f"unknown precision '{asked}': expected fp32, fp16, bf16 or one of {', '.join(options)}")
