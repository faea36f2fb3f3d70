"""What a pipeline run hands back: one record per pass and the result of the whole run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from .bounds import Bound


@dataclass
class PassRecord:
    name: str
    spec: str
    exact: bool
    rewrites: int
    reasons: list[str]
    modified: bool
    seconds: float
    verify_seconds: float
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    check: Any = None  # set by the numeric checker (a check.metrics.Comparison) with check_each

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["check"] = self.check.as_dict() if self.check is not None else None
        return d


@dataclass
class PipelineResult:
    model: onnx.ModelProto
    pipeline: str
    records: list[PassRecord]
    bound: Bound
    check: Any = None  # set by the numeric checker: the comparison of the result with the original
    report_dir: Path | None = None
    extras: dict = field(default_factory=dict)  # what other instruments want to hand back

    @property
    def rewrites(self) -> int:
        return sum(r.rewrites for r in self.records)

    def as_dict(self) -> dict:
        return {"pipeline": self.pipeline, "bound": self.bound.describe(),
                "passes": [r.as_dict() for r in self.records],
                "check": self.check.as_dict() if self.check is not None else None}
