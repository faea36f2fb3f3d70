"""What tune tries: the candidate pipelines per backend, cheapest first, and the rule that the
calibration and evaluation sets are different images."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from pathlib import Path

from ..check.cpu import cpu_flags as all_cpu_flags
from ..core.errors import InputError
from ..core.pipeline import PassSpec
from ..core.presets import EXACT_COMPILER
from ..stages.dataset import read_info
from .results import FP16_SIMULATED, Candidate

# The pipeline of the "exact" candidates (exact up to float rounding). Not ``core.bounds.EXACT``,
# which is a bound.
EXACT_PIPELINE = str(EXACT_COMPILER)


# The flags that decide which lower precision runs fast (``/proc/cpuinfo`` spelling).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
NO_AVX2 = "no AVX2: int8 kernels would run on SSE, slower than float"
NO_BF16 = "no AVX512_BF16 or AMX-BF16: OpenVINO would emulate bf16, slower than f32"
HAS_VNNI = "VNNI multiplies u8 x s8 without saturating: 7-bit weights would only cost accuracy"


def cpu_flags() -> frozenset[str]:
    """The ISA flags of this CPU among ``ISA_FLAGS`` (empty where /proc/cpuinfo is missing)."""
    return all_cpu_flags() & frozenset(ISA_FLAGS)


def candidates(min_cos: float, calib: str, backends: Sequence[str]) -> list[Candidate]:
    """What tune tries on this CPU (see ``plan``)."""
    return plan(min_cos, calib, backends, cpu_flags())[0]


def plan(min_cos: float, calib: str, backends: Sequence[str],
         flags: Collection[str]) -> tuple[list[Candidate], list[str]]:
    """(what tune tries on a CPU with ``flags``, in order; what it skips, each with the reason).
    Cheap first, interleaving the backends, so that a budget cut takes the costly tail: the
    searches (ORT's mixed precision, one quantisation per layer group; NNCF's accuracy control,
    one validation per layer) come last, each bounded by the all-int8 candidate of its runtime
    (it cannot be faster: when that one cannot beat the current winner, it is not built)."""
    ort, ov = "ort" in backends, "openvino" in backends
    avx2, vnni = "avx2" in flags, bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))
    bf16 = bool({"avx512_bf16", "amx_bf16"} & set(flags))
    def int8(**options: object) -> str:
        """The exact pipeline, then int8 calibrated on ``calib`` with ``options``."""
        return str(EXACT_COMPILER.then(PassSpec.from_values("int8", {"data": calib, **options})))

    found: list[Candidate] = []
    skipped: list[str] = []
    if ort:
        # A float16 engine's accuracy (Ascend's default build, TensorRT --fp16), predicted by the
        # simulator whatever this CPU's ISA: ORT here runs float16 through float32, so no speed.
        fp16 = str(EXACT_COMPILER.then(PassSpec.from_values("fp16", {})))
        found += [Candidate("original", "ort", None), Candidate("exact", "ort", EXACT_PIPELINE),
                  Candidate("float16 build (simulated)", "ort", fp16, simulated=FP16_SIMULATED)]
    if ov:
        found += [Candidate("original", "openvino", None), Candidate("exact", "openvino", EXACT_PIPELINE)]
        if bf16:
            found.append(Candidate("bf16", "openvino", EXACT_PIPELINE, precision="bf16"))
        else:
            skipped.append(f"bf16 on openvino: {NO_BF16}")
    cheap_ort = [Candidate("int8 qdq percentile (ConvTranspose float)", "ort", int8(min_cos=0)),
                 Candidate("int8 qdq percentile, all quantised", "ort",
                           int8(min_cos=0, keep_first_last=False, keep_ops=())),
                 Candidate("int8 qoperator percentile", "ort", int8(min_cos=0, format="qoperator")),
                 Candidate("int8 qdq minmax", "ort", int8(min_cos=0, method="minmax"))]
    if avx2 and not vnni:
        cheap_ort.insert(1, Candidate("int8 qdq reduce-range", "ort", int8(min_cos=0, reduce_range=True)))
    elif ort and avx2:
        skipped.append(f"int8 qdq reduce-range on ort: {HAS_VNNI}")
    cheap_ov = [Candidate("nncf int8 (ConvTranspose float)", "openvino", EXACT_PIPELINE, nncf=("ConvTranspose",)),
                Candidate("nncf int8, all quantised", "openvino", EXACT_PIPELINE, nncf=()),
                Candidate("nncf int8 (first/last, ConvTranspose float)", "openvino", EXACT_PIPELINE,
                          nncf=("first-last", "ConvTranspose"))]
    if bf16:  # the layers NNCF leaves float run in bf16: a mix of int8 and bf16
        cheap_ov.insert(1, Candidate("nncf int8 + bf16 (ConvTranspose bf16)", "openvino", EXACT_PIPELINE,
                                     nncf=("ConvTranspose",), precision="bf16"))
    searches_ov = [Candidate("nncf int8 accuracy control (sensitivity)", "openvino", EXACT_PIPELINE, nncf=("auto",),
                             bounded_by="nncf int8, all quantised"),
                   Candidate("nncf int8 (ConvTranspose float), full bias correction + channel alignment",
                             "openvino", EXACT_PIPELINE, nncf=("ConvTranspose",),
                             nncf_options={"fast_bias_correction": False, "channel_alignment": True},
                             bounded_by="nncf int8, all quantised")]
    searches_ort = [Candidate("int8 mixed (auto)", "ort", int8(keep_float=("auto",), keep_first_last=False,
                                                              keep_ops=(), min_cos=min_cos),
                              bounded_by="int8 qdq percentile, all quantised")]
    if not avx2:
        skipped += [f"{c.label} on {c.backend}: {NO_AVX2}" for c in
                    (cheap_ort + searches_ort if ort else []) + (cheap_ov + searches_ov if ov else [])]
        return found, skipped
    for k in range(max(len(cheap_ort), len(cheap_ov))):
        found += ([cheap_ort[k]] if ort and k < len(cheap_ort) else []) + \
            ([cheap_ov[k]] if ov and k < len(cheap_ov) else [])
    return found + (searches_ov if ov else []) + (searches_ort if ort else []), skipped


def check_disjoint(calib: str | os.PathLike, evaluation: str | os.PathLike) -> None:
    """Calibration and evaluation samples must be different files (a bar judged on the images
    the quantiser was calibrated on flatters it)."""
    def files(info) -> dict[str, str]:
        found = {}
        for s in read_info(info):
            try:
                found[str(Path(s.path).resolve())] = s.stem
            except OSError:
                found[str(s.path)] = s.stem
        return found

    shared = sorted(set(files(calib)) & set(files(evaluation)))
    if shared:
        raise InputError(f"the calibration and evaluation sets share {len(shared)} sample(s) "
                         f"(e.g. {shared[0]}); tune judges the bar on images it did not calibrate on")
