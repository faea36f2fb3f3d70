"""Per-pass accuracy report: what each rewrite of a pipeline cost, on its own and in total.

``AccuracyReport`` is a pass-manager instrument. It runs the original model once on the
evaluation inputs (real images from an info file, a folder, or seeded random inputs), then
after every pass runs the rewritten model on the same inputs and scores it against the
original with the metrics of ``check.metrics`` (vendor per-pixel cosine mean and min, flat
cosine, max abs, PSNR, SSIM). Each pass also gets its own effect: the change (Δ) of the judged
cosine and of PSNR that it caused, and its outputs against the previous stage's judged by the
pass's declared bound (held or not). Each pass becomes a ``schema.PassReport``; when the
pipeline ends, whether it succeeded or failed, the ``schema.Report`` is written as
``report.json`` (NaN is ``null``), ``report.md`` and ``report.html`` (``render``) and handed
back as ``PipelineResult.report``. It gates on minimum cosine/PSNR and compares with a baseline
report (``verdicts``). Progress goes to stderr.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..check.feeds import Feeds, fit_batch, static_batch
from ..check.metrics import Metrics, compare_outputs, score, summarise
from ..check.session import SessionCache, make_session
from ..core.base import Pass
from ..core.bounds import CLOSE_ATOL, CLOSE_RTOL
from ..core.errors import InputError, NumericCheckFailed
from ..core.instruments import Instrument, PipelineRun
from ..core.modelio import staged_folder
from ..core.records import PassRecord, PipelineResult
from .render import Pictures, html_page, markdown
from .schema import Delta, Inputs, MetricSummary, PassReport, Report, SampleScore, StepVerdict, WorstLayer
from .verdicts import Gates, compare_baseline, gate_failure, load_baseline


def _throughput(model: onnx.ModelProto, feed: Feeds, rounds: int = 3) -> float:
    """Images per second at batch 1 with ORT's optimisations on, as deployment runs it."""
    session = make_session(model, optimize=True)
    feed = fit_batch({k: v[:1] for k, v in feed.items()}, static_batch(model))
    session.run(None, feed)
    runs, start = 0, time.perf_counter()
    while runs < rounds or time.perf_counter() - start < 0.25:  # tiny models need more runs to be steady
        session.run(None, feed)
        runs += 1
    return next(iter(feed.values())).shape[0] * runs / (time.perf_counter() - start)


