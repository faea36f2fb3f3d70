"""``cgsurg tune`` — the fastest pipeline that still meets the accuracy bar.

Candidates (``candidates.plan``: pipelines on ONNX Runtime; on OpenVINO fp32, bf16 where the CPU
has it, and int8 by NNCF, by chosen float layers or by its accuracy control) are tried in order,
cheap first, and the budget is spent where it pays:

1. build (``api.apply``, ``stages.compile``; int8 calibration ranges are shared, see ``int8``);
2. a quick batch-1 timing as deployed (``timing.probe``) and the vendor metric on the first
   ``PROXY_IMAGES`` evaluation images: a candidate clearly below the bar there, or no faster
   than the current winner, goes no further (a search whose all-int8 bound cannot beat the
   winner is not even built);
3. the rest of the evaluation set, stopped as soon as the mean can no longer reach the bar
   (the calibration set's figure is taken for those that meet it);
4. the ``FINALISTS`` fastest that meet the bar, timed against the originals as deployed at
   each batch size, interleaved, medians (``timing.timed``).

The winner is the fastest finalist (the original is the baseline, never the winner), written
as ``best.onnx``, or ``best_ov/`` for an OpenVINO IR, with the command that runs it at the
precision it was judged at; when none meets the bar, the verdict fails (exit 3) naming the
closest. tune.json lists each candidate not tried or not fully evaluated, with the reason.

The "float16 build (simulated)" row (the exact pipeline, then ``fp16``) predicts what a float16
engine (Ascend's default build, TensorRT ``--fp16``) would score: it is judged through the float16
simulator (``check.fp16sim``), never timed (ORT runs float16 through float32 here), never the winner.

With ``ray_address`` the candidates are built and judged in full as Ray tasks (``remote``: no
shared storage; a candidate whose node is lost is re-run).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..check.backends import backend_for
from ..check.feeds import ImageInput, Shapes
from ..check.metrics import score
from ..core.errors import InputError, NumericCheckFailed
from ..core.modelio import check_output_folder, staged_folder
from ..stages.dataset import read_info
from ..stages.evaluate import EvalResult
from ..stages.infer import batches as infer_batches
from ..targets.rules import static_shape_spec
from .candidates import check_disjoint, cpu_flags, plan
from .judging import EVAL_BATCH, _built, _judge, _reason, judging_runner, reference_outputs, scores_of
from .render import render_html
from .results import Candidate, TuneResult, run_line
from .timing import cpu_isa, probe, timed

PROXY_IMAGES = 3
PROXY_SLACK = 0.01  # a proxy this far under the bar is not worth the full evaluation
FINALISTS = 3
SEARCH_COST = 4.0  # an accuracy search costs about this many plain candidates

__all__ = ["tune"]


def tune(model: str | os.PathLike, calib: str | os.PathLike, evaluation: str | os.PathLike,
         out_dir: str | os.PathLike, *, min_cos: float = 0.99, backends: Sequence[str] = ("ort",),
         batches: Sequence[int] = (1, 16), budget_minutes: float = 10.0, rounds: int = 10,
         threads: int | None = None, only: Sequence[str] = (), ray_address: str | None = None,
         progress: Callable[[str], None] = lambda m: None, flags: Sequence[str] | None = None,
         shapes: Shapes | None = None) -> TuneResult:
    """Try the candidates, time them, pick the winner; writes ``out_dir`` (tune.json, tune.html,
    the candidates' models, best.onnx or best_ov/). Raises ``NumericCheckFailed`` (the folder
    still written) when no candidate meets ``min_cos``. ``only``: label substrings to keep (the
    originals are always measured, as the baseline). ``flags``: the CPU's ISA flags (default:
    this CPU's) that decide the candidates. ``ray_address`` (``local`` for a local Ray): the
    candidates are built and judged as Ray tasks and timed in one task holding a whole node.
    ``shapes`` (``--input-shape``): the size of the samples on the input's dynamic axes; each
    candidate's pipeline then starts with ``static-shape`` at it (the batch left as declared),
    as a compiler wants the model, and as int8 needs it to calibrate."""
    if not 0 < min_cos <= 1:
        raise InputError(f"min_cos must be in (0, 1], got {min_cos}")
    if not batches or min(batches) < 1 or rounds < 1 or budget_minutes <= 0:
        raise InputError("batch sizes, rounds and the budget must be positive")
    for name in backends:
        backend_for(name, threads=threads)  # unknown or not installed: fail before any work
    if not Path(model).is_file():
        raise InputError(f"no such model file: {model}")
    check_disjoint(calib, evaluation)
    check_output_folder(out_dir)
    fixing = _fixing(model, shapes or {})
    deadline = time.monotonic() + budget_minutes * 60  # for everything, the final timing included
    with staged_folder(out_dir, keep=lambda exc: isinstance(exc, NumericCheckFailed)) as stage:
        (stage / "candidates").mkdir()
        planned, skipped = plan(min_cos, str(calib), backends, cpu_flags() if flags is None else flags)
        chosen = [c for c in planned if c.pipeline is None or not only or any(word in c.label for word in only)]
        if fixing:
            chosen = [replace(c, pipeline=f"{fixing},{c.pipeline}") if c.pipeline else c for c in chosen]
        if only and all(c.pipeline is None for c in chosen):
            raise InputError(f"no candidate label contains {', '.join(only)}")
        progress(f"[tune] {len(chosen)} candidates on {cpu_isa(flags)}; the original's outputs on the evaluation set")
        started = time.perf_counter()
        references = {"eval": reference_outputs(model, evaluation, threads, shapes)}
        per_image = (time.perf_counter() - started) / max(1, len(references["eval"]))
        # The final timing's share of the budget, kept back from the start.
        reserve = per_image * sum(b * (max(3, round(rounds / b ** 0.5)) + 2) for b in batches) * (FINALISTS + 2)
        jobs = [(c, str(model), stage / "candidates" / f"{k:02d}.onnx", str(calib), str(evaluation), min_cos,
                 references, threads, shapes) for k, c in enumerate(chosen)]
        if ray_address is not None:
            from ..distributed import connect
            from .remote import judge, time_all

            references["calib"] = reference_outputs(model, calib, threads, shapes)
            ray = connect(ray_address)
            progress(f"[tune] {len(jobs)} candidates as Ray tasks")
            tried = judge(ray, chosen, [job[2] for job in jobs], model, calib, evaluation, min_cos, references,
                          shapes, progress)
            progress(f"[tune] timing in one task holding a whole node: {len(batches)} batch sizes x {rounds} rounds")
            tried, environment = time_all(ray, tried, batches, rounds, evaluation, threads, shapes, progress)
        else:
            tried = _search(jobs, deadline - reserve, skipped, progress)
            meeting = sorted((c for c in tried if c.meets and c.pipeline is not None and not c.simulated),
                             key=lambda c: c.probe_vs_ort_fp32, reverse=True)
            tried, environment = timed(tried, batches, rounds, str(evaluation), threads, progress,
                                       finalists=meeting[:FINALISTS], shapes=shapes)
        ok = [c for c in tried if c.meets and not c.error and c.pipeline is not None and c.timed and not c.simulated]
        winner = max(ok, key=lambda c: c.speed) if ok else None
        if winner is not None:
            _export(winner, stage)
        for c in tried:  # where the models will be once the staging folder is in place
            if c.model and Path(c.model).is_relative_to(stage):
                c.model = str(Path(out_dir) / Path(c.model).relative_to(stage))
        result = TuneResult(tried, winner, min_cos, environment, skipped)
        (stage / "tune.json").write_text(json.dumps(result.as_dict(), indent=2))
        (stage / "tune.html").write_text(render_html(result))
        if winner is None:
            _fail(tried, skipped, min_cos, budget_minutes, out_dir)
    return result


def _search(jobs: list, deadline: float, skipped: list[str], progress: Callable[[str], None]) -> list[Candidate]:
    """Steps 1-3 of the module doc for each job within ``deadline``; what was not tried is
    added to ``skipped`` with the reason."""
    tried: list[Candidate] = []
    costs: list[float] = []
    winner: Candidate | None = None
    base = 0.0  # the ORT original's probe, seconds
    for k, (c, model, path, calib, evaluation, min_cos, references, threads, shapes) in enumerate(jobs):
        left = deadline - time.monotonic()
        cost = (np.mean(costs) if costs else 0.0) * (SEARCH_COST if c.bounded_by else 1.0)
        if c.pipeline is not None and cost > left:
            skipped.append(f"{c.label} on {c.backend}: over the budget (not evaluated)")
            continue
        bound = next((o for o in tried if o.label == c.bounded_by and o.backend == c.backend), None)
        if winner is not None and bound is not None and bound.probe_vs_ort_fp32 <= winner.probe_vs_ort_fp32:
            skipped.append(f"{c.label} on {c.backend}: cannot beat the current winner ({winner.label} on "
                           f"{winner.backend}): {bound.label}, as fast as it can be, is no faster")
            continue
        progress(f"[tune] {k + 1}/{len(jobs)}: {c.label} on {c.backend} ({max(0.0, left) / 60:.1f} min left)")
        start = time.perf_counter()
        _built(c, model, path, calib, min_cos)
        if not c.error:
            try:
                seconds = 0.0 if c.simulated else probe(c, evaluation, threads, shapes)  # no speed to measure
                if c.pipeline is None and c.backend == "ort":
                    base = seconds
                c.probe_vs_ort_fp32 = base / seconds if base and seconds else 0.0
                _evaluate(c, evaluation, calib, references, min_cos, threads, winner, model, shapes)
            except Exception as exc:  # a candidate that cannot run is a row, not the end of tune
                if c.pipeline is None:
                    raise
                c.error = _reason(exc)
        c.build_s = time.perf_counter() - start
        if c.pipeline is not None:
            costs.append(c.build_s)
        faster = winner is None or c.probe_vs_ort_fp32 > winner.probe_vs_ort_fp32
        if c.meets and c.pipeline is not None and not c.simulated and faster:
            winner = c
        tried.append(c)
    return tried


def _evaluate(c: Candidate, evaluation, calib, references: dict, min_cos: float, threads,
              winner: Candidate | None, model, shapes: Shapes | None = None) -> None:
    """The proxy, then the full evaluation with its early stop (steps 2 and 3); sets
    ``eval_cos``, ``meets`` and ``evaluated``."""
    samples = read_info(evaluation)
    runner = judging_runner(c, threads)
    scores = []
    total = len(samples)
    for chunk, out, _ in infer_batches(runner, samples, min(EVAL_BATCH, PROXY_IMAGES), shapes):
        scores += [score(s.stem, references["eval"][s.stem], out[0][i]) for i, s in enumerate(chunk)]
        judged = EvalResult.from_scores(scores)
        scores_of(c, judged)
        mean = c.eval_mean
        done = len(scores)
        if done < total and c.pipeline is None:
            c.evaluated = f"proxy: {done} of {total} images (the baseline)"
            return
        if done >= PROXY_IMAGES and done < total and mean < min_cos - PROXY_SLACK:
            c.evaluated = f"proxy: {done} of {total} images, {mean:.4f}: under the bar by more than {PROXY_SLACK}"
            return
        if done >= PROXY_IMAGES and done < total and winner is not None and not c.simulated and \
                c.probe_vs_ort_fp32 <= winner.probe_vs_ort_fp32:
            c.evaluated = f"proxy: {done} of {total} images; no faster than {winner.label} in the quick timing"
            return
        if done < total and (mean * done + (total - done)) / total < min_cos:
            c.evaluated = f"stopped after {done} of {total} images: the mean can no longer reach {min_cos}"
            return
    c.evaluated = "full"
    c.meets = bool(c.eval_cos and c.eval_cos.mean >= min_cos)
    if c.meets:
        if "calib" not in references:
            references["calib"] = reference_outputs(model, calib, threads, shapes)
        c.calib_cos = _judge(c, calib, references["calib"], threads, shapes).judged


def _export(winner: Candidate, stage: Path) -> None:
    """The winner in its runtime's format (``best_ov/`` for an IR, else ``best.onnx``) and
    ``RUN.txt``, the command that runs it at the precision it was judged at."""
    if winner.model.endswith(".xml"):
        (stage / "best_ov").mkdir()
        for part in (".xml", ".bin"):
            shutil.copyfile(Path(winner.model).with_suffix(part), stage / "best_ov" / f"model{part}")
        written = "best_ov/model.xml"
    else:
        written = "best.onnx"
        shutil.copyfile(winner.model, stage / written)
    (stage / "RUN.txt").write_text(f"# {winner.label} on {winner.backend} ({winner.precision}), from the tune folder\n"
                                   f"{run_line(winner, written)}\n")


def _fail(tried: list[Candidate], skipped: list[str], min_cos: float, budget_minutes: float, out_dir) -> None:
    judged = [c for c in tried if c.eval_cos and not c.error and c.pipeline is not None]
    closest = max(judged, key=lambda c: c.eval_mean) if judged else None
    near = f"; closest: {closest.label} on {closest.backend} ({closest.eval_mean:.4f})" if closest else ""
    over = [note.split(": over the budget")[0] for note in skipped if ": over the budget" in note]
    if over and not judged:
        raise NumericCheckFailed(f"the budget of {budget_minutes:g} min ran out before any candidate was "
                                 f"evaluated (not evaluated: {'; '.join(over)}); raise --budget")
    unjudged = f"; the budget ran out before {len(over)} more were evaluated ({'; '.join(over)}): " \
               "raise --budget to try them" if over else ""
    raise NumericCheckFailed(f"no {'evaluated ' if over else ''}candidate meets mean per-pixel cosine "
                             f"{min_cos} on the evaluation set{near}{unjudged}; see {Path(out_dir) / 'tune.html'}")


def _fixing(model, shapes: Shapes) -> str:
    """``static-shape(shapes=...)`` for the inputs whose dynamic axes other than the batch
    ``shapes`` fixes ("" when none: the candidates need no fixing); the batch stays as declared
    (``?``), since tune times several batch sizes. Wrong names or sizes fail here, in one line."""
    session = backend_for("ort").load(model)
    ImageInput.of(session, shapes)
    fixed = {inp.name: [None, *shapes[inp.name][1:]] for inp in session.get_inputs()
             if inp.name in shapes and any(not (isinstance(d, int) and d > 0) for d in list(inp.shape)[1:])}
    return static_shape_spec(fixed) if fixed else ""
