"""What ``apply --target`` adds to a run: the target's preset in front of the user's passes, a
lint of the result (an instrument: errors stop the run before anything is written), and the
compile step written next to the output."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from ..core.errors import InputError
from ..core.instruments import Instrument, PipelineRun
from ..core.pipeline import Pipeline
from ..core.records import PipelineResult
from ..core.registry import PipelineLike
from .base import Target, TargetCheckFailed, get_target
from .commands import Command, CompileSettings, ModelIO, aipp_config
from .rules import static_shape_spec


def with_preset(spec: str | None, pipeline: PipelineLike | None, lossy: bool = False, aipp: bool = False,
                settings: CompileSettings | None = None,
                shapes: Mapping[str, Sequence[int]] | None = None) -> tuple[Target | None, PipelineLike]:
    """The target named by ``spec`` and the pipeline to run: its preset, then ``pipeline``;
    ``settings`` are checked against the target before any work. With ``shapes``
    (``--input-shape``), ``static-shape`` first: the model is compiled at them."""
    if spec is None:
        if lossy or aipp:
            raise InputError(f"{'lossy' if lossy else 'aipp'} needs a target")
        if settings is not None and settings != CompileSettings():
            raise InputError("compile settings (weights, min/opt/max shapes) need a target")
        if not pipeline:
            raise InputError("give a pipeline, a target, or both")
        return None, pipeline
    target = get_target(spec)
    if aipp and target.tool != "atc":
        raise InputError(f"AIPP is Ascend's preprocessing; target {target} has none")
    if settings is not None:
        check_settings(target, settings)
    preset = target.preset_pipeline(lossy)
    if shapes:
        preset = Pipeline(preset.name, static_shape_spec(shapes), preset)
    if not pipeline:
        return target, preset
    if isinstance(pipeline, (str, Pipeline)):
        return target, preset.then(pipeline)
    return target, [preset, *pipeline]


def check_settings(target: Target, settings: CompileSettings) -> None:
    """Settings another compiler's: refused, rather than silently left out of the command."""
    if settings.weights != "fp32" and target.tool != "ovc":
        raise InputError(f"weights {settings.weights} is OpenVINO's weight compression; target {target} has none")
    if settings.profile_given and target.tool != "trtexec":
        raise InputError(f"min/opt/max shapes are TensorRT's optimisation profile; target {target} has none"
                         + (" (ATC varies the batch only: fix the other axes with --input-shape)"
                            if target.tool == "atc" else ""))


class TargetLint(Instrument):
    """Lints the pipeline's result for the target; errors fail the run (exit 3) with the findings."""

    needs_stages = False  # the result only

    def __init__(self, target: Target):
        self.target = target

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        lint = self.target.lint(result.model)
        result.lint = lint
        if lint.errors:
            raise TargetCheckFailed(lint)


@dataclass
class CompileStep:
    """The compile command for the written model, as printed (paths as given) and as scripted
    (next to the model), with its side files."""

    command: Command | None
    files: dict[Path, str] = field(default_factory=dict)

    def write(self) -> list[Path]:
        for path, text in self.files.items():
            try:  # atomically, like the model: never a half-written script
                with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
                    tmp.write(text)
                os.chmod(tmp.name, 0o755 if path.suffix == ".sh" else 0o644)
                os.replace(tmp.name, path)
            except OSError as exc:
                raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
        return list(self.files)

    def as_dict(self) -> dict:
        return {"tool": self.command.tool if self.command else None,
                "command": self.command.line if self.command else None, "files": [str(p) for p in self.files]}


def compile_step(target: Target, model: onnx.ModelProto, output: str | os.PathLike, aipp: bool = False,
                 settings: CompileSettings | None = None) -> CompileStep:
    """The command for ``model`` once written to ``output``, and the files to write beside it:
    ``OUT.<tool>.sh`` (its comments name that compiler's options only) and, with ``aipp``,
    ``OUT.aipp.cfg``. An InputError when the compiler cannot take the model as it is."""
    out = Path(output)
    io = ModelIO.of(model)
    files: dict[Path, str] = {}
    extra: dict[str, str] = {}
    if aipp:
        cfg = out.with_suffix(".aipp.cfg")
        files[cfg] = aipp_config(io)
        extra["aipp"] = str(cfg)
    command = target.command(io, str(out), extra, settings)
    if command is not None:
        local = target.command(io, out.name, {k: Path(v).name for k, v in extra.items()}, settings)
        assert local is not None
        files[out.with_suffix(f".{command.tool}.sh")] = local.script(f"written by cgsurg apply --target {target}: "
                                                                      f"{command.tool} compiles {out.name}")
    return CompileStep(command, files)
