"""Layer 4: file-level entry points, the functions the CLI calls, usable from Python as they are.

``apply`` = load, build the pass manager with its instruments (the numeric checker, the
report), run, save. No special cases: everything a run measures or writes is an instrument.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .check.checker import CheckSettings, NumericChecker, compare_models
from .check.feeds import Feeds, file_feeds, random_feeds
from .check.metrics import Comparison
from .check.session import make_session
from .core.bounds import Bound
from .core.errors import InputError
from .core.instruments import Instrument
from .core.manager import PassManager, PipelineResult
from .core.modelio import check_output_folder, check_writable, load_model, same_file, save_model
from .core.registry import PipelineLike, load_plugin
from .services import OrtServices
from .targets import LintResult, get_target
from .targets.commands import CompileSettings
from .targets.rules import static_shape_spec
from .targets.steps import TargetLint, compile_step, with_preset

Shapes = Mapping[str, Sequence[int]]


@dataclass
class ReportSettings:
    """A per-pass report: where to write, what to evaluate on, and the verdicts to apply."""

    out_dir: str | os.PathLike
    data: str | os.PathLike | None = None  # an info file of preprocessed samples
    samples: int = 4
    min_cos: float | None = None
    min_psnr: float | None = None
    baseline: str | os.PathLike | None = None
    baseline_cos_tol: float = 1e-4
    baseline_psnr_tol: float = 0.5
    bench: bool = False
    label: str | None = None  # how the report names the model (default: its path)


def apply(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    pipeline: PipelineLike | None,
    *,
    check: bool = True,
    check_each: bool = False,
    shapes: Shapes | None = None,
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    in_place: bool = False,
    plugins: Iterable[str | os.PathLike] = (),
    report: ReportSettings | None = None,
    data: str | os.PathLike | None = None,
    instruments: Sequence[Instrument] = (),
    warn: Callable[[str], None] = lambda m: None,
    target: str | None = None,
    lossy: bool = False,
    aipp: bool = False,
    compile_settings: CompileSettings | None = None,
    min_cos: float | None = None,
    samples: int | None = None,
) -> PipelineResult:
    """Rewrite ``model_path`` with ``pipeline`` and write ``output_path``.

    Nothing is written unless every pass succeeds and every instrument is satisfied (the
    numeric check; with ``report``, its gates and baseline comparison). The report is written
    on success, and on a failed verdict (a pass, the check, a gate) once the original could be
    measured; a bad input leaves nothing. The input file is never modified unless
    ``in_place`` is set and ``output_path`` names it. ``warn`` hears about skipped input files.

    ``target`` (``ascend``, ``ascend:cann5``, ...): its preset (``lossy`` variant on request) runs
    before ``pipeline``, after ``static-shape`` fixes the inputs at ``shapes`` when given; the
    result must lint without errors (``targets.TargetCheckFailed``, findings in
    ``result.extras["lint"]``), and the compile command is written beside the output
    (``result.extras["compile"]``; ``aipp``: Ascend's ``OUT.aipp.cfg`` too), valid for the
    written model; ``compile_settings`` choose OpenVINO's weights (float32 by default) and
    TensorRT's min/opt/max shapes.

    The numeric check judges the result against the run's bound, whose cosine test is replaced
    by ``min_cos`` when given, else by the target's accuracy bar (``Target.min_cos``, the
    vendor's 0.99 mean per-pixel cosine) when there is a target; it runs on ``data``'s first
    ``samples`` (default: the report's, else 4) when given, else on ``inputs_dir``,
    else on one seeded random input (``result.check.inputs`` says which).
    """

    from .stages.dataset import read_info

    for plugin in plugins:
        load_plugin(plugin)
    chosen, pipeline = with_preset(target, pipeline, lossy, aipp, compile_settings, shapes)
    if same_file(model_path, output_path) and not in_place:
        raise InputError(f"output {output_path} is the input file; allow overwriting it explicitly (in place)")
    check_writable(output_path)
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"the inputs folder {inputs_dir} is not a directory")
    if data is not None:
        read_info(data)  # calibration data too, not only the report's: a bad one fails before any work
    if report is not None:
        if report.samples < 1:
            raise InputError(f"the report needs at least 1 sample, got {report.samples}")
        check_output_folder(report.out_dir)
        if report.data is not None and report.data != data:
            read_info(report.data)
    seen: set[str] = set()

    def warn_once(message: str) -> None:  # the check and the report read the same folder
        if message not in seen:
            seen.add(message)
            warn(message)

    if min_cos is not None and not -1 <= min_cos <= 1:
        raise InputError(f"min_cos must be in [-1, 1], got {min_cos}")
    settings = CheckSettings(shapes=dict(shapes or {}), inputs_dir=inputs_dir, seed=seed, warn=warn_once)
    if min_cos is not None:
        settings.min_cos, settings.bar = min_cos, "the bar given, min_cos"
    elif chosen is not None:
        settings.min_cos, settings.bar = chosen.min_cos, f"target {chosen}'s bar"
    manager = PassManager(pipeline, data=str(data) if data else None,  # names and options checked here
                          services=OrtServices())
    model = load_model(model_path)
    if data is not None and inputs_dir is None and check:  # the check runs on the real samples too
        if samples is None:
            samples = report.samples if report is not None else 4
        settings.feeds = _info_feeds(model, data, samples)[0]
        count = len(settings.feeds)
        settings.label = f"{count} sample{'s' if count != 1 else ''} of {data}"
    chain: list[Instrument] = [NumericChecker(settings, each_pass=check_each)] if check else []
    if report is not None:
        chain.append(_report(model, report.label or str(model_path), report, settings,
                             bar=report.min_cos if report.min_cos is not None else settings.min_cos))
    manager.instruments.items.extend([*chain, *instruments, *([TargetLint(chosen)] if chosen else [])])
    # The collector would walk hundreds of thousands of onnx-graphsurgeon objects again and
    # again while they are built (issue 19: 27.8 s -> 19.1 s at 100k nodes); nothing here makes
    # reference cycles worth collecting before the run ends.
    paused = gc.isenabled()
    gc.disable()
    try:
        result = manager.run(model)
        step = compile_step(chosen, result.model, output_path, aipp, compile_settings) if chosen else None
        save_model(result.model, output_path)
    finally:
        if paused:
            gc.enable()
    if step is not None:
        step.write()
        result.extras["compile"] = step
    return result


def _report(model, model_path: str, report: ReportSettings, settings: CheckSettings,
            bar: float | None = None) -> Instrument:
    """The report instrument with its evaluation inputs: info-file samples, a folder, or random."""
    from .report import AccuracyReport, Gates

    session = make_session(model)
    names: list[str] | None = None
    source = ""
    if report.data:
        feeds, names = _info_feeds(model, report.data, report.samples)
        kind, source = "info", Path(report.data).name
    elif settings.inputs_dir:
        feeds, kind = file_feeds(session, settings.inputs_dir, settings.warn)[: report.samples], "folder"
    else:
        feeds = random_feeds(session, settings.shapes, settings.seed, samples=report.samples)
        kind = "random"
    return AccuracyReport(feeds, kind, report.out_dir, model_path=model_path,
                          gates=Gates(min_cos=report.min_cos, min_psnr=report.min_psnr), baseline=report.baseline,
                          baseline_cos_tol=report.baseline_cos_tol, baseline_psnr_tol=report.baseline_psnr_tol,
                          bench=report.bench, names=names, source=source, bar=bar)


def _info_feeds(model, info: str | os.PathLike, samples: int) -> tuple[list[Feeds], list[str]]:
    from .stages.dataset import info_feeds

    return info_feeds(model, info, samples)


def lint(model_path: str | os.PathLike, target: str, *, plugins: Iterable[str | os.PathLike] = (),
         shapes: Shapes | None = None) -> LintResult:
    """What the compiler named by ``target`` (``ascend``, ``ascend:cann5``, ...) will refuse
    (errors) or accept slowly or with other numbers (warnings) in the model. With ``shapes``,
    the model as ``apply --target --input-shape`` compiles it: ``static-shape`` applied first
    (in memory)."""
    for plugin in plugins:
        load_plugin(plugin)
    chosen = get_target(target)  # an unknown target or version fails before the model is read
    manager = PassManager(static_shape_spec(shapes)) if shapes else None  # options checked before reading
    model = load_model(model_path)
    return chosen.lint(manager.run(model).model if manager else model)


def diff(
    model_a: str | os.PathLike,
    model_b: str | os.PathLike,
    *,
    shapes: Shapes | None = None,
    inputs_dir: str | os.PathLike | None = None,
    seed: int = 0,
    bound: Bound | None = None,
    warn: Callable[[str], None] = lambda m: None,
    backend: str = "ort",
    data: str | os.PathLike | None = None,
    samples: int = 4,
) -> Comparison:
    """Compare two models' outputs on the same inputs (A is the reference, in ONNX Runtime; B
    there too, or on ``backend`` ``openvino``, which also reads an OpenVINO IR ``.xml``): the
    first ``samples`` samples of the info file ``data``, the files of ``inputs_dir``, or seeded
    random inputs."""
    from .check.backends import backend_for

    if data is not None and inputs_dir is not None:
        raise InputError("give --data INFO or --inputs DIR, not both")
    runtime = backend_for(backend, optimize=False)
    a = load_model(model_a)
    b = load_model(model_b) if runtime.name == "ort" else model_b
    feeds = _info_feeds(a, data, samples)[0] if data is not None else None
    return compare_models(a, b, feeds=feeds, shapes=shapes, seed=seed, bound=bound, inputs_dir=inputs_dir,
                          warn=warn, backend=None if runtime.name == "ort" else runtime)
