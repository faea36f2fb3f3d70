"""int8: static int8 quantisation of Conv/ConvTranspose with onnxruntime.quantization. Lossy.

On a CPU with int8 dot-product instructions (VNNI) this is the one rewrite that roughly
doubles the generator's throughput (measured here: 3.5 -> 7.5-8 images/s at batch 1 for the
reference-size CycleGAN). Weights are quantised per output channel (int8), activations per
tensor (uint8, asymmetric) with ranges calibrated on real preprocessed images: the pass
option ``data=INFO`` or ``apply --data INFO``; keep calibration and evaluation images apart.
Calibration ``method`` minmax, percentile (default: clips rare outliers, measured best here)
or entropy. Format QDQ by default (QuantizeLinear/DequantizeLinear pairs that ORT fuses into
integer kernels and that TensorRT and OpenVINO also read; QOperator measured no faster on
ORT CPU). Per-channel QDQ needs opset 13: the model is upgraded first when older. The first
and last convolutions stay float by default (``keep_first_last``): they are the most
sensitive and the cheapest; ``keep_float=[node,...]`` leaves more in float (mixed precision).
Every graph input is fed during calibration: each float input that takes the info file's
images (N x the samples' shape) gets the same sample; any other input (a mask, an index, an
image of another size) has no calibration data and the pass refuses, naming it; an input
with a default (an initializer listed as an input) gets its default, and a Conv whose weight
is such an input stays float (the caller may override it). An output
that is also a graph input is set aside while quantising and put back as it was.
Accuracy depends on the model and the calibration data; the declared bound is ``min_cos``
(default 0.95), to be tightened for a trained model.

``reduce_range`` quantises weights to 7 bits: on CPUs without VNNI, ORT's u8 x s8 kernels add
pairs of products in 16 bits (AVX2's vpmaddubsw), which saturates on full-range weights; with
VNNI it only costs accuracy (``tune`` tries it only on such CPUs). The activation ranges the
calibration finds are shared by every quantisation of the same model, method and samples in
a process (ORT's ``calibration_cache_path``): the mixed-precision search and tune's int8
candidates calibrate once, not once per try (the ranges do not depend on which layers stay
float or on the format).

Defaults, from what ``tune`` measured (README, Tune): percentile calibration (minmax lost
0.0004-0.02 of cosine on both reference models), QDQ (QOperator gives the same numbers and
was no faster), first/last conv and ConvTranspose float (all quantised: 0.981 against 0.996 on
the trained style model, 0.66 against 0.94 on the seeded CycleGAN).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, Option, Pass, PassContext, PassResult, at_least, cosine, cosine_bound, register_pass
from graphsurgeon_cg.core.graphutil import export_without_aliased_outputs, restore_aliased_outputs
from graphsurgeon_cg.core.services import PassServices

from .opset import convert_opset

QDQ_PER_CHANNEL_OPSET = 13


@register_pass
class Int8(Pass):
    name = "int8"
    summary = "Static int8 quantisation of Conv/ConvTranspose (onnxruntime.quantization), calibrated on images"
    exact = False
    reports_modified = True
    data = Option(str, "", "info file of calibration samples (default: the run's data)")
    samples = Option(int, 16, "calibration samples taken from the info file", check=at_least(1))
    method = Option(str, "percentile", "calibration method", ("minmax", "percentile", "entropy"))
    format = Option(str, "qdq", "quantised model format", ("qdq", "qoperator"))
    per_channel = Option(bool, True, "per-output-channel weight scales")
    reduce_range = Option(bool, False, "7-bit weights (avoids u8 x s8 saturation on CPUs without VNNI)")
    keep_first_last = Option(bool, True, "leave the first and last convolution in float")
    keep_float = Option(tuple, (), "names of further nodes to leave in float; [auto]: search for the fewest "
                                   "that meet min_cos on the calibration samples (mixed precision)")
    keep_ops = Option(tuple, ("ConvTranspose",), "operator types left in float ([] quantises every type in ops)")
    ops = Option(tuple, ("Conv", "ConvTranspose"), "operator types to quantise")
    min_cos = Option(float, 0.95, "cosine the numeric check requires (model-dependent)", check=cosine())

    def needs_shapes(self, graph: gs.Graph) -> bool:
        return False  # the quantiser infers the types it needs on the model it is handed

    def bound(self) -> Bound:
        return cosine_bound(self.min_cos)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        targets = [n for n in graph.nodes if n.op in self.ops]
        if not targets:
            return PassResult(0, [f"no {', '.join(self.ops)} node to quantise"], modified=False)
        if any(n.op in ("QuantizeLinear", "DequantizeLinear", "QLinearConv") for n in graph.nodes):
            return PassResult(0, ["the model is already quantised"], modified=False)
        info = self.data or ctx.data
        if not info:
            raise self.refuse("needs calibration images: int8(data=INFO), or data for the whole run "
                              "(PassManager(data=INFO); on the command line apply --data INFO)")
        for node in targets:  # the quantiser excludes nodes by name: an empty name would match them all
            if not node.name:
                node.name = ctx.fresh_name(node.op.lower())
        if all(any(o is i for i in graph.inputs) for o in graph.outputs):
            return PassResult(0, ["every output is a graph input: nothing is computed"], modified=False)
        model, aliased = export_without_aliased_outputs(graph)  # the quantiser finds a cycle in them
        services = ctx.need_services(self)
        calibration = _Calibration(info, services.samples(info, self.samples), model, self, ctx.defaults)
        if graph.opset < QDQ_PER_CHANNEL_OPSET:  # with the opset pass's fixes (Resize-10 semantics kept)
            model = convert_opset(model, QDQ_PER_CHANNEL_OPSET, self)
        auto = "auto" in self.keep_float
        names = {n.name for n in targets}
        unknown = [n for n in self.keep_float if n not in names and n != "auto"]
        if unknown:
            raise self.refuse(f"keep_float names no {'/'.join(self.ops)} node: {', '.join(unknown)}")
        exclude = [targets[0].name, targets[-1].name] if self.keep_first_last and len(targets) > 2 else []
        exclude += [n.name for n in targets if n.op in self.keep_ops]
        exclude += [n for n in self.keep_float if n != "auto"]
        # A weight the caller may override (an initializer listed as a graph input) is no constant
        # to quantise: its node stays float.
        exclude += [n.name for n in targets if not isinstance(n.inputs[1], gs.Constant)]
        exclude = list(dict.fromkeys(exclude))
        reasons: list[str] = []
        if auto:
            exclude, reasons = _MixedPrecision(self, model, calibration, targets, services).search(exclude)
        quantized = gs.import_onnx(self._quantized(model, calibration, exclude))
        restore_aliased_outputs(quantized, aliased)
        rewrites = sum(1 for n in quantized.nodes if n.op.startswith("QLinearConv") or
                       (n.op in self.ops and len(n.inputs) > 1 and n.inputs[1].inputs and
                        n.inputs[1].inputs[0].op == "DequantizeLinear"))
        if exclude:
            reasons.append(f"kept in float: {', '.join(exclude)}")
        return PassResult(rewrites, reasons, graph=quantized)

    def _quantized(self, model: onnx.ModelProto, calibration: _Calibration, exclude: list[str]) -> onnx.ModelProto:
        """``model`` quantised by onnxruntime.quantization with ``exclude`` left in float."""
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[self.method]
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs advice at WARNING on the root logger
        try:
            with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):  # calibrator prints
                out = Path(tmp) / "int8.onnx"
                copy = onnx.ModelProto()
                copy.CopyFrom(model)  # the quantiser moves the weights of what it is given to its own temp folder
                _quantize(self, quantize_static, copy, out, calibration.reader(),
                          quant_format=QuantFormat.QDQ if self.format == "qdq" else QuantFormat.QOperator,
                          op_types_to_quantize=list(self.ops), per_channel=self.per_channel,
                          reduce_range=self.reduce_range,
                          activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                          calibrate_method=method, nodes_to_exclude=exclude,
                          calibration_providers=["CPUExecutionProvider"],
                          calibration_cache_path=calibration.cache_path(copy, self.method, self.ops))
                return onnx.load(str(out))
        finally:
            root.setLevel(level)


class _MixedPrecision:
    """``keep_float=[auto]``: which layers to leave in float so that the quantised model meets
    ``min_cos`` (mean per-pixel cosine against the float model, on the calibration samples).
    Candidates are every operator type as a group (the two ConvTransposes of a generator only
    help together), the first and last layer as a pair, and each layer alone. One quantisation
    per candidate measures how much keeping it float helps, groups first (when one meets the
    bar, only its own layers are tried alone); the smallest candidate that meets the bar alone
    wins, else candidates are added, most helpful per float layer first, until the bar holds.
    At most 1 + candidates + steps quantisations: linear in the number of layers."""

    def __init__(self, owner: Int8, model: onnx.ModelProto, calibration: _Calibration, targets: list[gs.Node],
                 services: PassServices):
        self.owner, self.model, self.calibration, self.services = owner, model, calibration, services
        groups = {f"all {op}": [n.name for n in targets if n.op == op] for op in owner.ops}
        groups["first and last"] = [targets[0].name, targets[-1].name]
        groups.update((n.name, [n.name]) for n in targets)
        # A group of every layer would keep nothing quantised: not a candidate.
        self.groups = {k: v for k, v in groups.items() if v and (len(v) < len(targets) or len(targets) == 1)}
        self.feeds = calibration.feeds  # all of them: a few flatter the mix (8 of 12 photos scored 0.99, 12 0.988)
        self.reference = self._first_output(model)

    def _first_output(self, model: onnx.ModelProto) -> list:
        """The first output for each calibration feed, with the runtime's optimisations on: they
        fuse QDQ pairs into integer kernels, whose numbers (u8 x s8 products saturate on CPUs
        without VNNI) are what a deployed model gives, not the float simulation of the QDQ graph."""
        return [outputs[0] for outputs in self.services.run(model, self.feeds, optimize=True)]

    def score(self, exclude: list[str]) -> float:
        outputs = self._first_output(self.owner._quantized(self.model, self.calibration, exclude))
        return self.services.judged_cos(self.reference, outputs)

    def search(self, exclude: list[str]) -> tuple[list[str], list[str]]:
        bar = self.owner.min_cos
        current = self.score(exclude)
        steps = [f"auto: {current:.4f} on calibration with {len(exclude)} float layer(s)"]
        if current >= bar:
            return exclude, steps
        gains: dict[str, tuple[float, int]] = {}  # score with the group float, layers it adds

        def measure(labels: list[str]) -> list[str]:
            """Score each candidate of ``labels``; those that meet the bar alone."""
            for label in labels:
                extra = [n for n in self.groups[label] if n not in exclude]
                if extra and label not in gains:
                    gains[label] = (self.score(exclude + extra), len(extra))
            return [label for label in labels if label in gains and gains[label][0] >= bar]

        def smallest(labels: list[str]) -> str:
            return min(labels, key=lambda g: (gains[g][1], -gains[g][0]))

        # Cheap first: the groups (a few quantisations); when one meets the bar, whether one of
        # its layers alone does. Only then every layer alone (one quantisation per layer).
        groups = [label for label in self.groups if label.startswith("all ") or label == "first and last"]
        enough = measure(groups)
        if enough:
            enough += measure([n for n in self.groups[smallest(enough)] if n in self.groups and n not in groups])
        else:
            enough = measure([label for label in self.groups if label not in groups])
        if enough:  # one candidate does it: the one that keeps the fewest layers float
            label = smallest(enough)
            steps.append(f"auto: + {label} in float -> {gains[label][0]:.4f}")
            return exclude + [n for n in self.groups[label] if n not in exclude], steps
        # Else the most helpful per float layer first, until the bar holds.
        for label in sorted(gains, key=lambda g: (gains[g][0] - current) / gains[g][1], reverse=True):
            extra = [n for n in self.groups[label] if n not in exclude]
            if not extra:
                continue
            exclude = exclude + extra
            current = self.score(exclude)
            steps.append(f"auto: + {label} in float -> {current:.4f}")
            if current >= bar:
                break
        else:
            steps.append(f"auto: no mix reached min_cos {bar} on calibration (best {current:.4f})")
        return exclude, steps


def _quantize(p: Int8, quantize_static, *args, **kwargs) -> None:
    """onnxruntime's quantiser; a calibration that cannot bin an activation is one clear line."""
    try:
        quantize_static(*args, **kwargs)
    except ValueError as exc:
        if "bins" not in str(exc):
            raise
        raise p.refuse(f"{p.method} calibration failed on a (nearly) constant activation ({exc}); "
                       "try method=minmax") from None


