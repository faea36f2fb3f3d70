"""What tune tries: the candidate pipelines per backend, cheapest first, and the rule that the
calibration and evaluation sets are different images."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import InputError
from ..core.presets import EXACT_COMPILER
from ..stages.dataset import read_info
from .results import Candidate

EXACT = str(EXACT_COMPILER)  # exact up to float rounding


def candidates(min_cos: float, calib: str, backends: Sequence[str]) -> list[Candidate]:
    """What tune tries, cheapest first (the budget cuts the tail): the mixed-precision search,
    which quantises once per layer group it tries, comes last."""
    int8 = f"{EXACT},int8(data={calib},min_cos=0"
    found = []
    if "ort" in backends:
        found += [Candidate("original", "ort", None),
                  Candidate("exact", "ort", EXACT),
                  Candidate("int8 qdq percentile (ConvTranspose float)", "ort", f"{int8})"),
                  Candidate("int8 qdq percentile, all quantised", "ort", f"{int8},keep_first_last=false,keep_ops=[])"),
                  Candidate("int8 qdq minmax", "ort", f"{int8},method=minmax)"),
                  Candidate("int8 qoperator percentile", "ort", f"{int8},format=qoperator)")]
    if "openvino" in backends:
        found += [Candidate("original", "openvino", None), Candidate("exact", "openvino", EXACT),
                  Candidate("nncf int8 (first/last, ConvTranspose float)", "openvino", EXACT,
                            nncf=("first-last", "ConvTranspose")),
                  Candidate("nncf int8 (ConvTranspose float)", "openvino", EXACT, nncf=("ConvTranspose",)),
                  Candidate("nncf int8, all quantised", "openvino", EXACT, nncf=())]
    if "ort" in backends:
        found.append(Candidate("int8 mixed (auto)", "ort", f"{EXACT},int8(data={calib},keep_float=[auto],"
                                                           f"keep_first_last=false,keep_ops=[],min_cos={min_cos})"))
    return found


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
