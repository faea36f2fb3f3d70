"""The "IR after failure" instrument and crash reproducer, after MLIR's
``-mlir-print-ir-after-failure`` and ``-mlir-pass-pipeline-crash-reproducer``.

``DumpOnFailure(folder)`` does nothing while a run succeeds. When a pass raises or leaves an
invalid model (or the numeric check blames a pass), it writes to ``folder``:

- ``input.onnx``: the last good model, the one the failing pass received (verified);
- ``failed.onnx``: what the pass left, exported as far as it can be (unverified: it may be
  the invalid model itself), or the model the check refused; absent when nothing could be
  exported (a pass that broke the graph mid-edit);
- ``reproducer.json``: the error, the pass, and the pipeline that reproduces the failure on
  ``input.onnx`` (the failing pass alone, MLIR's local reproducer), the whole pipeline (which
  reproduces it on the original), and the ``cgsurg apply`` command.

A failure no pass is blamed for (the result refused by a target's lint or the check as a
whole) dumps the original as ``input.onnx``, the result as ``failed.onnx`` and the whole
pipeline. The folder is written whole or not at all (``modelio.staged_folder``). Writing the
dump never hides the run's own error: what goes wrong while dumping is kept in ``.error``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import onnx

from .errors import NumericCheckFailed, first_line
from .instruments import Instrument, PipelineRun
from .modelio import check_output_folder, save_model, staged_folder

REPRODUCER = "reproducer.json"


class DumpOnFailure(Instrument):
    needs_stages = False  # reads the stages only on failure (``PipelineRun.complete_stages``)

    def __init__(self, folder: str | os.PathLike):
        check_output_folder(folder)  # before any work: a dump that cannot be written is bad input
        self.folder = Path(folder)
        self.written: list[Path] = []
        self.error: str | None = None

    def before_pipeline(self, run: PipelineRun) -> None:
        self.written, self.error = [], None

    def after_pipeline_failed(self, run: PipelineRun, error: Exception) -> None:
        try:
            found = self._what(run, error)
            if found is not None:
                self._write(run, *found, error=error)
        except Exception as exc:  # noqa: BLE001 - a *_failed hook must not raise
            self.error = first_line(exc)

    def _what(self, run: PipelineRun, error: Exception) -> tuple[int | None, Any, Any, str] | None:
        """(index of the failing pass or None, last good model, failed model or None, pipeline
        that reproduces it on the last good model), or None when there is nothing to dump."""
        if run.failure is not None:
            k = run.failure.index
            return k, run.stages[k], run.failure.model(), str(run.passes[k])
        names = [p.name for p in run.passes]
        blamed = getattr(error, "pass_name", None) if isinstance(error, NumericCheckFailed) else None
        if blamed in names:
            run.complete_stages()
            k = _blamed_index(run, blamed)
            return k, run.stages[k], run.stages[k + 1], str(run.passes[k])
        if len(run.records) == len(run.passes) and run.passes:  # every pass ran: the result was refused
            run.complete_stages()
            return None, run.stages[0], run.stages[-1], _pipeline(run)
        return None

    def _write(self, run: PipelineRun, index: int | None, last_good: onnx.ModelProto,
               failed: onnx.ModelProto | None, pipeline: str, error: Exception) -> None:
        info = {"error": str(error), "error_type": type(error).__name__,
                "pass": None if index is None else run.passes[index].name,
                "pass_index": index, "pipeline": pipeline, "full_pipeline": _pipeline(run),
                "input": "input.onnx", "failed": "failed.onnx" if failed is not None else None,
                "command": f"cgsurg apply input.onnx -o out.onnx --passes '{pipeline}'"}
        with staged_folder(self.folder) as staging:
            save_model(last_good, staging / "input.onnx")
            if failed is not None:
                save_model(failed, staging / "failed.onnx")
            (staging / REPRODUCER).write_text(json.dumps(info, indent=2) + "\n")
            names = sorted(p.name for p in staging.iterdir())
        if failed is None:  # not one from an earlier dump, beside this one's input
            for stale in ("failed.onnx", "failed.onnx.data"):
                (self.folder / stale).unlink(missing_ok=True)
        self.written = [self.folder / name for name in names]


def _blamed_index(run: PipelineRun, name: str) -> int:
    """The pass the check blamed: of those named ``name``, the one whose own check failed."""
    indices = [k for k, p in enumerate(run.passes) if p.name == name and k < len(run.records)]
    failing = [k for k in indices if getattr(run.records[k].check, "ok", True) is False]
    return (failing or indices or [0])[0]


def _pipeline(run: PipelineRun) -> str:
    return ",".join(str(p) for p in run.passes)
