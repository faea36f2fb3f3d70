"""compile: an ONNX model through a real compiler, here OpenVINO's model converter.

``openvino.convert_model`` reads the ONNX file and ``openvino.save_model`` writes the IR,
``DIR/model.xml`` (the graph) and ``DIR/model.bin`` (the weights), which the openvino backend
(``check.backends``) runs like an ONNX file. Weights stay float32 by default, as in the ovc
script ``apply --target openvino`` writes (``--compress_to_fp16=False``; ovc alone would
compress them); ``weights="fp16"`` compresses them: half the size, decompressed to float32 on
the CPU.

The IR is checked before it is put in place: it runs on OpenVINO against the ONNX model on
ONNX Runtime on the same inputs (seeded random ones, or a folder of real ones), and a cosine
below ``min_cos`` (default 0.9999 for float32 weights, 0.999 for float16) fails the command with
nothing written. The folder is staged: a failure leaves nothing new behind.

``int8=INFO`` quantises the converted model with NNCF (``nncf.quantize``, post-training,
calibrated on the info file's samples) before it is saved; ``keep_float`` leaves layers in
float through NNCF's ignored scope: ``first-last`` (the first and last convolution),
``ConvTranspose``/``Conv`` (every layer of that ONNX type) or OpenVINO layer names. The
default, first-last and ConvTranspose, is what measured best on a generator (see ``tune``).
The check's bar is then 0.95 by default (int8 is lossy; judge it on real images with ``eval``).
"""

from __future__ import annotations

import contextlib
import io
import logging
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
from ..targets.commands import WEIGHTS
from .dataset import info_feeds, read_info

TARGETS = ("openvino",)
MIN_COS = {False: 0.9999, True: 0.999}  # by fp16
INT8_MIN_COS = 0.95
OV_TYPES = {"Conv": "Convolution", "ConvTranspose": "ConvolutionBackpropData"}
INT8_KEEP_FLOAT = ("first-last", "ConvTranspose")
INT8_AUTO_MIN_COS = 0.99
INT8_OPTIONS = ("fast_bias_correction", "channel_alignment")


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
                "fp16": self.fp16, "weights": WEIGHTS[self.fp16], "compiler": self.compiler, "seconds": self.seconds,
                "min_cos": self.min_cos, "check": self.check.as_dict() if self.check else None}


def compile_model(model: str | os.PathLike, out_dir: str | os.PathLike, target: str = "openvino", *,
                  weights: str = WEIGHTS[0], fp16: bool = False, check: bool = True, min_cos: float | None = None,
                  shapes: Mapping[str, Sequence[int]] | None = None, inputs_dir: str | os.PathLike | None = None,
                  seed: int = 0, threads: int | None = None, int8: bool | str | os.PathLike | None = None,
                  keep_float: Sequence[str] = INT8_KEEP_FLOAT, samples: int = 16,
                  warn: Callable[[str], None] = lambda m: None, data: str | os.PathLike | None = None,
                  int8_options: Mapping[str, bool] | None = None) -> CompileResult:
    """Compile the ONNX ``model`` for ``target`` into ``out_dir`` (``model.xml``, ``model.bin``),
    weights ``weights`` (fp32 or fp16; ``fp16=True``, the older spelling, is fp16); ``warn``
    hears about files of ``inputs_dir`` that could not be read. ``data``: an info file whose
    first ``samples`` samples the check runs on (instead of ``inputs_dir`` or random inputs)
    and, with ``int8=True``, the calibration samples (``int8=INFO``, the older form, names them
    itself)."""
    if int8 is True:
        if data is None:
            raise InputError("int8 needs calibration samples: give --data INFO")
        int8 = data
    elif int8 is False:
        int8 = None
    if data is not None and inputs_dir is not None:
        raise InputError("give --data INFO or --inputs DIR, not both")
    if target not in TARGETS:
        raise InputError(f"cannot compile for '{target}': the compilers cgsurg runs are {', '.join(TARGETS)} "
                         "(other targets' compilers run on their own machines)")
    if weights not in WEIGHTS:
        raise InputError(f"weights '{weights}': expected one of {', '.join(WEIGHTS)}")
    fp16 = fp16 or weights == "fp16"
    source = Path(model)
    proto = load_model(source)  # an ONNX model, checked: one-line errors before the compiler sees it
    out = Path(out_dir)
    if within(source, out):
        raise InputError(f"the output folder {out} is or contains the model ({source}); choose another")
    check_output_folder(out)
    if inputs_dir is not None and not Path(inputs_dir).is_dir():
        raise InputError(f"the inputs folder {inputs_dir} is not a directory")
    if int8 is not None:
        calibration = read_info(int8)  # before any work
    feeds = info_feeds(proto, data, samples)[0] if data is not None and check else None
    openvino = import_openvino()
    default = INT8_MIN_COS if int8 is not None else MIN_COS[fp16]
    bound = Bound(min_cos=default if min_cos is None else min_cos)
    start = time.perf_counter()
    try:
        converted = openvino.convert_model(str(source))
    except Exception as exc:
        raise InputError(f"OpenVINO cannot convert {source}: {openvino_reason(exc)}") from None
    if int8 is not None:
        converted = quantize_int8(converted, calibration[:samples], keep_float, options=int8_options,
                                  min_cos=INT8_AUTO_MIN_COS if min_cos is None else min_cos)
    with staged_folder(out) as staging:  # nothing is put in place unless the IR is written and checked
        try:
            openvino.save_model(converted, str(staging / "model.xml"), compress_to_fp16=fp16)
        except Exception as exc:
            raise InputError(f"OpenVINO cannot save the IR: {openvino_reason(exc)}") from None
        seconds = time.perf_counter() - start
        comparison = None
        if check:
            comparison = compare_models(proto, staging / "model.xml", feeds=feeds, shapes=shapes, seed=seed,
                                        bound=bound,
                                        inputs_dir=inputs_dir, warn=warn, backend=OpenVinoBackend(threads=threads))
            if not comparison.ok:
                raise NumericCheckFailed(f"the compiled model differs from ONNX Runtime: {comparison.violations[0]}")
    return CompileResult(target=target, model=str(source), xml=out / "model.xml", bin=out / "model.bin", fp16=fp16,
                         compiler=f"openvino {openvino.__version__.split('-')[0]}", seconds=seconds,
                         min_cos=bound.min_cos or 0.0, check=comparison)


