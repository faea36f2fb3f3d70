"""ascend: Huawei Ascend ATC (CANN), ``atc --framework=5``.

Releases (facts from ../shared/notes/TARGETS.md, gathered 2026 from Huawei's docs, plug-in
sources and issue tracker):

- ``cann5``: CANN 5.x documents ONNX opset 9-13. Its ONNX parser refuses any Pad mode but
  constant ("Mode attr of Pad only supports constant"); ConvTranspose facts of CANN 6 and
  earlier (2-D only, dilation 1, no SAME_* auto_pad).
- ``cann8`` (default: the current release line): CANN 8.x documents ONNX 1.12 (opset 17; the
  plug-in sources register Pad up to 18). Reflect/edge Pad is passed to PadV3, but Huawei's
  own optimizer rules call it slow and rewrite it: a warning. SAME_* auto_pad allowed in 2-D.
  CANN 8.3 docs: nearest Resize is implemented only as ``round_prefer_ceil``; the 2025
  plug-in maps nearest to ResizeNearestNeighborV2 and never reads ``nearest_mode``.

Both: constant Pad only with value 0; Resize images only nearest/linear, scales/sizes
constant, 5-D only linear with align_corners/pytorch_half_pixel, antialias/axes/
keep_aspect_ratio_policy unsupported; ConvTranspose needs ``kernel_shape``; only the batch
may be dynamic (``--dynamic_batch_size``), nowhere inside the network.
"""

from __future__ import annotations

from ..core.errors import InputError
from ..core.presets import EXACT_PADS, LOSSY_VENDOR, PORTABLE_EXACT_PADS
from .base import ERROR, WARNING, Rule, Target, register_target
from .commands import DYNAMIC_BATCHES, Command, CompileSettings, ModelIO, TensorIO, dims_text
from .rules import (
    ConstantOperands,
    ConvTransposeAttributes,
    ConvTransposeFacts,
    DataTypes,
    DynamicInputDims,
    OperatorList,
    OpsetRange,
    PadModes,
    ReflectPadSize,
    ResizeAttributes,
    ResizeFacts,
    SymbolicShapes,
    Verdict,
)

REFLECT_FIX = str(EXACT_PADS.items[0])  # reflect2slice, exact; reflect2const is the guide's lossy workaround
CONSTANT_OPERANDS = {"Pad": [(1, "pads"), (2, "constant_value"), (3, "axes")],
                     "Resize": [(1, "roi"), (2, "scales"), (3, "sizes")], "Upsample": [(1, "scales")]}
OUTPUT_TYPES = {"float16": "FP16", "float32": "FP32", "uint8": "UINT8", "int8": "INT8"}


