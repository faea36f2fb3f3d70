"""Layer 1: the pass infrastructure. Bounds, typed options, the pipeline grammar, the pass
base and rule base, analyses (shapes), the registry, instrumentation, the pass manager and model I/O. Imports
onnx, onnx-graphsurgeon and numpy only: never onnxruntime, torch or matplotlib."""

from .analysis import Analysis, AnalysisManager, Shapes, TensorType
from .base import IOAdapter, Match, NodeRewritePass, NoMatch, Pass, PassContext, PassResult
from .bounds import EXACT, Bound, cosine_bound
from .dump import DumpOnFailure
from .errors import CgsurgError, InputError, NumericCheckFailed, PassFailed
from .instruments import Failure, Instrument, PipelineRun
from .manager import PassManager
from .modelio import load_model, save_model
from .options import Option, at_least, between, cosine, not_empty
from .pipeline import PassSpec, Pipeline, format_pipeline, parse_pipeline
from .records import PassRecord, PipelineResult
from .registry import ENTRY_POINT_GROUP, available_passes, build_pipeline, get_pass, load_plugin, register_pass
from .verifier import StrictVerifier, Verifier

__all__ = ["Analysis", "AnalysisManager", "Shapes", "TensorType",
           "IOAdapter", "Match", "NodeRewritePass", "NoMatch", "Pass", "PassContext", "PassResult", "EXACT", "Bound",
           "cosine_bound", "CgsurgError", "InputError", "NumericCheckFailed", "PassFailed", "DumpOnFailure",
           "Failure", "Instrument", "PipelineRun", "PassManager", "PassRecord", "PipelineResult", "load_model",
           "save_model", "Option", "at_least", "between", "cosine", "not_empty", "PassSpec", "Pipeline",
           "format_pipeline", "parse_pipeline", "StrictVerifier", "Verifier",
           "ENTRY_POINT_GROUP", "available_passes", "build_pipeline", "get_pass", "load_plugin", "register_pass"]
