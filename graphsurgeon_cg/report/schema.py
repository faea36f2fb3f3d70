"""What ``report.json`` holds, as typed records (schema ``cgsurg-report`` version 2).

The instrument builds a ``Report``, the verdicts and renderers read it, ``Report.load`` reads a
written one back. Each record's JSON is its fields in order: a new field with a default is a
new key, read back from reports that have it and defaulted for those that do not.
``as_dict`` gives valid JSON (NaN and infinities as ``null``).
"""

from __future__ import annotations

import json
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..core.errors import InputError

SCHEMA = "cgsurg-report"
VERSION = 2
SHOWN_SAMPLES = 3

R = TypeVar("R", bound="Record")
OMIT_NONE = {"omit_none": True}  # field metadata: the key is left out of the JSON while the value is None


class BadKey(ValueError):
    """A value ``report.json`` cannot hold at ``where`` (``passes[1].metrics.close``)."""

    def __init__(self, why: str, where: str = ""):
        super().__init__(f"{where}: {why}" if where else why)
        self.why, self.where = why, where

    def inside(self, key: str | int) -> BadKey:
        step = f"[{key}]" if isinstance(key, int) else key
        inner = self.where if not self.where or self.where.startswith("[") else f".{self.where}"
        return BadKey(self.why, step + inner)