@register_target
class Ascend(Target):
    name = "ascend"
    summary = "Huawei Ascend ATC (CANN), atc --framework=5"
    versions = {"cann5": "CANN 5.x: ONNX opset 9-13, constant Pad only",
                "cann8": "CANN 8.x: ONNX 1.12 (opset 17), reflect Pad accepted but slow"}
    default_version = "cann8"
    tool = "atc"
    # ATC compiles a dynamic batch itself (--dynamic_batch_size): static-batch is left to the user
    # ATC rounds nearest Resize its own way: integer upsampling is written so that it cannot matter
    exact_rewrites = PORTABLE_EXACT_PADS
    lossy_rewrites = LOSSY_VENDOR

    def _opsets(self) -> OpsetRange:
        release = self.versions[self.version].split(":")[0]
        return OpsetRange(9, 13, release) if self.version == "cann5" else OpsetRange(9, 17, release, soft_high=18)

    def precision(self, asked: str | None = None):
        """ATC's ``--precision_mode``: force_fp16 by default (CANN 8.0 ATC parameter reference)."""
        from .precision import FP16, FP32, Precision, choose

        fp16 = Precision(FP16, "atc --precision_mode=force_fp16 (ATC's default: float32 ops computed in float16)")
        return choose(fp16, {
            "force_fp16": fp16,
            "allow_fp32_to_fp16": Precision(FP16, "atc --precision_mode=allow_fp32_to_fp16"),
            "allow_mix_precision": Precision(FP16, "atc --precision_mode=allow_mix_precision: the ops of ATC's "
                                                   "mixlist stay float32; predicted as all float16, a lower bound"),
            "must_keep_origin_dtype": Precision(FP32, "atc --precision_mode=must_keep_origin_dtype: float32 kept"),
        }, asked)

    def rules(self) -> list[Rule]:
        old = self.version == "cann5"
        release = self.versions[self.version].split(":")[0]
        pad_reason = ("refused by CANN <= 5 ('Mode attr of Pad only supports constant'): reflect2slice (exact) "
                      "or reflect2const (lossy)" if old else
                      "passed to PadV3 by CANN 8 but slow on Ascend (Huawei's optimizer rewrites it): "
                      "reflect2slice (exact) or reflect2const (lossy)")
        severity = ERROR if old else WARNING
        return [
            self._opsets(),
            OperatorList(f"ascend-{self.version}.txt", release),
            PadModes({"reflect": Verdict(severity, pad_reason, REFLECT_FIX),
                      "edge": Verdict(severity, pad_reason.split(":")[0] + " (no cgsurg pass replaces edge Pad)"),
                      "wrap": Verdict(ERROR, f"not supported by {release}")},
                     nonzero_value=Verdict(ERROR, "ATC supports only constant_value 0"), release=release),
            ReflectPadSize(),
            ConstantOperands(CONSTANT_OPERANDS, ERROR, release),
            ResizeAttributes(ResizeFacts(
                release,
                modes={"cubic": Verdict(ERROR, "ATC resizes images with nearest or linear only", "resize-nearest")},
                nearest_modes={m: Verdict(WARNING, "CANN 8.3 implements nearest only as round_prefer_ceil (its plug-in "
                                          "never reads nearest_mode): numbers on the device differ from ORT",
                                          "nearest-half-pixel")
                               for m in ("round_prefer_floor", "floor", "ceil")},
                antialias=Verdict(WARNING, "unsupported by ATC"), axes=Verdict(WARNING, "unsupported by ATC"),
                aspect_policy=Verdict(WARNING, "unsupported by ATC"),
                five_d=Verdict(ERROR, "ATC resizes 5-D input only linearly with align_corners or pytorch_half_pixel"))),
            ConvTransposeAttributes(ConvTransposeFacts(
                release, kernel_shape_required=Verdict(ERROR, "ATC needs the kernel_shape attribute (re-export)"),
                same_auto_pad=Verdict(ERROR, "no SAME_* auto_pad in CANN <= 6") if old else None,
                dilation=Verdict(ERROR if old else WARNING, "CANN <= 6 supports dilation 1 only"
                                 + ("" if old else "; not documented for CANN 8")),
                other_rank=Verdict(ERROR if old else WARNING, "CANN <= 6 supports 2-D ConvTranspose only"
                                   + ("" if old else "; not documented for CANN 8")))),
            DynamicInputDims(ERROR, "ATC takes a fixed --input_shape; only the batch may vary (--dynamic_batch_size)"),
            SymbolicShapes(ERROR, "ATC allows no dynamic dimension inside the network"),
            DataTypes(release, float64=Verdict(WARNING, "Ascend's AI Core computes no float64"),
                      int64_io=Verdict(WARNING, "int64 runs on the AI CPU; the AI Core wants int32")),
        ]

    def command(self, io: ModelIO, model_ref: str, extra: dict[str, str],
                settings: CompileSettings | None = None) -> Command:
        shapes = ";".join(atc_shape(t) for t in io.inputs)
        dynamic = any(t.dynamic_batch for t in io.inputs)
        stem = model_ref.rsplit("/", 1)[-1].removesuffix(".onnx")
        out_type = OUTPUT_TYPES.get(io.outputs[0].type_name, "FP32") if io.outputs else "FP32"
        batch = io.inputs[0].dims[0] if io.inputs and io.inputs[0].dims else 1
        argv = ["atc", "--framework=5", f"--model={model_ref}",
                f"--output={stem if dynamic else f'{stem}_bs{batch}'}", "--input_format=NCHW",
                f"--input_shape={shapes}"]
        notes = ["--soc_version: set it to your chip (npu-smi info names it)"]
        if dynamic:
            argv.append(f"--dynamic_batch_size={','.join(map(str, DYNAMIC_BATCHES))}")
            notes.append("--dynamic_batch_size: the batch sizes the .om accepts (-1 in --input_shape)")
        argv += ["--soc_version=Ascend310P3", f"--output_type={out_type}", "--precision_mode=force_fp16"]
        notes.append("--precision_mode=force_fp16 computes in float16; allow_fp32_to_fp16 keeps float32 where it can")
        if "aipp" in extra:
            argv.append(f"--insert_op_conf={extra['aipp']}")
        return Command("atc", [*argv, "--log=error"], notes=notes)


def atc_shape(t: TensorIO) -> str:
    """NAME:D,D,... for ATC's --input_shape, -1 for a dynamic batch: the only axis ATC lets vary."""
    rest = [i for i, d in enumerate(t.dims) if i and not isinstance(d, int)]
    if rest:
        image = {2: "H", 3: "W"} if len(t.dims) == 4 else {}
        fixed = ",".join(str(d) if isinstance(d, int) else "1" if i == 0 else image.get(i, f"D{i}")
                         for i, d in enumerate(t.dims))
        raise InputError(f"ATC varies only the batch (--dynamic_batch_size), and input '{t.name}' has dynamic "
                         f"axes {', '.join(map(str, rest))} ({dims_text(t.dims, t.dims[0])}): fix them first with "
                         f"--input-shape {t.name}:{fixed} (the static-shape pass) at the sizes you run")
    if set(t.name) & set(":;,"):
        raise InputError(f"ATC's --input_shape cannot name input '{t.name}' (a colon, semicolon or comma in it): "
                         "rename it")
    return f"{t.name}:{dims_text(t.dims, -1 if t.dynamic_batch else t.dims[0])}" if t.dims else f"{t.name}:"
