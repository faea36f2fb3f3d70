"""cgsurg: pluggable ONNX graph surgery for image generators, every rewrite checked numerically.

Importing this package loads the pass infrastructure only (``core``): writing or registering
a pass costs no onnxruntime, torch or matplotlib import. The file-level API (``apply``,
``diff``, ``export_checkpoint``) and the checker load on first use.
"""

from __future__ import annotations

from typing import Any

from .core import (
    EXACT,
    Analysis,
    Bound,
    CgsurgError,
    InputError,
    Instrument,
    IOAdapter,
    Match,
    NodeRewritePass,
    NoMatch,
    NumericCheckFailed,
    Option,
    Pass,
    PassContext,
    PassFailed,
    PassManager,
    PassRecord,
    PassResult,
    PassSpec,
    Pipeline,
    PipelineResult,
    PipelineRun,
    Shapes,
    TensorType,
    at_least,
    available_passes,
    between,
    build_pipeline,
    cosine,
    cosine_bound,
    format_pipeline,
    load_model,
    load_plugin,
    parse_pipeline,
    register_pass,
    save_model,
)

__version__ = "0.2.0"

_LAZY = {
    "apply": "api", "diff": "api", "ReportSettings": "api", "InputSettings": "api", "TargetSettings": "api",
    "export_checkpoint": "export", "GeneratorSpec": "export.architectures", "build_generator": "export.architectures",
    "CheckSettings": "check", "NumericChecker": "check", "Comparison": "check", "compare_models": "check",
    "pixel_cosine": "check",
    "Report": "report.schema", "PassReport": "report.schema", "MetricSummary": "report.schema",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'graphsurgeon_cg' has no attribute {name!r}")


__all__ = ["EXACT", "Analysis", "Shapes", "TensorType",
           "Bound", "CgsurgError", "InputError", "Instrument", "IOAdapter", "Match", "NodeRewritePass",
           "NoMatch", "NumericCheckFailed", "Option", "Pass", "PassContext", "PassFailed", "PassManager", "PassRecord",
           "PassResult", "PassSpec", "Pipeline", "PipelineResult", "PipelineRun", "at_least", "available_passes",
           "between",
           "build_pipeline", "cosine", "cosine_bound", "format_pipeline", "load_model", "load_plugin",
           "parse_pipeline", "register_pass", "save_model", *_LAZY]