class Record:
    """JSON in and out by the dataclass fields and their annotations. Hand-written rather than
    dacite/pydantic: twenty lines, and the package takes no new dependency for them."""

    def as_dict(self) -> dict:
        assert is_dataclass(self)
        return {f.name: _to_json(getattr(self, f.name)) for f in fields(self)
                if not (f.metadata.get("omit_none") and getattr(self, f.name) is None)}

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """Keys this record does not know are ignored (a newer report read by an older cgsurg);
        a missing key without a default, or a value of the wrong type, is a ``BadKey`` naming it."""
        if not isinstance(data, Mapping):
            raise BadKey(f"expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in data:
                try:
                    values[f.name] = _from_json(hints[f.name], data[f.name])
                except BadKey as exc:
                    raise exc.inside(f.name) from None
            elif f.default is MISSING and f.default_factory is MISSING:
                raise BadKey("missing", f.name)
        return cls(**values)


def _to_json(value: Any) -> Any:
    if isinstance(value, Record):
        return value.as_dict()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        return _to_json(value.item())
    return value


def _from_json(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_json(inner, value)
    if origin is list:
        if not isinstance(value, list):
            raise BadKey(f"expected a list, got {type(value).__name__}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(_from_json(args[0], v))
            except BadKey as exc:
                raise exc.inside(i) from None
        return out
    if origin is dict:
        if not isinstance(value, dict):
            raise BadKey(f"expected an object, got {type(value).__name__}")
        values = {}
        for k, v in value.items():
            try:
                values[k] = _from_json(args[1], v)
            except BadKey as exc:
                raise exc.inside(k) from None
        return values
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_dict(value)
    if hint is Any or hint is object:
        return value
    # an int stays an int where a float is declared: what was read is what is written back
    wanted = (int, float) if hint is float else hint
    if isinstance(value, bool) and hint is not bool or not isinstance(value, wanted):
        raise BadKey(f"expected {hint.__name__}, got {value!r}")
    return value


@dataclass
class MetricSummary(Record):
    """Scores of one stage against the original over all samples (means, mins; ``None`` where
    undefined, ``psnr_db_mean`` None where the outputs are identical)."""

    judged_by: str  # "pixel_cos" for image outputs, "cos" for one-channel ones (metrics.judged_by)
    pixel_cos_mean: float | None
    pixel_cos_min: float | None
    cos_mean: float | None
    cos_min: float | None
    max_abs: float | None
    psnr_db_mean: float | None
    ssim_mean: float | None
    # within atol + rtol·|ref| of the original everywhere: the cosine gate's stand-in where the
    # cosine of near-zero outputs is noise (core.bounds)
    close: bool

    @property
    def judged_mean(self) -> float | None:
        return self.pixel_cos_mean if self.judged_by == "pixel_cos" else self.cos_mean

    @property
    def judged_min(self) -> float | None:
        return self.pixel_cos_min if self.judged_by == "pixel_cos" else self.cos_min


@dataclass
class Delta(Record):
    """What one pass changed: its judged cosine and PSNR minus the previous stage's (None where
    either PSNR is infinite)."""

    cos: float | None
    psnr_db: float | None


@dataclass
class StepVerdict(Record):
    """The pass's own change (its outputs against the previous stage's) judged by its bound."""

    bound: str
    held: bool
    judged: str | None  # the criterion that decided (the cosine, or atol/rtol near zero)
    violation: str | None
    max_abs: float | None
    judged_cos: float | None


@dataclass
class SampleScore(Record):
    """One sample after one pass; in JSON its judged cosine is keyed by ``judged_by``."""

    name: str
    judged_by: str
    judged_cos: float | None
    psnr_db: float | None

    def as_dict(self) -> dict:
        return {"name": self.name, self.judged_by: _to_json(self.judged_cos), "psnr_db": _to_json(self.psnr_db)}

    @classmethod
    def from_dict(cls, data: Any) -> SampleScore:
        judged = [k for k in ("pixel_cos", "cos") if isinstance(data, Mapping) and k in data]
        if not judged:
            raise BadKey("a sample needs 'pixel_cos' or 'cos'")
        return super().from_dict({**data, "judged_by": judged[0], "judged_cos": data[judged[0]]})


@dataclass
class WorstLayer(Record):
    """The first tensor where a lossy pass that broke its bound diverges from the stage before
    it (``check.layers.compare_layers`` on the first sample): where its loss starts."""

    name: str
    node: str
    op: str
    cos: float | None
    max_abs: float | None


@dataclass
class PassReport(Record):
    """One pass of the pipeline: what it did, its scores against the original (cumulative), its
    own change and whether its bound held, per-sample scores, and the baseline's flags."""

    name: str
    spec: str
    options: dict[str, Any]
    exact: bool
    rewrites: int
    seconds: float
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    changed_outputs: bool
    metrics: MetricSummary
    delta: Delta
    step: StepVerdict
    samples: list[SampleScore]
    regressions: list[str] = field(default_factory=list)  # against the baseline, one line per metric
    throughput_batch1: float | None = field(default=None, metadata=OMIT_NONE)  # with bench
    score_seconds: float = 0.0
    baseline_spec: str | None = field(default=None, metadata=OMIT_NONE)  # the baseline's pass, once compared
    worst_layer: WorstLayer | None = field(default=None, metadata=OMIT_NONE)  # a lossy pass that broke its bound


@dataclass
class Inputs(Record):
    kind: str  # "info", "folder" or "random"
    samples: int
    names: list[str]
    source: str | None  # the info file's name


@dataclass
class Report(Record):
    """A whole ``report.json``: the run, its inputs, and one ``PassReport`` per pass that ran."""

    model: str
    pipeline: str
    inputs: Inputs
    shown_samples: list[str]
    bar: float | None  # the cosine the run had to reach
    baseline: str | None
    error: str | None  # why the run failed, when it did
    reference_seconds: float
    original_throughput_batch1: float | None
    passes: list[PassReport]
    schema: str = SCHEMA
    version: int = VERSION

    def as_dict(self) -> dict:
        data = super().as_dict()
        return {"schema": data.pop("schema"), "version": data.pop("version"), **data}

    @property
    def judged_by(self) -> str:
        """The cosine the gates judge (the last pass's; all passes judge the same output)."""
        return self.passes[-1].metrics.judged_by if self.passes else "pixel_cos"

    def worst_samples(self) -> list[int]:
        """The indices of the samples shown: the ``SHOWN_SAMPLES`` with the lowest judged cosine
        after the last pass (NaN first, then file order among equals)."""
        if not self.passes:
            return list(range(min(SHOWN_SAMPLES, self.inputs.samples)))
        last = self.passes[-1].samples

        def key(i: int) -> tuple[float, int]:
            value = last[i].judged_cos
            return (-math.inf if value is None or not math.isfinite(value) else value, i)

        return sorted(range(len(last)), key=key)[:SHOWN_SAMPLES]

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def parse(cls, data: Any, where: str = "the report") -> Report:
        """A report from ``report.json``'s data; an ``InputError`` naming the first bad key."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            raise InputError(f"{where} is not a cgsurg report")
        if data.get("version") != VERSION:
            raise InputError(f"{where} is a cgsurg report of version {data.get('version')}, not {VERSION}")
        try:
            return cls.from_dict(data)
        except BadKey as exc:
            raise InputError(f"{where} is not a valid cgsurg report: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Report:
        """Read a ``report.json`` (or the report folder holding it) back into its records."""
        path = Path(path)
        if path.is_dir():
            path = path / "report.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read report {path}: {getattr(exc, 'strerror', None) or exc}") from None
        return cls.parse(data, str(path))
