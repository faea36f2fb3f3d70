"""compile: an ONNX model through a real compiler, here OpenVINO's model converter.

``openvino.convert_model`` reads the ONNX file and ``openvino.save_model`` writes the IR,
``DIR/model.xml`` (the graph) and ``DIR/model.bin`` (the weights), which the openvino backend
(``check.backends``) runs like an ONNX file. Weights stay float32 by default (``ovc`` compresses
them to float16; ``fp16=True`` does the same: half the size, decompressed to float32 on the CPU).

The IR is checked before it is put in place: it runs on OpenVINO against the ONNX model on
ONNX Runtime on the same inputs (seeded random ones, or a folder of real ones), and a cosine
below ``min_cos`` (default 0.9999 for float32 weights, 0.999 for float16) fails the command with
nothing written. The folder is staged: a failure leaves nothing new behind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..check.backends import OpenVinoBackend, import_openvino, openvino_reason
from ..check.checker import compare_models
from ..check.metrics import Comparison
from ..core.bounds import Bound
from ..core.errors import InputError, NumericCheckFailed
from ..core.modelio import check_output_folder, load_model, staged_folder, within

TARGETS = ("openvino",)
MIN_COS = {False: 0.9999, True: 0.999}  # by fp16


@dataclass
class CompileResult:
    target: str
    model: str
    xml: Path
    bin: Path
    fp16: bool
    compiler: str  # the compiler and its version
    seconds: float  # conversion and saving, without the check
    min_cos: float  # the check's bar
    check: Comparison | None

    def as_dict(self) -> dict:
        return {"target": self.target, "model": self.model, "xml": str(self.xml), "bin": str(self.bin),
                "fp16": self.fp16, "compiler": self.compiler, "seconds": self.seconds,
                "min_cos": self.min_cos, "check": self.check.as_dict() if self.check else None}


def compile_model(model: str | os.PathLike, out_dir: str | os.PathLike, target: str = "openvino", *,
                  fp16: bool = False, check: bool = True, min_cos: float | None = None,
                  shapes: Mapping[str, Sequence[int]] | None = None, inputs_dir: str | os.PathLike | None = None,
                  seed: int = 0, threads: int | None = None,
                  warn: Callable[[str], None] = lambda m: None) -> CompileResult:
    """Compile the ONNX ``model`` for ``target`` into ``out_dir`` (``model.xml``, ``model.bin``);
    ``warn`` hears about files of ``inputs_dir`` that could not be read."""
    if target not in TARGETS:
        raise InputError(f"cannot compile for '{target}': the compilers cgsurg runs are {', '.join(TARGETS)} "
                         "(other targets' compilers run on their own machines)")
    source = Path(model)
    proto = load_model(source)  # an ONNX model, checked: one-line errors before the compiler sees it
    out = Path(out_dir)
    if within(source, out):
        raise InputError(f"the output folder {out} is or contains the model ({source}); choose another")
    check_output_folder(out)
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"the inputs folder {inputs_dir} is not a directory")
    openvino = import_openvino()
    bound = Bound(min_cos=MIN_COS[fp16] if min_cos is None else min_cos)
    start = time.perf_counter()
    try:
        converted = openvino.convert_model(str(source))
    except Exception as exc:
        raise InputError(f"OpenVINO cannot convert {source}: {openvino_reason(exc)}") from None
    with staged_folder(out) as staging:  # nothing is put in place unless the IR is written and checked
        try:
            openvino.save_model(converted, str(staging / "model.xml"), compress_to_fp16=fp16)
        except Exception as exc:
            raise InputError(f"OpenVINO cannot save the IR: {openvino_reason(exc)}") from None
        seconds = time.perf_counter() - start
        comparison = None
        if check:
            comparison = compare_models(proto, staging / "model.xml", shapes=shapes, seed=seed, bound=bound,
                                        inputs_dir=inputs_dir, warn=warn, backend=OpenVinoBackend(threads=threads))
            if not comparison.ok:
                raise NumericCheckFailed(f"the compiled model differs from ONNX Runtime: {comparison.violations[0]}")
    return CompileResult(target=target, model=str(source), xml=out / "model.xml", bin=out / "model.bin", fp16=fp16,
                         compiler=f"openvino {openvino.__version__.split('-')[0]}", seconds=seconds,
                         min_cos=bound.min_cos or 0.0, check=comparison)
