"""The whole vendor flow from one config file.

``run_flow`` runs export (when given a checkpoint) -> apply with a per-pass report -> prep ->
infer (original and rewritten) -> eval -> bench, writes everything under one folder with
``summary.json`` and ``summary.md``, and fails when a gate fails.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..check.metrics import json_safe
from ..core.errors import CgsurgError, InputError, NumericCheckFailed
from ..core.modelio import staged_folder
from ..core.records import PipelineResult, ReportOutcome
from ..report.schema import Report


@dataclass
class FlowConfig:
    """The keys of a ``cgsurg run`` config (YAML or JSON); paths are relative to the file.
    ``pipeline``, ``target``, ``lossy``, ``data`` and ``input_shape`` are ``cgsurg apply``'s
    ``--passes``, ``--target``, ``--lossy``, ``--data`` and ``--input-shape``; the flow's own
    samples are ``dataset`` (images, prepped to the model's input) or, without it, ``data``."""

    pipeline: str | None = None  # passes, run after the target's preset when there is one
    dataset: str | None = None  # a folder of images
    model: str | None = None  # an ONNX model ...
    checkpoint: str | None = None  # ... or a generator checkpoint to export first
    export: dict = field(default_factory=dict)  # export options: size, opset, arch, ngf, norm, ...
    output: str = "cgsurg-run"
    batch_sizes: list = field(default_factory=lambda: [1, 16])
    infer_batch: int = 16
    bench_rounds: int = 20
    bench_warmup: int = 3
    samples: int = 4
    min_cos: float | None = None  # gate on the report (each pass) and on eval (mean pixel cosine)
    min_psnr: float | None = None
    check: bool = True
    target: str | None = None  # a compiler target: its preset, lint and compile step
    lossy: bool = False  # the target's lossy preset
    data: str | None = None  # an info file: apply's samples (calibration, report, check)
    input_shape: dict = field(default_factory=dict)  # input name -> shape, for dynamic axes

    @staticmethod
    def load(path: str | os.PathLike) -> FlowConfig:
        import yaml

        path = Path(path)
        if not path.is_file():
            raise InputError(f"no such config file: {path}")
        try:
            data = yaml.safe_load(path.read_text())
        except UnicodeDecodeError:
            raise InputError(f"{path} is not YAML or JSON: not UTF-8 text") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path} is not YAML or JSON: {_yaml_error(exc)}") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: the config must be a mapping of keys to values")
        config = FlowConfig.from_dict(data, str(path))
        base = path.resolve().parent
        for key in ("dataset", "model", "checkpoint", "output", "data"):
            value = getattr(config, key)
            if value is not None and not os.path.isabs(value):
                setattr(config, key, str(base / value))
        return config

    @staticmethod
    def from_dict(data: dict, where: str = "config") -> FlowConfig:
        names = {f.name for f in fields(FlowConfig)}
        export = {} if data.get("export") is None else data["export"]
        if not isinstance(export, dict):
            raise InputError(f"{where}: 'export' must be a mapping of export options")
        data = {**data, "export": export} if "export" in data else data
        unknown = sorted(str(k) for k in data if k not in names)
        unknown_export = sorted(str(k) for k in export if k not in export_keys())
        if unknown or unknown_export:  # every one at once, not the first
            keys = [*unknown, *(f"export.{k}" for k in unknown_export)]
            valid = [f"valid keys: {', '.join(sorted(names))}"] if unknown else []
            if unknown_export:
                valid.append(f"export options: {', '.join(sorted(export_keys()))}")
            raise InputError(f"{where}: unknown key{'s' if len(keys) > 1 else ''} "
                             f"{', '.join(repr(k) for k in keys)} ({'; '.join(valid)})")
        if not data.get("pipeline") and not data.get("target"):
            raise InputError(f"{where}: give 'pipeline', 'target', or both")
        if not data.get("dataset") and not data.get("data"):
            raise InputError(f"{where}: 'dataset' (a folder of images) or 'data' (an info file) is required")
        if bool(data.get("model")) == bool(data.get("checkpoint")):
            raise InputError(f"{where}: give exactly one of 'model' (ONNX) and 'checkpoint' (.pth)")
        config = FlowConfig(**data)
        if not isinstance(config.batch_sizes, list) or not all(isinstance(b, int) and b > 0
                                                               for b in config.batch_sizes):
            raise InputError(f"{where}: 'batch_sizes' must be a list of positive integers")
        config.input_shape = _shapes(config.input_shape, where)
        return config