class _Calibration:
    """The calibration feeds from an info file's samples, for every graph input that takes them
    (``owner.refuse`` names an input that cannot be fed), and readers for the quantiser."""

    def __init__(self, info: str, arrays: list, model: onnx.ModelProto, owner: Pass, defaults: dict):
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise owner.refuse(f"the calibration samples in {info} differ in shape "
                               f"({sorted({_dims(a.shape) for a in arrays})})")
        initializers = {t.name for t in model.graph.initializer}
        dtypes = {}
        listed = {inp.name for inp in model.graph.input}
        fixed = {name: c.values for name, c in defaults.items() if name in listed}  # overridable: their defaults
        for inp in model.graph.input:
            if inp.name in initializers or inp.name in fixed:
                continue
            why = _cannot_take(inp, shape)
            if why:
                raise owner.refuse(f"input '{inp.name}' has no calibration data: {why}; the samples in {info} "
                                   f"are {_dims(shape)} float images")
            dtypes[inp.name] = onnx.helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
        self.feeds = [{**{name: a[None].astype(dtype) for name, dtype in dtypes.items()}, **fixed} for a in arrays]

    def cache_path(self, model: onnx.ModelProto, method: str, ops: tuple) -> str | None:
        """Where ORT keeps the activation ranges of ``model`` calibrated by ``method`` on these
        samples: one file per (model, method, operator types, samples) for the process (None,
        no cache, for a model over protobuf's 2 GB)."""
        try:
            digest = hashlib.sha256(model.SerializeToString(deterministic=True))
        except ValueError:
            return None
        digest.update(f"{method}|{','.join(ops)}".encode())
        for feed in self.feeds:
            for name in sorted(feed):
                digest.update(name.encode())
                digest.update(feed[name].tobytes())
        return str(_cache_folder() / f"{digest.hexdigest()[:32]}.json")

    def reader(self):
        """A fresh CalibrationDataReader over the samples (each quantisation consumes one)."""
        from onnxruntime.quantization import CalibrationDataReader

        class Reader(CalibrationDataReader):
            def __init__(self, feeds: list[dict]):
                self._feeds = iter(feeds)

            def get_next(self):
                return next(self._feeds, None)

        return Reader(self.feeds)


_CACHE: list[Path] = []


def _cache_folder() -> Path:
    """The process's calibration cache (removed at exit)."""
    if not _CACHE:
        _CACHE.append(Path(tempfile.mkdtemp(prefix="cgsurg-calib-")))
        atexit.register(shutil.rmtree, _CACHE[0], True)
    return _CACHE[0]


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def _cannot_take(inp: onnx.ValueInfoProto, sample: tuple) -> str | None:
    """Why graph input ``inp`` cannot be fed one calibration sample (batch 1), or None."""
    tensor = inp.type.tensor_type
    if tensor.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE):
        return f"it is {onnx.TensorProto.DataType.Name(tensor.elem_type).lower()}, not a float image"
    if not tensor.HasField("shape"):
        return "its shape is unknown"
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]
    wanted = [1, *sample]
    if len(dims) != len(wanted) or any(isinstance(d, int) and d != w for d, w in zip(dims, wanted)):
        return f"it takes {_dims(dims)}, not 1x{_dims(sample)}"
    return None
