"""What a pipeline run hands back: one record per pass and the result of the whole run.

Instruments of higher layers hand back typed results too (the report, a target's lint, the
compile step). The core may not import them, so it names what it promises of each as a
protocol; the objects are ``report.Report``, ``targets.LintResult`` and ``targets.CompileStep``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import onnx

from .bounds import Bound


class Serialisable(Protocol):
    def as_dict(self) -> dict: ...


class ReportOutcome(Serialisable, Protocol):
    """The per-pass accuracy report written by ``report.AccuracyReport`` (a ``report.Report``)."""

    @property
    def passes(self) -> Sequence[Serialisable]: ...  # one ``report.PassReport`` per pass

    @property
    def error(self) -> str | None: ...


class LintOutcome(Serialisable, Protocol):
    """A compiler target's findings on the result (a ``targets.LintResult``)."""

    @property
    def target(self) -> str: ...  # "name:version"

    @property
    def errors(self) -> Sequence[object]: ...

    @property
    def warnings(self) -> Sequence[object]: ...


class CommandLine(Protocol):
    @property
    def tool(self) -> str: ...

    @property
    def line(self) -> str: ...  # as a shell runs it


class CompileOutcome(Serialisable, Protocol):
    """The compile command written beside the output (a ``targets.CompileStep``)."""

    @property
    def command(self) -> CommandLine | None: ...  # None: the runtime loads the model itself

    @property
    def files(self) -> Mapping[Path, str]: ...  # written beside the output: path -> text


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
    report: ReportOutcome | None = None  # set by the report instrument
    lint: LintOutcome | None = None  # set by a target's lint instrument
    compile: CompileOutcome | None = None  # set by api.apply with a target, once the command is written
    extras: dict = field(default_factory=dict)  # what instruments outside cgsurg want to hand back

    @property
    def rewrites(self) -> int:
        return sum(r.rewrites for r in self.records)

    def as_dict(self) -> dict:
        return {"pipeline": self.pipeline, "bound": self.bound.describe(),
                "passes": [r.as_dict() for r in self.records],
                "check": self.check.as_dict() if self.check is not None else None}
