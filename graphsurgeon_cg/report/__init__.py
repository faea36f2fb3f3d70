"""Layer 3: the per-pass accuracy report.

``schema``: what ``report.json`` holds, as typed records (``Report.load`` reads one back);
``instrument``: ``AccuracyReport``, the pass-manager instrument that measures each pass;
``verdicts``: gates and the baseline comparison; ``render``: ``report.md`` and ``report.html``.
The records load eagerly and cost no runtime import; the rest loads on first use.
"""

from __future__ import annotations

from typing import Any

from .schema import (
    SCHEMA,
    VERSION,
    Delta,
    Inputs,
    MetricSummary,
    PassReport,
    Report,
    SampleScore,
    StepVerdict,
    WorstLayer,
)

_LAZY = {"AccuracyReport": "instrument", "Gates": "verdicts", "gate_failure": "verdicts",
         "compare_baseline": "verdicts", "Pictures": "render", "markdown": "render", "html_page": "render"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'graphsurgeon_cg.report' has no attribute {name!r}")


__all__ = ["SCHEMA", "VERSION", "Delta", "Inputs", "MetricSummary", "PassReport", "Report", "SampleScore",
           "StepVerdict", "WorstLayer", *_LAZY]
