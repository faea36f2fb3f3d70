"""Layer 4: file-level entry points, the functions the CLI calls, usable from Python as they are.

``apply`` = load, build the pass manager with its instruments (the numeric checker, the
report), run, save. No special cases: everything a run measures or writes is an instrument.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .check.checker import CheckSettings, NumericChecker, compare_models
from .check.feeds import Feeds, file_feeds, random_feeds
from .check.layers import DEFAULT_ATOL, DEFAULT_CHUNK_BYTES, DEFAULT_RTOL, LayerDiff, compare_layers
from .check.metrics import Comparison
from .check.session import SessionCache, make_session
from .core.bounds import Bound
from .core.errors import InputError
from .core.instruments import Instrument
from .core.manager import PassManager, PipelineResult, collector_paused
from .core.modelio import check_output_folder, check_writable, load_model, same_file, save_model
from .core.registry import PipelineLike, load_plugin
from .services import OrtServices
from .targets import LintResult, get_target
from .targets.commands import CompileSettings
from .targets.rules import static_shape_spec
from .targets.steps import TargetLint, compile_step, with_preset

Shapes = Mapping[str, Sequence[int]]


@dataclass
class InputSettings:
    """What a run's numeric check and report run on, and what its passes calibrate with: the
    first ``samples`` samples of the info file ``data`` (default: the report's count, else 4),
    else the files of ``inputs_dir``, else seeded random inputs (``seed``); ``shapes`` fix the
    dynamic axes of the random inputs (with a target, the model too: ``static-shape``)."""

    data: str | os.PathLike | None = None
    samples: int | None = None
    shapes: Shapes = field(default_factory=dict)
    inputs_dir: str | os.PathLike | None = None
    seed: int = 0


@dataclass
class ReportSettings:
    """A per-pass report: where to write, what to evaluate on (default: the run's inputs), and
    the verdicts to apply."""

    out_dir: str | os.PathLike
    data: str | os.PathLike | None = None  # an info file of preprocessed samples (default: the run's)
    samples: int | None = None  # default: the run's (InputSettings.samples), else 4
    min_cos: float | None = None
    min_psnr: float | None = None
    baseline: str | os.PathLike | None = None
    baseline_cos_tol: float = 1e-4
    baseline_psnr_tol: float = 0.5
    bench: bool = False
    label: str | None = None  # how the report names the model (default: its path)


@dataclass(frozen=True)
class TargetSettings:
    """A compiler target (``ascend``, ``ascend:cann5``, ...; None: none): its preset, the
    ``lossy`` one on request, Ascend's ``aipp`` configuration, and the compile step's settings."""

    name: str | None = None
    lossy: bool = False
    aipp: bool = False
    compile: CompileSettings | None = None


# api.apply's keywords before the settings objects: accepted for one release, with a warning
_LEGACY = ("check_each", "shapes", "inputs_dir", "seed", "data", "samples", "min_cos", "lossy", "aipp",
           "compile_settings")


def apply(
    model_path: str | os.PathLike,
    output_path: str | os.PathLike,
    pipeline: PipelineLike | None,
    *,
    check: CheckSettings | bool = True,
    inputs: InputSettings | None = None,
    report: ReportSettings | None = None,
    target: TargetSettings | str | None = None,
    plugins: Iterable[str | os.PathLike] = (),
    instruments: Sequence[Instrument] = (),
    in_place: bool = False,
    warn: Callable[[str], None] = lambda m: None,
    **legacy: Any,
) -> PipelineResult:
    """Rewrite ``model_path`` with ``pipeline`` and write ``output_path``.

    Nothing is written unless every pass succeeds and every instrument is satisfied (the
    numeric check; with ``report``, its gates and baseline comparison). The report is written
    on success, and on a failed verdict (a pass, the check, a gate) once the original could be
    measured; a bad input leaves nothing. The input file is never modified unless
    ``in_place`` is set and ``output_path`` names it. ``warn`` hears about skipped input files.

    ``target`` (``TargetSettings``, or its name: ``ascend``, ``ascend:cann5``, ...): its preset
    (``lossy`` variant on request) runs before ``pipeline``, after ``static-shape`` fixes the
    inputs at ``inputs.shapes`` when given; the result must lint without errors
    (``targets.TargetCheckFailed``, findings in ``result.lint``), and the compile
    command is written beside the output (``result.compile``; ``aipp``: Ascend's
    ``OUT.aipp.cfg`` too), valid for the written model; its ``compile`` settings choose
    OpenVINO's weights (float32 by default) and TensorRT's min/opt/max shapes.

    ``check`` (False: none; True: ``CheckSettings()``) judges the result against the run's
    bound, whose cosine test is replaced by ``check.min_cos`` when given, else by the target's
    accuracy bar (``Target.min_cos``, the vendor's 0.99 mean per-pixel cosine) when there is a
    target; it runs on ``inputs`` (``result.check.inputs`` says which); its input fields are
    filled from ``inputs``. The old keywords (``data``, ``samples``, ``shapes``, ``inputs_dir``,
    ``seed``, ``check_each``, ``min_cos``, ``lossy``, ``aipp``, ``compile_settings``) still work
    for one release, with a ``DeprecationWarning``.
    """

    from .stages.dataset import read_info

    checked, inputs, target = _settings(check, inputs, report, target, legacy)
    for plugin in plugins:
        load_plugin(plugin)
    chosen, pipeline = with_preset(target.name, pipeline, target.lossy, target.aipp, target.compile, inputs.shapes)
    if same_file(model_path, output_path) and not in_place:
        raise InputError(f"output {output_path} is the input file; allow overwriting it explicitly (in place)")
    check_writable(output_path)
    data, inputs_dir = inputs.data, inputs.inputs_dir
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"the inputs folder {inputs_dir} is not a directory")
    if inputs.samples is not None and inputs.samples < 1:
        raise InputError(f"the check needs at least 1 sample, got {inputs.samples}")
    if data is not None:
        read_info(data)  # calibration data too, not only the report's: a bad one fails before any work
    if report is not None:
        report = replace(report, data=report.data if report.data is not None else data,
                         samples=report.samples if report.samples is not None else inputs.samples or 4)
        if report.samples is not None and report.samples < 1:
            raise InputError(f"the report needs at least 1 sample, got {report.samples}")
        check_output_folder(report.out_dir)
        if report.data is not None and report.data != data:
            read_info(report.data)
    seen: set[str] = set()

    def warn_once(message: str) -> None:  # the check and the report read the same folder
        if message not in seen:
            seen.add(message)
            warn(message)

    given = checked or CheckSettings()
    min_cos = given.min_cos
    if min_cos is not None and not -1 <= min_cos <= 1:
        raise InputError(f"min_cos must be in [-1, 1], got {min_cos}")
    settings = replace(given, shapes=dict(inputs.shapes), inputs_dir=inputs_dir, seed=inputs.seed, warn=warn_once)
    if min_cos is not None:
        settings.bar = settings.bar or "the bar given, min_cos"
    elif chosen is not None:
        settings.min_cos, settings.bar = chosen.min_cos, f"target {chosen}'s bar"
    manager = PassManager(pipeline, data=str(data) if data else None,  # names and options checked here
                          services=OrtServices())
    model = load_model(model_path)
    sessions = SessionCache()  # one per model for the whole run: check, report and feeds share them
    sessions.of(model, keep=checked is not None)  # the original: every comparison of the check reads it
    if data is not None and inputs_dir is None and checked is not None:  # the check runs on the real samples too
        samples = inputs.samples or (report.samples if report is not None and report.samples else 4)
        settings.feeds = _info_feeds(sessions.session(model), data, samples)[0]
        count = len(settings.feeds)
        settings.label = f"{count} sample{'s' if count != 1 else ''} of {data}"
    chain: list[Instrument] = [NumericChecker(settings, sessions=sessions)] if checked is not None else []
    if report is not None:
        chain.append(_report(model, report.label or str(model_path), report, settings, sessions,
                             bar=report.min_cos if report.min_cos is not None else settings.min_cos))
    manager.instruments.items.extend([*chain, *instruments, *([TargetLint(chosen)] if chosen else [])])
    with collector_paused():  # the run, and the compile step and the save after it
        result = manager.run(model)
        step = (compile_step(chosen, result.model, output_path, target.aipp, target.compile)
                if chosen else None)
        save_model(result.model, output_path)
    if step is not None:
        step.write()
        result.compile = step
    return result


def _settings(check: CheckSettings | bool, inputs: InputSettings | None, report: ReportSettings | None,
              target: TargetSettings | str | None,
              legacy: dict[str, Any]) -> tuple[CheckSettings | None, InputSettings, TargetSettings]:
    """The settings objects of an ``apply`` call, the old keywords folded in (with a warning)."""
    unknown = [k for k in legacy if k not in _LEGACY]
    if unknown:
        raise TypeError(f"apply() got an unexpected keyword argument '{unknown[0]}'")
    if isinstance(check, CheckSettings) and (check.shapes or check.inputs_dir is not None or check.seed
                                             or check.feeds is not None):
        raise InputError("give the check's inputs as inputs=InputSettings(...), not in CheckSettings")
    if isinstance(target, str):
        target = TargetSettings(target)
    target = target or TargetSettings()
    if legacy:
        warnings.warn(f"apply({', '.join(f'{k}=' for k in legacy)}) is deprecated and goes in the next release: "
                      "give inputs=InputSettings(...), check=CheckSettings(...), target=TargetSettings(...)",
                      DeprecationWarning, stacklevel=3)
        old = {"shapes": "shapes", "inputs_dir": "inputs_dir", "seed": "seed", "data": "data", "samples": "samples"}
        moved = {new: legacy[k] for k, new in old.items() if k in legacy}
        if moved:
            if inputs is not None:
                raise TypeError(f"give {', '.join(moved)} in inputs=InputSettings(...), not both")
            moved["shapes"] = dict(moved.get("shapes") or {})
            inputs = InputSettings(**moved)
        if check and ("check_each" in legacy or "min_cos" in legacy):
            base = check if isinstance(check, CheckSettings) else CheckSettings()
            check = replace(base, each_pass=bool(legacy.get("check_each", base.each_pass)),
                            min_cos=legacy.get("min_cos", base.min_cos))
        target = replace(target, lossy=legacy.get("lossy", target.lossy), aipp=legacy.get("aipp", target.aipp),
                         compile=legacy.get("compile_settings", target.compile))
    chosen = CheckSettings() if check is True else check or None
    return chosen, inputs or InputSettings(), target


def _report(model, model_path: str, report: ReportSettings, settings: CheckSettings, sessions: SessionCache,
            bar: float | None = None) -> Instrument:
    """The report instrument with its evaluation inputs: info-file samples, a folder, or random."""
    from .report.instrument import AccuracyReport
    from .report.verdicts import Gates

    samples = report.samples or 4

    session = sessions.session(model)
    names: list[str] | None = None
    source = ""
    if report.data:
        feeds, names = _info_feeds(session, report.data, samples)
        kind, source = "info", Path(report.data).name
    elif settings.inputs_dir:
        feeds, kind = file_feeds(session, settings.inputs_dir, settings.warn, settings.shapes)[:samples], "folder"
    else:
        feeds = random_feeds(session, settings.shapes, settings.seed, samples=samples)
        kind = "random"
    return AccuracyReport(feeds, kind, report.out_dir, model_path=model_path,
                          gates=Gates(min_cos=report.min_cos, min_psnr=report.min_psnr), baseline=report.baseline,
                          baseline_cos_tol=report.baseline_cos_tol, baseline_psnr_tol=report.baseline_psnr_tol,
                          bench=report.bench, names=names, source=source, bar=bar, sessions=sessions)


def _info_feeds(model, info: str | os.PathLike, samples: int) -> tuple[list[Feeds], list[str]]:
    from .stages.dataset import info_feeds

    return info_feeds(model, info, samples)


def lint(model_path: str | os.PathLike, target: str, *, plugins: Iterable[str | os.PathLike] = (),
         shapes: Shapes | None = None, data: str | os.PathLike | None = None, precision: str | None = None,
         samples: int = 4) -> LintResult:
    """What the compiler named by ``target`` (``ascend``, ``ascend:cann5``, ...) will refuse
    (errors) or accept slowly or with other numbers (warnings) in the model. With ``shapes``,
    the model as ``apply --target --input-shape`` compiles it: ``static-shape`` applied first
    (in memory). With ``data`` (an info file), ``LintResult.prediction``: the accuracy predicted
    on its first ``samples`` samples at the precision the compiler computes in (its default, or
    ``precision``: fp32/fp16/bf16 or one of its options, e.g. ``must_keep_origin_dtype``); a
    prediction under the target's bar or with an overflow is a warning."""
    from .targets.base import WARNING, Finding
    from .targets.precision import predict

    for plugin in plugins:
        load_plugin(plugin)
    chosen = get_target(target)  # an unknown target or version fails before the model is read
    chosen_precision = chosen.precision(precision)
    manager = PassManager(static_shape_spec(shapes)) if shapes else None  # options checked before reading
    model = load_model(model_path)
    model = manager.run(model).model if manager else model
    result = chosen.lint(model)
    if data is not None:
        feeds, _ = _info_feeds(model, data, samples)
        label = f"{len(feeds)} sample(s) of {os.fspath(data)}"
        result.prediction = prediction = predict(model, chosen, chosen_precision, feeds, label)
        over = [t for t in prediction.worst if t.overflow]
        if over or (prediction.cos_mean is not None and not prediction.meets):
            what = (f"tensor '{over[0].tensor}' reaches {over[0].peak:,.0f}, past float16's 65,504" if over else
                    f"predicted mean per-pixel cosine {prediction.cos_mean:.4f} < {prediction.bar}")
            node = next((n for n in model.graph.node if n.name == (over[0].node if over else prediction.keep[0])),
                        None) if (over or prediction.keep) else None
            result.findings.append(Finding("precision", WARNING, f"at {chosen_precision.name} "
                                           f"({chosen_precision.how}): {what}", node.name if node else "",
                                           node.op_type if node else "", "fp16(auto=true)"))
    return result


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


def diff_layers(model_a: str | os.PathLike, model_b: str | os.PathLike, *, shapes: Shapes | None = None,
                inputs_dir: str | os.PathLike | None = None, seed: int = 0, backend: str = "ort",
                data: str | os.PathLike | None = None, samples: int = 4, atol: float = DEFAULT_ATOL,
                rtol: float = DEFAULT_RTOL, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                warn: Callable[[str], None] = lambda m: None) -> LayerDiff:
    """Every intermediate tensor of ``model_a`` against its counterpart in ``model_b`` (matched
    by name, else by producing node; ``check.layers``) on the inputs ``diff`` takes, and the
    first that leaves ``|b - a| <= atol + rtol·|a|``."""
    from .check.backends import backend_for

    if data is not None and inputs_dir is not None:
        raise InputError("give --data INFO or --inputs DIR, not both")
    runtime = backend_for(backend, optimize=False)
    a = load_model(model_a)
    if data is not None:
        feeds = _info_feeds(a, data, samples)[0]
    else:
        session = make_session(a)
        feeds = file_feeds(session, inputs_dir, warn, shapes) if inputs_dir else random_feeds(session, shapes, seed)
    b = model_b if Path(model_b).suffix.lower() == ".xml" else load_model(model_b)  # an IR: OpenVINO reads it
    result = compare_layers(a, b, feeds, atol=atol, rtol=rtol, chunk_bytes=chunk_bytes,
                            backend=None if runtime.name == "ort" else runtime, warn=warn)
    result.inputs = CheckSettings(inputs_dir=inputs_dir, seed=seed, feeds=feeds if data else None,
                                  label=f"{len(feeds)} sample(s) of {data}" if data else "").describe_inputs(len(feeds))
    return result
