"""The numeric checker: an instrument that runs the pipeline's stages in ONNX Runtime on the
same inputs and fails the run when outputs moved further than the pipeline's bound.

Inputs are made for the original model: seeded random ones (their batch follows a static
batch of the stage being checked, so ``static-batch(batch=4)`` is checked at batch 4) or real
ones from a folder. Passes that change what the model takes or gives hand the run an I/O
adapter, so e.g. a model made to take uint8 images is compared in the original's units. On a
breach of the pipeline's bound, the first pass that breaches its own bound is named.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from ..core.base import Pass
from ..core.bounds import Bound
from ..core.errors import NumericCheckFailed
from ..core.instruments import Instrument, PipelineRun
from ..core.records import PassRecord, PipelineResult
from .backends import Backend, OrtBackend, run_all
from .feeds import Feeds, check_shape_names, file_feeds, first_dims, fit_batch, input_shape, random_feeds, static_batch
from .metrics import Comparison, compare_outputs
from .session import make_session, run_session


@dataclass
class CheckSettings:
    """Inputs for the numeric check: given ``feeds`` (samples of an info file), real ones from
    ``inputs_dir``, or seeded random ones (``shapes`` for inputs with dynamic axes other than
    the batch). ``warn`` hears about files of ``inputs_dir`` that could not be read and were
    skipped."""

    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    inputs_dir: str | os.PathLike | None = None
    seed: int = 0
    warn: Callable[[str], None] = field(default=lambda m: None, repr=False, compare=False)
    feeds: list[Feeds] | None = None


class NumericChecker(Instrument):
    """Compares the result with the original after the pipeline (and after every pass with
    ``each_pass``); raises ``NumericCheckFailed`` naming the culprit pass."""

    def __init__(self, settings: CheckSettings | None = None, each_pass: bool = False):
        self.settings = settings or CheckSettings()
        self.each_pass = each_pass
        # Without each_pass only the original and the result are compared; the stages between
        # them are asked for (PipelineRun.complete_stages) only to blame a failure.
        self.needs_stages = each_pass
        self._feeds: list[Feeds] = []
        self._feed_shapes: dict | None = None
        self._outputs: dict[int, list] = {}

    # --- hooks ------------------------------------------------------------------------
    def before_pipeline(self, run: PipelineRun) -> None:
        self._outputs.clear()
        self._feed_shapes = None
        self._inputs = make_session(run.original).get_inputs()
        check_shape_names(self._inputs, self.settings.shapes)  # fail before any pass runs
        if self.settings.feeds:
            self._feeds = list(self.settings.feeds)
        elif self.settings.inputs_dir is not None:
            self._feeds = file_feeds(make_session(run.original), self.settings.inputs_dir, self.settings.warn)
        else:
            self._grid = next((g for g in (p.feed_grid() for p in run.passes) if g is not None), None)
            self._random_feeds(run.original)

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        if not self.each_pass:
            return
        record.check = self.compare(run, index, index + 1, p.bound())
        if not record.check.ok:
            raise NumericCheckFailed(f"numeric check failed after pass '{p.name}': {record.check.violations[0]}",
                                     p.name)

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        last = len(run.stages) - 1
        result.check = self.compare(run, 0, last, run.bound)
        if result.check.ok:
            return
        run.complete_stages()
        for index, p in enumerate(run.passes):  # find the first pass that breaches its own bound
            step = self.compare(run, index, index + 1, p.bound())
            if not step.ok:
                raise NumericCheckFailed(f"numeric check failed after pass '{p.name}': {step.violations[0]}", p.name)
        lossy = [p.name for p in run.passes if not p.exact] or [p.name for p in run.passes]
        raise NumericCheckFailed(f"numeric check failed for the pipeline (passes {', '.join(lossy)} together): "
                                 f"{result.check.violations[0]}", lossy[-1])

    # --- comparing stages ---------------------------------------------------------------
    def compare(self, run: PipelineRun, i: int, j: int, bound: Bound) -> Comparison:
        """Stage ``j`` against stage ``i`` (i < j), in stage ``i``'s units."""
        if self.settings.feeds:
            self._given_feeds(run.stages[j])
        elif self.settings.inputs_dir is None:
            self._random_feeds(run.stages[j])
        new = [run.outputs_back(o, j, i) for o in self._stage_outputs(run, j)]
        return compare_outputs(self._stage_outputs(run, i), new, bound)

    def _stage_outputs(self, run: PipelineRun, k: int) -> list:
        if k not in self._outputs:
            feeds = [run.feeds_for(f, k) for f in self._feeds]
            self._outputs[k] = run_session(make_session(run.stages[k]), feeds)
        return self._outputs[k]

    def _given_feeds(self, stage: onnx.ModelProto) -> None:
        """The given feeds at the stage's static batch, if it has one (first sample repeated)."""
        batch = static_batch(stage)
        feeds = [fit_batch(f, batch) for f in self.settings.feeds or []]
        if [{k: v.shape for k, v in f.items()} for f in feeds] != [{k: v.shape for k, v in f.items()}
                                                                   for f in self._feeds]:
            self._feeds = feeds
            self._outputs.clear()

    def _random_feeds(self, stage: onnx.ModelProto) -> None:
        """Feeds for the original's inputs; an input whose batch axis was dynamic takes the
        static batch that the stage gave it (``static-batch(batch=4)`` is checked at 4)."""
        fixed = first_dims(stage)
        shapes = {}
        for inp in self._inputs:
            shape = input_shape(inp, self.settings.shapes)
            dynamic = not (inp.shape and isinstance(inp.shape[0], int) and inp.shape[0] > 0)
            if dynamic and fixed.get(inp.name) and inp.name not in self.settings.shapes:
                shape = (fixed[inp.name], *shape[1:])
            shapes[inp.name] = shape
        if shapes != self._feed_shapes:
            self._feeds = random_feeds(self._inputs, shapes, self.settings.seed, grid=self._grid)
            self._feed_shapes = shapes
            self._outputs.clear()


def compare_models(ref_model: onnx.ModelProto | str | os.PathLike, new_model: onnx.ModelProto | str | os.PathLike,
                   feeds: Sequence[Feeds] | None = None, shapes: Mapping[str, Sequence[int]] | None = None,
                   seed: int = 0, bound: Bound | None = None,
                   inputs_dir: str | os.PathLike | None = None,
                   warn: Callable[[str], None] = lambda m: None, backend: Backend | None = None) -> Comparison:
    """Run both models on the same inputs and compare (the engine of ``cgsurg diff``): the
    reference in ONNX Runtime, the new model there too or on ``backend`` (e.g. OpenVINO, which
    also reads an IR ``.xml`` path)."""
    ref_sess = make_session(ref_model)
    if feeds is None:
        feeds = file_feeds(ref_sess, inputs_dir, warn) if inputs_dir else random_feeds(ref_sess, shapes, seed)
    runner = backend.load(new_model) if backend else OrtBackend(optimize=False).load(new_model)
    return compare_outputs(run_session(ref_sess, list(feeds)), run_all(runner, list(feeds)), bound)
