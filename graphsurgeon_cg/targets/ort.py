"""ort: ONNX Runtime, which loads the ONNX file itself: no compile step.

Release ``1`` (onnxruntime >= 1.18, as cgsurg requires): every ai.onnx operator of the onnx
release it is built with; 1.18 runs opsets up to 21 (above: a warning, later releases run
more). What it gets wrong is a reflect Pad at least as wide as its axis: invalid ONNX, for
which it returned zeros or garbage (issues 8265, 16401, 23878) until a 2026 fix made CPU and
CUDA refuse it.
"""

from __future__ import annotations

from .base import Rule, Target, register_target
from .rules import OpsetRange, ReflectPadSize


@register_target
class OnnxRuntime(Target):
    name = "ort"
    summary = "ONNX Runtime (no compile step)"
    versions = {"1": "onnxruntime 1.18 and later"}
    default_version = "1"

    def rules(self) -> list[Rule]:
        return [self._opsets(), ReflectPadSize()]

    def _opsets(self) -> OpsetRange:
        newer = "supported by later onnxruntime releases only: check yours"
        return OpsetRange(7, 21, "onnxruntime 1.18", above=newer)
