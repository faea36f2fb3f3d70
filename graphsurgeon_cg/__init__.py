"""cgsurg: pluggable ONNX graph surgery for image generators, every rewrite checked numerically."""

from .api import apply, diff
from .errors import CgsurgError, InputError, NumericCheckFailed, PassFailed
from .manager import CheckSettings, PassManager, PassRecord, PipelineResult
from .modelio import load_model, save_model
from .numeric import EXACT, Bound, Comparison, compare_models, pixel_cosine
from .pipeline import PassSpec, format_pipeline, parse_pipeline
from .registry import Option, Pass, PassContext, PassResult, available_passes, load_plugin, register_pass

__version__ = "0.1.0"

__all__ = [
    "apply", "diff", "CgsurgError", "InputError", "NumericCheckFailed", "PassFailed", "CheckSettings",
    "PassManager", "PassRecord", "PipelineResult", "load_model", "save_model", "EXACT", "Bound",
    "Comparison", "compare_models", "pixel_cosine", "PassSpec", "format_pipeline", "parse_pipeline",
    "Option", "Pass", "PassContext", "PassResult", "available_passes", "load_plugin", "register_pass",
]
