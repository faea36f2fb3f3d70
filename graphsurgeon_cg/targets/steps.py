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

from ..core.base import Pass
from ..core.errors import InputError
from ..core.instruments import Instrument, PipelineRun
from ..core.pipeline import PassSpec, parse_pipeline
from ..core.records import PipelineResult
from .base import Target, TargetCheckFailed, get_target
from .commands import Command, ModelIO, aipp_config
from .rules import static_shape_spec

Pipeline = str | Sequence[PassSpec | Pass]


def with_preset(spec: str | None, pipeline: Pipeline | None, lossy: bool = False, aipp: bool = False,
                shapes: Mapping[str, Sequence[int]] | None = None) -> tuple[Target | None, Pipeline]:
    """The target named by ``spec`` and the pipeline to run: its preset, then ``pipeline``.
    With ``shapes`` (``--input-shape``), ``static-shape`` first: the model is compiled at them."""
    if spec is None:
        if lossy or aipp:
            raise InputError(f"{'lossy' if lossy else 'aipp'} needs a target")
        if not pipeline:
            raise InputError("give a pipeline, a target, or both")
        return None, pipeline
    target = get_target(spec)
    if aipp and target.tool != "atc":
        raise InputError(f"AIPP is Ascend's preprocessing; target {target} has none")
    preset = target.preset(lossy)
    if shapes:
        preset = f"{static_shape_spec(shapes)},{preset}"
    if not pipeline:
        return target, preset
    if isinstance(pipeline, str):
        return target, f"{preset},{pipeline}"
    return target, [*parse_pipeline(preset), *pipeline]


class TargetLint(Instrument):
    """Lints the pipeline's result for the target; errors fail the run (exit 3) with the findings."""

    needs_stages = False  # the result only

    def __init__(self, target: Target):
        self.target = target

    def after_pipeline(self, run: PipelineRun, result: PipelineResult) -> None:
        lint = self.target.lint(result.model)
        result.extras["lint"] = lint
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


def compile_step(target: Target, model: onnx.ModelProto, output: str | os.PathLike, aipp: bool = False) -> CompileStep:
    """The command for ``model`` once written to ``output``, and the files to write beside it:
    ``OUT.<tool>.sh`` and, with ``aipp``, ``OUT.aipp.cfg``."""
    out = Path(output)
    io = ModelIO.of(model)
    files: dict[Path, str] = {}
    extra: dict[str, str] = {}
    if aipp:
        cfg = out.with_suffix(".aipp.cfg")
        files[cfg] = aipp_config(io)
        extra["aipp"] = str(cfg)
    command = target.command(io, str(out), extra)
    if command is not None:
        local = target.command(io, out.name, {k: Path(v).name for k, v in extra.items()})
        assert local is not None
        files[out.with_suffix(f".{command.tool}.sh")] = local.script(f"cgsurg apply --target {target}: compile "
                                                                      f"{out.name} (edit --soc_version and the like "
                                                                      "for your hardware)")
    return CompileStep(command, files)