def _shapes(value: Any, where: str) -> dict[str, list[int]]:
    """``input_shape``: a mapping ``{x: [1, 3, 640, 640]}``, or ``x:1,3,640,640`` strings (one or a list)."""
    items = value if isinstance(value, dict) else dict(
        str(v).rpartition(":")[::2] for v in ([value] if isinstance(value, str) else value or []))
    shapes = {}
    for name, dims in items.items():
        try:
            shape = [int(d) for d in (dims.split(",") if isinstance(dims, str) else dims)]
        except (TypeError, ValueError):
            shape = []
        if not name or not shape or min(shape) < 1:
            raise InputError(f"{where}: 'input_shape' must give positive dims per input, e.g. "
                             f"{{x: [1, 3, 640, 640]}} or x:1,3,640,640; got {name}: {dims}")
        shapes[str(name)] = shape
    return shapes


def export_keys() -> set[str]:
    """The options of ``export_checkpoint`` that the config's ``export:`` may set."""
    import inspect

    from ..export import export_checkpoint

    return {name for name, p in inspect.signature(export_checkpoint).parameters.items()
            if p.kind == p.KEYWORD_ONLY and name != "notice"}


def _yaml_error(exc: Exception) -> str:
    """A YAML error as 'line L, column C: what is wrong'."""
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark is not None else problem


def explains(error: BaseException) -> bool:
    """A failed verdict (a pass, the check, a gate, an export that does not match) keeps the
    run's folder, whose summary says which; bad input and Ctrl-C leave nothing."""
    return isinstance(error, CgsurgError) and not isinstance(error, InputError)


def check_flow(config: FlowConfig, out: Path) -> None:
    """Everything the flow needs, checked before any work: the pipeline's passes and options,
    the dataset, the model or checkpoint, the export options, the output folder."""
    from ..core.modelio import check_output_folder, within
    from ..core.registry import build_pipeline
    from ..stages.dataset import read_info
    from ..targets.steps import with_preset

    if bool(config.model) == bool(config.checkpoint):
        raise InputError("the flow config gives neither or both of 'model' (ONNX) and 'checkpoint' (.pth)")
    build_pipeline(with_preset(config.target, config.pipeline, config.lossy)[1])
    if not config.dataset and not config.data:
        raise InputError("the flow config gives neither 'dataset' (images) nor 'data' (an info file)")
    if config.dataset and not Path(config.dataset).is_dir():
        raise InputError(f"the dataset {config.dataset} is not a folder")
    if config.data:
        read_info(config.data)
    source = config.model or config.checkpoint
    if not Path(str(source)).is_file():
        raise InputError(f"no such {'model' if config.model else 'checkpoint'} file: {source}")
    if config.checkpoint:
        from ..export import check_export_options

        unknown = sorted(set(config.export) - export_keys())
        if unknown:
            raise InputError(f"unknown export option{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}")
        check_export_options(**{k: v for k, v in config.export.items() if k in ("opset", "batch", "size")})
    for what, path in (("dataset", config.dataset), ("model", config.model), ("checkpoint", config.checkpoint),
                       ("data", config.data)):
        if path and within(path, out):
            raise InputError(f"the output folder {out} is or contains the {what} {path}; choose another")
    check_output_folder(out)


def run_flow(config: FlowConfig, output: str | os.PathLike | None = None,
             echo: Callable[[str], None] = print) -> dict:
    """Run the flow; returns the summary (also written to ``summary.json``/``summary.md``).

    Everything is written in a staging folder beside the output folder and put in place at the
    end: a run that fails on bad input (or is interrupted) leaves nothing; one that fails a
    verdict (a pass, the check, a gate) leaves its folder with the summary that says which."""
    out = Path(output or config.output)
    check_flow(config, out)
    with staged_folder(out, keep=explains) as work:
        return _run_flow(config, work, out, echo)


