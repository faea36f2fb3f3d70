"""File-level entry points: the functions the CLI calls, usable from Python as they are."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import CgsurgError, InputError, NumericCheckFailed
from .manager import CheckSettings, PassManager, PipelineResult
from .modelio import check_writable, load_model, same_file, save_model
from .numeric import Bound, Comparison, compare_models, file_feeds, make_session, parse_input_shapes, random_feeds
from .registry import load_plugin


@dataclass
class ReportSettings:
    """``apply --report``: where to write, what to evaluate on, and the verdicts to apply."""

    out_dir: str | os.PathLike
    data: str | os.PathLike | None = None  # an info file of preprocessed samples
    samples: int = 4
    min_cos: float | None = None
    min_psnr: float | None = None
    baseline: str | os.PathLike | None = None
    baseline_cos_tol: float = 1e-4
    baseline_psnr_tol: float = 0.5
    bench: bool = False


def apply(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    pipeline: str | Sequence,
    *,
    check: bool = True,
    check_each: bool = False,
    input_shapes: Iterable[str] = (),
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    in_place: bool = False,
    plugins: Iterable[str | os.PathLike] = (),
    report: ReportSettings | None = None,
    data: str | os.PathLike | None = None,
) -> PipelineResult:
    """Rewrite ``model_path`` with ``pipeline`` and write ``output_path``.

    Nothing is written unless every pass succeeds and the numeric check (and, with ``report``,
    its gates and baseline comparison) passes; the report itself is written in every case.
    The input file is never modified unless ``in_place`` is set and ``output_path`` names it.
    """
    for plugin in plugins:
        load_plugin(plugin)
    if same_file(model_path, output_path) and not in_place:
        raise InputError(f"output {output_path} is the input file; pass --in-place to overwrite it")
    check_writable(output_path)
    manager = PassManager(pipeline, check=_settings(check, input_shapes, inputs_dir, seed), check_each=check_each,
                          data=str(data) if data else None)
    model = load_model(model_path)
    reporter = _reporter(model, report, input_shapes, inputs_dir, seed) if report else None
    if reporter is not None:
        manager.instruments.append(reporter)
    try:
        result = manager.run(model)
    except CgsurgError as exc:
        if reporter is not None:
            reporter.write(report.out_dir, str(model_path), manager.pipeline, error=str(exc))
        raise
    if reporter is not None:
        failure = reporter.gate_failure(_gates(report))
        regressions = reporter.compare_baseline(report.baseline, report.baseline_cos_tol,
                                                report.baseline_psnr_tol) if report.baseline else []
        if regressions and not failure:
            failure = f"accuracy regressed against the baseline after pass {regressions[0]}"
        result.report_dir = reporter.write(report.out_dir, str(model_path), manager.pipeline, error=failure,
                                           baseline=str(report.baseline) if report.baseline else None)
        if failure:
            raise NumericCheckFailed(failure)
    save_model(result.model, output_path)
    return result


def _gates(report: ReportSettings):
    from .report import Gates

    return Gates(min_cos=report.min_cos, min_psnr=report.min_psnr)


def _reporter(model, report: ReportSettings, input_shapes, inputs_dir, seed: int):
    """The report instrument with its evaluation inputs: info-file samples, a folder, or random."""
    from .dataset import load_sample, read_info
    from .report import AccuracyReport

    if report.samples < 1:
        raise InputError(f"--samples must be at least 1, got {report.samples}")
    session = make_session(model)
    if report.data:
        dtype = np.float32 if "float" in session.get_inputs()[0].type else np.uint8
        feeds = [{session.get_inputs()[0].name: load_sample(s)[None].astype(dtype)}
                 for s in read_info(report.data)[: report.samples]]
        kind = "info"
    elif inputs_dir:
        feeds, kind = file_feeds(session, inputs_dir)[: report.samples], "folder"
    else:
        feeds = random_feeds(session, parse_input_shapes(input_shapes), seed, samples=report.samples)
        kind = "random"
    return AccuracyReport(model, feeds, kind, bench=report.bench)


def diff(
    model_a: str | os.PathLike,
    model_b: str | os.PathLike,
    *,
    input_shapes: Iterable[str] = (),
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    bound: Bound | None = None,
) -> Comparison:
    """Compare two models' outputs on the same inputs (A is the reference)."""
    a, b = load_model(model_a), load_model(model_b)
    return compare_models(a, b, shapes=parse_input_shapes(input_shapes), seed=seed, bound=bound,
                          inputs_dir=str(inputs_dir) if inputs_dir else None)


def _settings(check: bool, input_shapes: Iterable[str], inputs_dir, seed: int) -> CheckSettings | None:
    if not check:
        return None
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"--inputs {inputs_dir} is not a directory")
    return CheckSettings(shapes=parse_input_shapes(input_shapes),
                         inputs_dir=str(inputs_dir) if inputs_dir else None, seed=seed)