def quantize_int8(model, samples: list, keep_float: Sequence[str] = INT8_KEEP_FLOAT, *,
                  options: Mapping[str, bool] | None = None, min_cos: float = INT8_AUTO_MIN_COS):
    """The OpenVINO ``model`` quantised to int8 by NNCF on ``samples`` (info-file samples),
    with ``keep_float`` (see the module docstring) left in float; ``auto`` in it: NNCF's
    accuracy control to ``min_cos``."""
    from .dataset import load_sample

    try:
        import nncf
    except ImportError:
        raise InputError("int8 for OpenVINO needs NNCF: pip install 'cgsurg[openvino]'") from None
    unknown = sorted(set(options or {}) - set(INT8_OPTIONS))
    if unknown:
        raise InputError(f"int8 option '{unknown[0]}': expected {', '.join(INT8_OPTIONS)}")
    options = {"fast_bias_correction": True, "channel_alignment": False, **(options or {})}
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in OV_TYPES.values()]
    names = {op.get_friendly_name() for op in convs}
    types, layers = [], []
    for item in keep_float:
        if item == "first-last":
            layers += [convs[0].get_friendly_name(), convs[-1].get_friendly_name()] if len(convs) > 2 else []
        elif item in OV_TYPES:
            types.append(OV_TYPES[item])
        elif item in names or item == "auto":
            layers += [item] if item != "auto" else []
        else:
            raise InputError(f"keep-float '{item}' is none of first-last, auto, {', '.join(OV_TYPES)} or a "
                             f"convolution of the model (e.g. {sorted(names)[0] if names else 'none'})")
    inputs = model.inputs
    if len(inputs) != 1:
        raise InputError(f"int8 calibration feeds one image input; the model has {len(inputs)}")
    data = [load_sample(s)[None] for s in samples]
    advanced = nncf.AdvancedQuantizationParameters(disable_channel_alignment=not options["channel_alignment"])
    common = {"subset_size": len(data), "fast_bias_correction": options["fast_bias_correction"],
              "ignored_scope": nncf.IgnoredScope(names=layers, types=types, validate=False),
              "advanced_parameters": advanced}
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)  # NNCF reports each step at INFO and draws progress bars
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if "auto" in keep_float:
                return _accuracy_controlled(nncf, model, data, min_cos, common)
            return nncf.quantize(model, nncf.Dataset(data), **common)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"NNCF cannot quantise the model: {openvino_reason(exc)}") from None
    finally:
        logger.setLevel(level)


def _accuracy_controlled(nncf, model, data: list, min_cos: float, common: dict):
    """``nncf.quantize_with_accuracy_control`` judged by the vendor metric on the calibration
    samples: each item is (input, the float model's first output); the metric of the float
    model is 1 by definition, so the allowed drop is ``1 - min_cos``."""
    import numpy as np

    from ..check.metrics import pixel_cosine

    compiled = import_openvino().Core().compile_model(model.clone(), "CPU", OpenVinoBackend().properties())
    request = compiled.create_infer_request()
    items = [(x, np.array(request.infer([x])[compiled.outputs[0]])) for x in data]

    def validate(compiled, validation) -> tuple[float, list[float]]:
        request = compiled.create_infer_request()
        per_sample = []
        for x, ref in validation:
            out = np.asarray(request.infer([x])[compiled.outputs[0]])
            cos = pixel_cosine(ref, out)
            per_sample.append(float(cos if cos is not None else np.dot(ref.ravel(), out.ravel()) /
                                    max(np.linalg.norm(ref) * np.linalg.norm(out), 1e-12)))
        return float(np.mean(per_sample)), per_sample

    restorer = nncf.AdvancedAccuracyRestorerParameters(ranking_subset_size=min(len(items), 6), max_num_iterations=8)
    dataset = nncf.Dataset(items, lambda item: item[0])
    return nncf.quantize_with_accuracy_control(
        model, dataset, dataset, validate, max_drop=1 - min_cos, drop_type=nncf.DropType.ABSOLUTE,
        subset_size=common["subset_size"], fast_bias_correction=common["fast_bias_correction"],
        ignored_scope=common["ignored_scope"], advanced_quantization_parameters=common["advanced_parameters"],
        advanced_accuracy_restorer_parameters=restorer)
