"""cgsurg: pluggable ONNX graph surgery for image generators, every rewrite checked numerically."""

from .api import apply, diff
from .architectures import GeneratorSpec, ResnetGenerator, UnetGenerator, build_generator
from .errors import CgsurgError, InputError, NumericCheckFailed, PassFailed
from .manager import CheckSettings, PassManager, PassRecord, PipelineResult
from .modelio import load_model, save_model
from .numeric import EXACT, Bound, Comparison, compare_models, pixel_cosine
from .pipeline import PassSpec, format_pipeline, parse_pipeline
from .registry import Option, Pass, PassContext, PassResult, available_passes, load_plugin, register_pass

__version__ = "0.1.0"


def export_checkpoint(*args, **kwargs):
    """Export a CycleGAN/pix2pix checkpoint to ONNX (see ``graphsurgeon_cg.export``; needs torch)."""
    from .export import export_checkpoint as _export

    return _export(*args, **kwargs)


__all__ = [
    "apply", "diff", "export_checkpoint", "GeneratorSpec", "ResnetGenerator", "UnetGenerator", "build_generator", "CgsurgError", "InputError", "NumericCheckFailed", "PassFailed", "CheckSettings",
    "PassManager", "PassRecord", "PipelineResult", "load_model", "save_model", "EXACT", "Bound",
    "Comparison", "compare_models", "pixel_cosine", "PassSpec", "format_pipeline", "parse_pipeline",
    "Option", "Pass", "PassContext", "PassResult", "available_passes", "load_plugin", "register_pass",
]
