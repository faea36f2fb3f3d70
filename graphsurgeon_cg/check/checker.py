"""The numeric checker: an instrument that runs the pipeline's stages in ONNX Runtime on the
same inputs and fails the run when outputs moved further than the pipeline's bound.

Inputs are made for the original model: seeded random ones (their batch follows a static
batch of the stage being checked, so ``static-batch(batch=4)`` is checked at batch 4) or real
ones from a folder. Passes that change what the model takes or gives hand the run an I/O
adapter, so e.g. a model made to take uint8 images is compared in the original's units.

The result is judged against the run's bound (the passes that changed the graph), whose
cosine test a bar chosen for the whole run replaces (``CheckSettings.min_cos``: a target's
accuracy bar, or the user's). Without a bar, every lossy pass that changed the graph is also
judged against its own bound on its own change when there are several (their chained bound
is looser than each). On a breach, the first pass that breaches its own bound is named. The comparison says what it
ran on (``Comparison.inputs``; random inputs say little about a real model) and where its
bar came from (``Comparison.bar``).

A stage with float16 tensors (``fp16``, ``fp16out``) is run as a float16 engine computes it
(``check.fp16sim``: every float16 tensor rounded after its op, so activations past 65,504
overflow), not as ONNX Runtime's CPU provider does (float32 between its casts): the verdict
says so, and a failure names the tensors that overflowed.
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
from .fp16sim import SIMULATED, overflowing, simulable, simulate
from .metrics import Comparison, compare_outputs
from .session import SessionCache, make_session, run_session


@dataclass
class CheckSettings:
    """Inputs for the numeric check: given ``feeds`` (samples of an info file), real ones from
    ``inputs_dir``, or seeded random ones (``shapes`` for inputs with dynamic axes other than
    the batch). ``warn`` hears about files of ``inputs_dir`` that could not be read and were
    skipped. ``min_cos`` replaces the cosine test of the run's bound (``bar`` says whose bar
    it is, e.g. "target ascend:cann8's bar"); ``label`` names the given ``feeds`` (e.g.
    "4 samples of images.info"); ``each_pass`` checks after every pass, not only at the end."""

    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    inputs_dir: str | os.PathLike | None = None
    seed: int = 0
    warn: Callable[[str], None] = field(default=lambda m: None, repr=False, compare=False)
    feeds: list[Feeds] | None = None
    min_cos: float | None = None
    bar: str = ""
    label: str = ""
    each_pass: bool = False

    def describe_inputs(self, count: int) -> str:
        """What the check ran on, in words."""
        plural = "s" if count != 1 else ""
        if self.feeds:
            return self.label or f"{count} given sample{plural}"
        if self.inputs_dir is not None:
            return f"{count} file{plural} of {self.inputs_dir}"
        return (f"{count} random input{plural} (seed {self.seed}): random inputs say little about a real model; "
                "give --data INFO")


class NumericChecker(Instrument):
    """Compares the result with the original after the pipeline (and after every pass with
    ``each_pass``); raises ``NumericCheckFailed`` naming the culprit pass. ``sessions`` are
    the run's ORT sessions and the outputs they computed, shared with the other instruments
    (the original's outputs are computed once)."""

    def __init__(self, settings: CheckSettings | None = None, each_pass: bool | None = None,
                 sessions: SessionCache | None = None):
        self.settings = settings or CheckSettings()
        self.each_pass = self.settings.each_pass if each_pass is None else each_pass
        self.sessions = sessions or SessionCache()
        # Without each_pass only the original and the result are compared; the stages between
        # them are asked for (PipelineRun.complete_stages) only to blame a failure.
        self.needs_stages = self.each_pass
        self._feeds: list[Feeds] = []
        self._feed_shapes: dict | None = None
        self._outputs: dict[int, list] = {}

    # --- hooks ------------------------------------------------------------------------
    def before_pipeline(self, run: PipelineRun) -> None:
        self._outputs.clear()
        self._feed_shapes = None
        original = self.sessions.session(run.original, keep=True)  # every comparison reads it
        self._inputs = original.get_inputs()
        check_shape_names(self._inputs, self.settings.shapes)  # fail before any pass runs
        if self.settings.feeds:
            self._feeds = list(self.settings.feeds)
        elif self.settings.inputs_dir is not None:
            self._feeds = file_feeds(original, self.settings.inputs_dir, self.settings.warn, self.settings.shapes)
        else:
            self._grid = run.grid
            self._random_feeds(run.original)

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        if not self.each_pass:
            return
        record.check = self._labelled(self.compare(run, index, index + 1, p.bound()))
        if not record.check.ok:
            raise NumericCheckFailed(f"numeric check failed after pass '{p.name}': {record.check.violations[0]}",
                                     p.name)

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        last = len(run.stages) - 1
        settings = self.settings
        bound = run.bound if settings.min_cos is None else run.bound.with_min_cos(settings.min_cos)
        result.check = self._labelled(self.compare(run, 0, last, bound), whole_run=True)
        changed = [i for i, (p, r) in enumerate(zip(run.passes, run.records)) if not p.exact and r.modified]
        if result.check.ok and (len(changed) < 2 or settings.min_cos is not None):
            return  # the bar is the verdict, or the run's bound is the one lossy pass's own
        run.complete_stages()
        culprit = None
        for index in changed if result.check.ok else range(len(run.passes)):
            p = run.passes[index]  # the first pass that breaches its own bound is the culprit
            step = self._labelled(self.compare(run, index, index + 1, p.bound()))
            run.records[index].check = step
            if not step.ok:
                if result.check.ok:
                    raise NumericCheckFailed(f"numeric check failed after pass '{p.name}': {step.violations[0]} "
                                             f"({p.name}'s own bound, on {step.inputs})", p.name)
                culprit = p.name
                break
        if result.check.ok:
            return
        if culprit is None and settings.min_cos is not None:  # the first stage below the bar
            culprit = next((p.name for k, p in enumerate(run.passes[:-1], 1)
                            if not self.compare(run, 0, k, bound).ok), run.passes[-1].name)
        lossy = [p.name for p in run.passes if not p.exact] or [p.name for p in run.passes]
        head = (f"after pass '{culprit}'" if culprit else
                f"for the pipeline (passes {', '.join(lossy)} together)")
        raise NumericCheckFailed(f"numeric check failed {head}: {result.check.violations[0]}; "
                                 f"{result.check.verdict()}", culprit or lossy[-1])

    def _labelled(self, comparison: Comparison, whole_run: bool = False) -> Comparison:
        comparison.inputs = self.settings.describe_inputs(len(self._feeds))
        if whole_run and self.settings.min_cos is not None:
            comparison.bar = self.settings.bar
        return comparison

    # --- comparing stages ---------------------------------------------------------------
    def compare(self, run: PipelineRun, i: int, j: int, bound: Bound) -> Comparison:
        """Stage ``j`` against stage ``i`` (i < j), in stage ``i``'s units."""
        if self.settings.feeds:
            self._given_feeds(run.stages[j])
        elif self.settings.inputs_dir is None:
            self._random_feeds(run.stages[j])
        new = [run.outputs_back(o, j, i) for o in self._stage_outputs(run, j)]
        result = compare_outputs(self._stage_outputs(run, i), new, bound)
        if simulable(run.stages[j]):
            result.simulated = SIMULATED
            if not result.ok:
                names = overflowing(run.stages[j], [run.feeds_for(f, j) for f in self._feeds])
                if names:
                    result.violations[0] += (f"; float16 overflow (past 65,504) in tensor "
                                             f"{', '.join(repr(n) for n in names)}")
        return result

    def _stage_outputs(self, run: PipelineRun, k: int) -> list:
        if k not in self._outputs:
            feeds = [run.feeds_for(f, k) for f in self._feeds]
            stage = run.stages[k]
            model = simulate(stage).model if simulable(stage) else stage  # as a float16 engine computes it
            self._outputs[k] = self.sessions.run(model, feeds)
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
    settings = CheckSettings(inputs_dir=inputs_dir, seed=seed, feeds=list(feeds) if feeds is not None else None)
    if feeds is None:
        feeds = file_feeds(ref_sess, inputs_dir, warn, shapes) if inputs_dir else random_feeds(ref_sess, shapes, seed)
    runner = backend.load(new_model) if backend else OrtBackend(optimize=False).load(new_model)
    result = compare_outputs(run_session(ref_sess, list(feeds)), run_all(runner, list(feeds)), bound)
    result.inputs = settings.describe_inputs(len(feeds))
    return result