class AccuracyReport(Instrument):
    """Measures every pass against the original on the evaluation inputs and writes the
    report when the pipeline ends, failed or not; fails the run on gates or a baseline.

    ``names`` label the samples (image names); ``source`` says where they came from (an
    info file); ``progress`` shows a progress bar on stderr (None: only on a terminal);
    ``bar`` is the cosine the run must reach (drawn on the chart; default: the ``min_cos`` gate).
    ``passes`` holds the typed entry of each pass measured so far; ``report`` the last report
    written."""

    def __init__(self, feeds: list[Feeds], input_kind: str, out_dir: str | os.PathLike, model_path: str = "",
                 gates: Gates | None = None, baseline: str | os.PathLike | None = None, baseline_cos_tol: float = 1e-4,
                 baseline_psnr_tol: float = 0.5, bench: bool = False, names: Sequence[str] | None = None,
                 source: str = "", progress: bool | None = None, bar: float | None = None,
                 sessions: SessionCache | None = None):
        if not feeds:
            raise InputError("no evaluation inputs for the report")
        self.feeds = feeds
        self.input_kind = input_kind  # "info", "folder" or "random"
        self.names = list(names) if names else [f"sample {i + 1}" for i in range(len(feeds))]
        self.source = source
        self.out_dir = Path(out_dir)
        self.model_path = model_path
        self.gates = gates or Gates()
        self.bar = bar if bar is not None else self.gates.min_cos
        self.baseline = baseline
        self.baseline_cos_tol = baseline_cos_tol
        self.baseline_psnr_tol = baseline_psnr_tol
        self.bench = bench
        self.progress = progress
        self.sessions = sessions or SessionCache()  # the run's ORT sessions and outputs, shared with the check
        self.passes: list[PassReport] = []
        self.report: Report | None = None
        # (pass spec, its outputs, the previous stage's outputs) of every sample, per pass that
        # changed the outputs: the samples shown are the worst after the pipeline, known at the end
        self.gallery: list[tuple[str, list[np.ndarray], list[np.ndarray]]] = []
        self.reference: list[np.ndarray] | None = None
        self.baseline_throughput: float | None = None
        self.reference_seconds = 0.0
        self.pipeline = ""
        self._bar: Any = None

    # --- hooks ------------------------------------------------------------------------
    def before_pipeline(self, run: PipelineRun) -> None:
        from tqdm import tqdm

        self.pipeline = ",".join(str(p) for p in run.passes)
        self._bar = tqdm(total=(len(run.passes) + 1) * len(self.feeds), desc="report: original", unit="run",
                         leave=False, disable=None if self.progress is None else not self.progress)
        start = time.perf_counter()
        self.reference = self._outputs(run, 0)
        self._previous = self.reference
        self.baseline_throughput = _throughput(run.original, self.feeds[0]) if self.bench else None
        self.reference_seconds = time.perf_counter() - start

    def after_pass(self, run: PipelineRun, index: int, p: Pass, record: PassRecord) -> None:
        assert self.reference is not None
        start = time.perf_counter()
        if self._bar is not None:
            self._bar.set_description(f"report: {record.spec}")
        outputs = self._outputs(run, index + 1)
        scores = [score(name, ref, out) for name, ref, out in zip(self.names, self.reference, outputs)]
        previous, self._previous = self._previous, outputs
        changed = any(not np.array_equal(a, b) for a, b in zip(previous, outputs))
        if changed:
            self.gallery.append((record.spec, outputs, previous))
        metrics = _metrics(scores, self.reference, outputs)
        entry = PassReport(
            name=p.name, spec=record.spec, options=p.changed_options(), exact=p.exact, rewrites=record.rewrites,
            seconds=record.seconds + record.verify_seconds, nodes_before=record.nodes_before,
            nodes_after=record.nodes_after, op_delta=record.op_delta, changed_outputs=changed, metrics=metrics,
            delta=_delta(self.passes[-1].metrics if self.passes else None, metrics), step=_step(p, previous, outputs),
            samples=[SampleScore(s.name, s.judged_by, s.judged_cos, s.psnr_db) for s in scores])
        if not p.exact and not entry.step.held:
            entry.worst_layer = self._worst_layer(run, index)
        if self.bench:
            entry.throughput_batch1 = _throughput(run.stages[index + 1], run.feeds_for(self.feeds[0], index + 1))
        entry.score_seconds = time.perf_counter() - start
        self.passes.append(entry)

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        self._close_bar()
        failure = gate_failure(self.passes, self.gates)
        regressions = self.compare_baseline(self.baseline, self.baseline_cos_tol,
                                            self.baseline_psnr_tol) if self.baseline else []
        if regressions and not failure:
            failure = f"accuracy regressed against the baseline after pass {regressions[0]}"
        if failure:
            raise NumericCheckFailed(failure)  # after_pipeline_failed writes the report with it
        result.report_dir = self.write()
        result.report = self.report

    def after_pipeline_failed(self, run: PipelineRun, error: Exception) -> None:
        self._close_bar()
        # A failed verdict (a pass, the check, a gate) is what the report explains; a bad input
        # leaves nothing behind, like every failed command.
        if self.reference is not None and not isinstance(error, InputError):
            try:
                self.write(error=str(error))
            except InputError:
                pass  # the run's own error is the one to show

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _outputs(self, run: PipelineRun, stage: int) -> list[np.ndarray]:
        """The first output per sample of ``run.stages[stage]``, in the original model's units."""
        model = run.stages[stage]
        name = self.sessions.session(model).get_outputs()[0].name
        batch = static_batch(model)
        outs = []
        for feed in self.feeds:
            out = self.sessions.run(model, [fit_batch(run.feeds_for(feed, stage), batch)])[0]
            outs.append(run.outputs_back(out, stage)[name][0])
            if self._bar is not None:
                self._bar.update()
        return outs

    def _worst_layer(self, run: PipelineRun, index: int) -> WorstLayer | None:
        """The first tensor where ``stages[index + 1]`` diverges from ``stages[index]`` on the
        first sample; None where the two stages take different inputs or cannot be compared
        layer by layer (the report explains a broken bound, it never fails for want of this)."""
        from ..check.layers import compare_layers

        before, after = run.stages[index], run.stages[index + 1]
        if before is None or after is None:
            return None
        feed = fit_batch(run.feeds_for(self.feeds[0], index), static_batch(before))
        feed = {k: v[:1] for k, v in feed.items()}
        other = run.feeds_for(self.feeds[0], index + 1)
        if set(other) != set(feed) or any(np.asarray(other[k]).dtype != feed[k].dtype for k in feed):
            return None  # the pass changed the interface: no shared feed to run both on
        try:
            first = compare_layers(before, after, [feed]).first_divergence
        except (InputError, RuntimeError, ValueError):
            return None
        if first is None:
            return None
        return WorstLayer(name=first.name, node=first.node, op=first.op, cos=first.cos, max_abs=first.max_abs)

    # --- verdicts (verdicts.py) -------------------------------------------------------
    def gate_failure(self, gates: Gates) -> str | None:
        """The first pass after which a metric falls below its bar, as an error message."""
        return gate_failure(self.passes, gates)

    def compare_baseline(self, path: str | os.PathLike, cos_tol: float = 1e-4, psnr_tol: float = 0.5) -> list[str]:
        """Flag each pass whose metrics got worse than in an earlier report of the same pipeline."""
        return compare_baseline(self.passes, load_baseline(path), path, cos_tol, psnr_tol)

    # --- writers ----------------------------------------------------------------------
    def build(self, error: str | None = None) -> Report:
        """The report of the passes measured so far."""
        return Report(model=self.model_path, pipeline=self.pipeline,
                      inputs=Inputs(self.input_kind, len(self.feeds), self.names, self.source or None),
                      shown_samples=[], bar=self.bar, baseline=str(self.baseline) if self.baseline else None,
                      error=error, reference_seconds=self.reference_seconds,
                      original_throughput_batch1=self.baseline_throughput, passes=self.passes)

    def as_dict(self, error: str | None = None) -> dict:
        return self._final(error).as_dict()

    def _final(self, error: str | None) -> Report:
        """The report as written: NaN and infinities as None, the shown samples named."""
        report = Report.from_dict(self.build(error).as_dict())
        report.shown_samples = [self.names[i] for i in report.worst_samples()]
        return report

    def write(self, error: str | None = None) -> Path:
        """Write the three files together: all of them are put in place, or none."""
        out = self.out_dir
        report = self._final(error)
        pictures = Pictures([next(iter(f.values()))[0] for f in self.feeds], self.reference or [],
                                   self.gallery)
        with staged_folder(out) as staging:
            try:
                (staging / "report.json").write_text(report.to_json())
                (staging / "report.md").write_text(markdown(report))
                (staging / "report.html").write_text(html_page(report, pictures))
            except OSError as exc:
                raise InputError(f"cannot write the report in {out}: {exc.strerror or exc}") from None
        self.report = report
        return out

    def worst_samples(self) -> list[int]:
        """The indices of the samples shown (``Report.worst_samples``)."""
        return self.build().worst_samples()