def _run_flow(config: FlowConfig, work: Path, out: Path, echo: Callable[[str], None]) -> dict:
    """The flow, written in ``work``, which becomes ``out``: paths are reported as they will be."""
    from .. import api
    from ..check.feeds import ImageInput
    from ..check.session import make_session
    from ..stages.evaluate import evaluate_dirs
    from ..stages.infer import infer
    from ..stages.prep import prep

    def shown(path: str | os.PathLike | None) -> str | None:
        if path is None:
            return None
        path = Path(path)
        return str(out / path.relative_to(work)) if path.is_relative_to(work) else str(path)

    config_shown = {**asdict(config), **{k: shown(getattr(config, k)) for k in ("dataset", "model", "checkpoint")}}
    summary: dict = {"config": {**config_shown, "output": str(out)}, "output": str(out), "gates": {}, "failed": None}
    try:
        model = Path(config.model) if config.model else None
        if config.checkpoint:
            from ..export import export_checkpoint

            echo(f"[export] {shown(config.checkpoint)}")
            model = export_checkpoint(config.checkpoint, work / "model.onnx", notice=echo, **config.export)
        if model is None:  # a FlowConfig built directly, not through from_dict's check
            raise InputError("the flow config gives neither 'model' (ONNX) nor 'checkpoint' (.pth)")
        summary["model"] = shown(model)
        image = ImageInput.of(make_session(model))
        dtype = "uint8" if image.dtype.name == "uint8" else "float32"
        if config.dataset:
            echo(f"[prep] {shown(config.dataset)}")
            prepped = prep(config.dataset, work / "data", size=image.sample_shape[-1], dtype=dtype,
                           warn=echo, progress=False)
            summary["prep"] = {"info": shown(prepped.info), "samples": prepped.written,
                               "skipped": [(shown(f), why) for f, why in prepped.skipped]}
            samples = prepped.info
        else:
            samples = Path(str(config.data))
        apply_data = config.data or samples
        echo(f"[apply] {' + '.join(filter(None, (config.target and f'target {config.target}', config.pipeline)))}")
        rewritten = work / "model_rewritten.onnx"
        report = api.ReportSettings(work / "report", data=apply_data, samples=config.samples,
                                    min_cos=config.min_cos, min_psnr=config.min_psnr, label=shown(model))
        result = None
        try:
            result = api.apply(model, rewritten, config.pipeline, check=config.check, report=report,
                               inputs=api.InputSettings(data=apply_data, shapes=dict(config.input_shape or {})),
                               target=api.TargetSettings(config.target, lossy=config.lossy), warn=echo)
        finally:
            written = report_of(result, work / "report")
            if written is not None:
                summary["report"] = str(out / "report" / "report.html")
                summary["passes"] = [p.as_dict() for p in written.passes]
        summary["gates"]["report"] = "passed" if config.min_cos or config.min_psnr else "none"
        summary["pipeline"] = result.pipeline
        for name, path in (("original", model), ("rewritten", rewritten)):
            echo(f"[infer] {name}")
            infer(path, samples, work / f"infer_{name}", batch=config.infer_batch, progress=False)
        echo("[eval] rewritten vs original")
        evaluation = evaluate_dirs(work / "infer_original", work / "infer_rewritten")
        (work / "eval.json").write_text(json.dumps(json_safe(evaluation.as_dict()), indent=2, allow_nan=False) + "\n")
        summary["eval"] = evaluation.summary
        summary["bench"] = bench_all(work, {"original": model, "rewritten": rewritten}, config.batch_sizes,
                                      config.bench_rounds, config.bench_warmup, shown, echo)
        if config.min_cos is not None:
            try:
                evaluation.gate(config.min_cos)
            except NumericCheckFailed as exc:
                summary["gates"]["eval"] = "failed"
                raise NumericCheckFailed(f"eval gate: {exc}") from None
            summary["gates"]["eval"] = "passed"
    except CgsurgError as exc:
        summary["failed"] = str(exc)
        raise
    finally:
        _write_summary(work, summary)
    return summary


def report_of(result: PipelineResult | None, folder: Path) -> ReportOutcome | None:
    """The run's report: handed back by a successful apply; after a failed one (which hands back
    nothing), the report its failed verdict left in ``folder``, read back."""
    if result is not None:
        return result.report
    return Report.load(folder) if (folder / "report.json").exists() else None


def bench_all(work: Path, models: dict, batch_sizes, rounds: int, warmup: int, shown: Callable[[Path], Any],
               echo: Callable[[str], None]) -> dict:
    """``bench`` of each model, also written to ``work/bench.json``."""
    from ..stages.bench import bench

    results = {}
    for name, path in models.items():
        echo(f"[bench] {name}")
        results[name] = {**bench(path, batch_sizes, rounds=rounds, warmup=warmup).as_dict(), "model": shown(path)}
    (work / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _write_summary(out: Path, summary: dict) -> None:
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=2, default=str) + "\n")
    title = summary.get("pipeline") or summary["config"]["pipeline"] or f"target {summary['config']['target']}"
    lines = [f"# cgsurg run: {title}", ""]
    if summary.get("failed"):
        lines += [f"**Failed:** {summary['failed']}", ""]
    if "eval" in summary:
        judged = summary["eval"]["judged_by"]
        pc = summary["eval"][judged]
        name = "vendor per-pixel cosine" if judged == "pixel_cos" else "flat cosine (one-channel output)"
        lines.append(f"- accuracy ({name}, rewritten vs original): mean {pc['mean']:.6f}, "
                     f"min {pc['min']:.6f} over {summary['eval']['images']} images")
    for name, result in summary.get("bench", {}).items():
        rates = ", ".join(f"batch {r['batch']}: {r['throughput']:.2f} img/s" for r in result["results"])
        lines.append(f"- throughput {name}: {rates}")
    if "report" in summary:
        lines.append(f"- per-pass report: {summary['report']}")
    (out / "summary.md").write_text("\n".join(lines) + "\n")

