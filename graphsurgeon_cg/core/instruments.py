"""Instrumentation, in the style of MLIR's PassInstrumentation: observers of a pipeline run.

The pass manager calls every instrument before and after the pipeline and each pass, and
after a pass or the pipeline failed. Checking numbers, writing reports and timing are
instruments; passes never know about them. An instrument may stop the run by raising a
``CgsurgError`` from ``after_pass`` or ``after_pipeline``; the ``*_failed`` hooks must not
raise. ``PipelineRun`` is the instruments' view of the run: the model after each pass
(``stages[k]`` is the model after ``k`` passes; an instrument that reads the models between
the original and the result says so with ``needs_stages``, else the pass manager may verify
only at the end and leave those None), each pass's record and I/O adapter, and the
one place where inputs and outputs are translated across passes that change them (and where
the values a pass froze inputs to are fed to every stage), from what the passes declared
(``IOAdapter``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import onnx

from .base import IDENTITY, IOAdapter, Pass
from .bounds import Bound

if TYPE_CHECKING:
    from .records import PassRecord, PipelineResult


@dataclass
class Failure:
    """A pass that failed: ``index`` in the pipeline, the pass, the error. ``stages[index]`` of
    the run is the last good model (verified); ``model()`` is the graph the pass left, exported
    without verification (None when even that fails: the pass broke the graph mid-edit)."""

    index: int
    failed_pass: Pass
    error: Exception
    export: Callable[[], onnx.ModelProto] = field(repr=False)
    _model: list = field(default_factory=list, repr=False)

    def model(self) -> onnx.ModelProto | None:
        if not self._model:
            try:
                self._model.append(self.export())
            except Exception:  # noqa: BLE001 - what cannot be exported is reported as missing
                self._model.append(None)
        model: onnx.ModelProto | None = self._model[0]
        return model


@dataclass
class PipelineRun:
    passes: Sequence[Pass]
    bound: Bound
    stages: list[Any]  # onnx.ModelProto, or None between passes with deferred verification
    adapters: list[IOAdapter] = field(default_factory=list)
    records: list[PassRecord] = field(default_factory=list)
    # What each pass declared about the interface before the run (``Pass.declare_io``): the
    # adapter of a pass whose run gives none, the pinned inputs, the grid of the check inputs.
    declared: list[IOAdapter] = field(default_factory=list)
    pins: dict[str, Any] = field(default_factory=dict)  # input name -> the value a pass froze it to
    # Set by the pass manager when it deferred verification: re-runs the passes, verifying each
    # one, and returns every stage (for an instrument that needs them only on failure).
    replay: Callable[[], list[onnx.ModelProto]] | None = None
    # Set by the pass manager when a pass raised or left an invalid model: which one, and the
    # graph it left (for a post-mortem: ``core.dump.DumpOnFailure``).
    failure: Failure | None = None

    def __post_init__(self) -> None:
        self.declared = [p.declare_io(self.stages[0]) or IDENTITY for p in self.passes]
        for adapter in self.declared:
            self.pins.update(adapter.pinned)

    @property
    def grid(self) -> tuple | None:
        """``(mean, scale)`` of the 8-bit images the first pass that declares them makes the
        model take (``IOAdapter.grid``), or None: where random check inputs are drawn from."""
        return next((a.grid for a in self.declared if a.grid is not None), None)

    def complete_stages(self) -> None:
        """Make every ``stages[k]`` a model, replaying the passes if verification was deferred
        (an instrument that reads the stages only to blame a failure calls this first)."""
        if any(stage is None for stage in self.stages) and self.replay is not None:
            self.stages[:] = self.replay()

    @property
    def original(self) -> onnx.ModelProto:
        model: onnx.ModelProto = self.stages[0]
        return model

    def feeds_for(self, feed: dict, stage: int) -> dict:
        """Inputs of the original model -> the equivalent inputs of ``stages[stage]``. Inputs
        that a pass of the run freezes take the frozen value at every stage (the passes that
        remove them drop them from the feed)."""
        if self.pins:
            feed = {**feed, **self.pins}
        for adapter in self.adapters[:stage]:
            feed = adapter.feeds(feed)
        return feed

    def outputs_back(self, outputs: dict, stage: int, to: int = 0) -> dict:
        """Outputs of ``stages[stage]`` -> the units of ``stages[to]`` (``to <= stage``)."""
        for adapter in reversed(self.adapters[to:stage]):
            outputs = adapter.outputs(outputs)
        return outputs


class Instrument:
    """Base class with no-op hooks; override the ones you need. An instrument that reads only
    the original and the result (``result.model``) sets ``needs_stages = False``: the pass
    manager may then verify the graph once at the end instead of after every pass, and calls
    ``after_pass_failed`` only when it verifies after every pass."""

    needs_stages: bool = True

    def before_pipeline(self, run: PipelineRun) -> None:
        pass

    def before_pass(self, run: PipelineRun, index: int, p: Pass) -> None:
        pass

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        pass

    def after_pass_failed(self, run: PipelineRun, index: int, p: Pass, error: Exception) -> None:
        pass

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        pass

    def after_pipeline_failed(self, run: PipelineRun, error: Exception) -> None:
        pass


class Instruments:
    """An ordered list of instruments called as one."""

    def __init__(self, instruments: Sequence[Instrument] = ()):
        self.items = list(instruments)

    def call(self, hook: str, *args: Any) -> None:
        for instrument in self.items:
            getattr(instrument, hook)(*args)
