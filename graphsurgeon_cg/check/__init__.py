"""Layer 2: numbers. The one ORT session factory, inputs, the one metric set, and the
numeric checker (an instrument). Depends on ``core`` only."""

from .checker import CheckSettings, NumericChecker, compare_models
from .feeds import ImageInput, file_feeds, random_feeds
from .layers import LayerDiff, TensorRow, compare_layers
from .metrics import Comparison, Metrics, compare_outputs, flat_cosine, json_safe, meets, pixel_cosine, psnr, score
from .session import make_session, run_session

__all__ = ["CheckSettings", "NumericChecker", "compare_models", "ImageInput", "file_feeds", "random_feeds",
           "LayerDiff", "TensorRow", "compare_layers",
           "Comparison", "Metrics", "compare_outputs", "flat_cosine", "json_safe", "meets", "pixel_cosine",
           "psnr", "score", "make_session", "run_session"]
