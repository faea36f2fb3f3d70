"""The report's verdicts: gates on the judged cosine and PSNR, and the comparison with a baseline
report of the same pipeline. They read the typed records (``schema``) and measure nothing."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from ..check.metrics import meets, psnr_text
from ..core.errors import InputError
from .schema import PassReport, Report

BASELINE_COSINES = ("pixel_cos_mean", "pixel_cos_min", "cos_mean")  # MetricSummary fields compared


@dataclass
class Gates:
    min_cos: float | None = None  # on the judged cosine (per-pixel for images, flat otherwise)
    min_psnr: float | None = None


def gate_failure(passes: Sequence[PassReport], gates: Gates) -> str | None:
    """The first pass after which a metric falls below its bar, as an error message (NaN never
    passes; outputs within atol/rtol of the original pass the cosine gate, whose cosine is noise)."""
    for entry in passes:
        m = entry.metrics
        if gates.min_cos is not None and not m.close and not meets(m.judged_mean, gates.min_cos):
            return (f"accuracy gate: after pass '{entry.spec}' the mean {m.judged_by} is "
                    f"{num(m.judged_mean)} < {gates.min_cos}")
        if gates.min_psnr is not None and m.psnr_db_mean is not None and not meets(m.psnr_db_mean, gates.min_psnr):
            return (f"accuracy gate: after pass '{entry.spec}' the mean PSNR is "
                    f"{num(m.psnr_db_mean, 2)} dB < {gates.min_psnr}")
    return None


def load_baseline(path: str | os.PathLike) -> Report:
    try:
        return Report.load(path)
    except InputError as exc:
        raise InputError(f"baseline: {exc}") from None


def compare_baseline(passes: Sequence[PassReport], baseline: Report, where: str | os.PathLike,
                     cos_tol: float = 1e-4, psnr_tol: float = 0.5) -> list[str]:
    """Flag each pass whose metrics got worse than in ``baseline`` (read from ``where``), an
    earlier report of the same passes in the same order; their options may differ (that is what
    one tunes). Sets each pass's ``regressions`` and ``baseline_spec``; returns one line per
    flagged pass."""
    old_names = [e.name for e in baseline.passes]
    if old_names != [e.name for e in passes]:
        raise InputError(f"baseline {where} is for passes {','.join(old_names)}, not this pipeline's")
    flagged = []
    for entry, before in zip(passes, baseline.passes):
        entry.baseline_spec = before.spec
        new_m, old_m = entry.metrics, before.metrics
        problems = []
        for key in BASELINE_COSINES:
            old, new = getattr(old_m, key), getattr(new_m, key)
            if old is not None and not meets(new, old - cos_tol):
                problems.append(f"{key} {old:.6f} -> {num(new)}")
        old_psnr, new_psnr = old_m.psnr_db_mean, new_m.psnr_db_mean
        if new_psnr is not None and (old_psnr is None or new_psnr < old_psnr - psnr_tol):
            problems.append(f"psnr_db_mean {psnr_text(old_psnr)} -> {new_psnr:.2f}")
        entry.regressions = problems
        if problems:
            flagged.append(f"{entry.spec}: {'; '.join(problems)}")
    return flagged


def num(value: float | None, digits: int = 6, kind: str = "f") -> str:
    """A metric for a message or a table: n/a when undefined (None here is never 'identical')."""
    if value is None:
        return "n/a"
    return f"{value:.{digits}{kind}}"
