"""What a compiler target is: findings, rules, the ``Target`` base class and its registry.

A target names a compiler (``ascend``, ``tensorrt``, ...) and the releases it knows
(``ascend:cann5``); for one release it gives the rules a model must pass, the pipeline that
makes a model pass them (exact by default, a lossy variant on request) and the command line
that compiles the result. Targets are found like passes: ``@register_target``, the
entry-point group ``cgsurg.targets``, or a plugin file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..core.errors import CgsurgError, InputError
from ..core.pipeline import Pipeline
from ..core.presets import FOLD, VENDOR_PADS, ZERO_PADS
from ..core.registry import Registry

if TYPE_CHECKING:
    from .commands import Command, CompileSettings, ModelIO
    from .graph import LintGraph

ERROR, WARNING = "error", "warning"
ENTRY_POINT_GROUP = "cgsurg.targets"


@dataclass(frozen=True)
class Finding:
    """One thing the compiler will refuse (error) or accept slowly or with other numbers (warning)."""

    rule: str
    severity: str
    message: str
    node: str = ""  # "" when the finding is about the model as a whole
    op: str = ""
    fix: str | None = None  # the pass (pipeline text) that removes it, when there is one

    def as_dict(self) -> dict:
        return asdict(self)


class Rule:
    """Inspects a model and yields findings. ``id`` is stable (tests, ``--json``, grouping);
    ``summary`` says in one line what is checked, with the facts this instance was built with."""

    id: ClassVar[str] = ""
    summary: str = ""

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, severity: str, message: str, node=None, fix: str | None = None) -> Finding:
        name, op = (node.name, node.op_type) if node is not None else ("", "")
        return Finding(self.id, severity, message, name, op, fix)


@dataclass
class LintResult:
    target: str  # "name:version"
    findings: list[Finding]
    prediction: Any = None  # targets.precision.Prediction when asked for (lint --data)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def exit_code(self) -> int:
        """0 clean, 4 warnings only, 5 errors (the ``cgsurg lint`` exit codes)."""
        return 5 if self.errors else 4 if self.findings else 0

    def by_rule(self) -> dict[tuple[str, str], list[Finding]]:
        """Findings grouped by (rule, severity), errors first, in order of first appearance."""
        groups: dict[tuple[str, str], list[Finding]] = {}
        for f in sorted(self.findings, key=lambda f: f.severity != ERROR):
            groups.setdefault((f.rule, f.severity), []).append(f)
        return groups

    def as_dict(self) -> dict:
        return {"target": self.target, "errors": len(self.errors), "warnings": len(self.warnings),
                "exit_code": self.exit_code, "findings": [f.as_dict() for f in self.findings],
                **({"prediction": self.prediction.as_dict()} if self.prediction is not None else {})}


class TargetCheckFailed(CgsurgError):
    """The model still has errors for the target after its pipeline (exit 3, like a failed check)."""

    exit_code = 3

    def __init__(self, lint: LintResult):
        groups = ", ".join(f"{rule} ({len(fs)})" for (rule, sev), fs in lint.by_rule().items() if sev == ERROR)
        super().__init__(f"the result still has {len(lint.errors)} error(s) for {lint.target}: {groups}")
        self.lint = lint


class OpsetRule(Protocol):
    """What the default preset asks of a target's opset rule (``rules.OpsetRange``)."""

    @property
    def preset_pass(self) -> str: ...


class Target:
    """A compiler. Subclasses set the class attributes and build rules, preset and command for
    ``self.version`` (one of ``versions``; the default when none is asked for)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    versions: ClassVar[dict[str, str]]  # version -> the release it stands for
    default_version: ClassVar[str]
    tool: ClassVar[str | None] = None  # the compiler's executable; None: no compile step
    # The accuracy bar a result must reach against the original: the vendors' (Ascend's model
    # conversion guide) mean per-pixel cosine of 0.99. ``apply --target`` judges by it.
    min_cos: ClassVar[float] = 0.99

    def __init__(self, version: str | None = None):
        version = version or self.default_version
        if version not in self.versions:
            raise InputError(f"unknown version '{version}' of target '{self.name}'; "
                             f"known: {', '.join(self.versions)}")
        self.version = version

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def precision(self, asked: str | None = None):
        """What the compiled model computes in (``targets.precision.Precision``): the compiler's
        default, or what ``asked`` (one of its precision options, or fp32/fp16/bf16) makes it."""
        from .precision import FP32, Precision, choose

        return choose(Precision(FP32, "float32 (the runtime's default)"), {}, asked)

    # What the preset runs after ``FOLD`` and the opset pass (``preset``): exact, and lossy.
    exact_rewrites: ClassVar[Pipeline] = ZERO_PADS
    lossy_rewrites: ClassVar[Pipeline] = VENDOR_PADS

    def _opsets(self) -> OpsetRule:
        """The opset rule, whose ``preset_pass`` brings a model into the range it accepts."""
        raise NotImplementedError

    def rewrites(self, lossy: bool = False) -> Pipeline:
        return self.lossy_rewrites if lossy else self.exact_rewrites

    def preset(self, lossy: bool = False) -> Pipeline | str:
        """The pipeline that makes a model pass the rules: exact passes only unless ``lossy``.
        By default ``FOLD``, the opset pass, then ``rewrites(lossy)``. A plugin target may
        return pipeline text instead (``preset_pipeline`` reads either)."""
        return Pipeline(f"{self}{' lossy' if lossy else ''}", FOLD, self._opsets().preset_pass,
                        self.rewrites(lossy))

    def preset_pipeline(self, lossy: bool = False) -> Pipeline:
        """``preset`` as a ``Pipeline`` value whatever it returned."""
        preset = self.preset(lossy)
        return preset if isinstance(preset, Pipeline) else Pipeline.parse(preset, str(self))

    def command(self, io: ModelIO, model_ref: str, extra: dict[str, str],
                settings: CompileSettings | None = None) -> Command | None:
        """The compile command for the model ``io`` describes, found at ``model_ref``; ``extra``
        names side files (``aipp``), ``settings`` the user's choices (None: the defaults). The
        command must be valid for that model as it is: every input, every dynamic axis spelt
        the compiler's way (or an InputError saying how to fix the model). None when the target
        needs no compile step."""
        return None

    def lint(self, model) -> LintResult:
        from .graph import LintGraph

        graph = LintGraph(model)
        return LintResult(str(self), [f for rule in self.rules() for f in rule.check(graph)])


def _validate_target(cls: type[Target]) -> None:
    for attr in ("summary", "versions", "default_version"):
        if not hasattr(cls, attr):
            raise TypeError(f"target class {cls.__name__} lacks the class attribute '{attr}'")
    if cls.default_version not in cls.versions:
        raise TypeError(f"target class {cls.__name__}: default_version is not one of its versions")


TARGETS: Registry[Target] = Registry("target", ENTRY_POINT_GROUP, Target, _validate_target)


def register_target(cls: type[Target]) -> type[Target]:
    """Class decorator that makes a target available by its ``name``."""
    return TARGETS.register(cls)


def available_targets() -> dict[str, type[Target]]:
    return TARGETS.available()


def get_target(spec: str) -> Target:
    """``ascend`` or ``ascend:cann5`` -> the target at that version (the default when none)."""
    name, _, version = spec.partition(":")
    if not name:
        raise InputError(f"target '{spec}': expected NAME or NAME:VERSION")
    return TARGETS.get(name)(version or None)