def _metrics(scores: list[Metrics], reference: list[np.ndarray], outputs: list[np.ndarray]) -> MetricSummary:
    summary = summarise(scores)

    def stat(key: str, which: str) -> float | None:
        return summary[key][which] if summary[key] else None

    psnr_known = len([s for s in scores if s.psnr_db is not None]) == len(scores)
    return MetricSummary(
        judged_by=summary["judged_by"], pixel_cos_mean=stat("pixel_cos", "mean"),
        pixel_cos_min=stat("pixel_cos", "min"), cos_mean=stat("cos", "mean"), cos_min=stat("cos", "min"),
        max_abs=summary["max_abs"]["max"], psnr_db_mean=stat("psnr_db", "mean") if psnr_known else None,
        ssim_mean=stat("ssim", "mean"),
        close=all(bool((np.abs(np.asarray(o, np.float64) - r) <= CLOSE_ATOL + CLOSE_RTOL * np.abs(r)).all())
                  for r, o in zip(reference, outputs)))


def _delta(before: MetricSummary | None, after: MetricSummary) -> Delta:
    """What one pass changed: its judged cosine and PSNR minus the previous stage's (the
    original scores cosine 1). The PSNR change is None when either PSNR is infinite."""
    cos_before = 1.0 if before is None else before.judged_mean
    cos_after = after.judged_mean
    psnr_before = None if before is None else before.psnr_db_mean  # None: identical (infinite)
    psnr_after = after.psnr_db_mean
    return Delta(cos=None if cos_before is None or cos_after is None else cos_after - cos_before,
                 psnr_db=None if psnr_before is None or psnr_after is None else psnr_after - psnr_before)


def _step(p: Pass, previous: list[np.ndarray], outputs: list[np.ndarray]) -> StepVerdict:
    """The pass's own change (its outputs against the previous stage's) judged by its bound."""
    bound = p.bound()
    comparison = compare_outputs([{"out": a[None]} for a in previous], [{"out": b[None]} for b in outputs], bound)
    m = comparison.outputs[0] if comparison.outputs else None
    return StepVerdict(bound=bound.describe(), held=comparison.ok, judged=comparison.judged.get("out"),
                       violation=comparison.violations[0].replace("output 'out': ", "") if comparison.violations
                       else None, max_abs=None if m is None else m.max_abs,
                       judged_cos=None if m is None else m.judged_cos)
