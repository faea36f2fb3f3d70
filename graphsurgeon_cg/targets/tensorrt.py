"""tensorrt: NVIDIA TensorRT through its ONNX parser (onnx-tensorrt), built with ``trtexec``.

Releases (facts from ../shared/notes/TARGETS.md and onnx-tensorrt's docs/operators.md of each
release):

- ``8.0``: operators up to opset 13. Pad: zero padding on the last two axes only (reflect and
  edge came with TensorRT 8.2). Resize per its operator table: asymmetric coordinates and
  ``floor`` nearest only; TensorRT 8.0's resize layer itself has more modes, so that is a
  warning. INT64 and DOUBLE are cast down to INT32 and FLOAT (clamped). ConvTranspose weights
  must be an initializer.
- ``10`` (default): TensorRT 10.0 documents opset 9-20 (10.15: up to 24, hence a warning
  between). Pad reflect/edge supported, Pad ``axes`` must be an initializer. Resize nearest and
  linear (cubic not listed up to 10.1), every nearest mode, coordinate modes half_pixel,
  pytorch_half_pixel, tf_half_pixel_for_nn, asymmetric, align_corners; no antialias; aspect
  policy stretch only. InstanceNormalization native since 8.6, default from 10.0.

No TensorRT runs on the machine cgsurg is developed on: these rules are tested by lint only.
"""

from __future__ import annotations

from ..core.errors import InputError
from ..core.pipeline import Pipeline
from ..core.presets import EXACT_PADS, LOSSY_VENDOR
from .base import ERROR, WARNING, Rule, Target, register_target
from .commands import PROFILE_KINDS, Command, CompileSettings, ModelIO, shape_profile
from .rules import (
    FOLD_FIX,
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
    Verdict,
)

CONSTANT_OPERANDS = {"Pad": [(3, "axes")], "Slice": [(3, "axes")], "Squeeze": [(1, "axes")],
                     "Unsqueeze": [(1, "axes")]}
CONSTANT_OPERANDS_8 = {**CONSTANT_OPERANDS, "Clip": [(1, "min"), (2, "max")], "Split": [(1, "split")]}
TRT10_COORDINATES = ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners")


@register_target
class TensorRT(Target):
    name = "tensorrt"
    summary = "NVIDIA TensorRT (onnx-tensorrt parser), trtexec"
    versions = {"8.0": "TensorRT 8.0: opset <= 13, zero Pad on the last two axes only",
                "10": "TensorRT 10.x: opset 9-20 (10.15: 24), reflect/edge Pad"}
    default_version = "10"
    tool = "trtexec"

    def _opsets(self) -> OpsetRange:
        release = self.versions[self.version].split(":")[0]
        return OpsetRange(9, 13, release) if self.version == "8.0" else OpsetRange(9, 20, release, soft_high=24)

    def precision(self, asked: str | None = None):
        """float32 unless trtexec builds with ``--fp16`` (or ``--best``): predict fp16 when asked."""
        from .precision import FP16, FP32, Precision, choose

        fp16 = Precision(FP16, "trtexec --fp16 (float16 kernels, float32 accumulation in tensor cores)")
        return choose(Precision(FP32, "trtexec's default float32 (give --precision fp16 to predict --fp16)"),
                      {"fp16": fp16, "best": Precision(FP16, "trtexec --best: fp16 or int8 per layer; predicted "
                                                             "as all float16")}, asked)

    def rules(self) -> list[Rule]:
        old = self.version == "8.0"
        release = self.versions[self.version].split(":")[0]
        no_pad = Verdict(ERROR, "TensorRT < 8.2 pads with zeros only: reflect2slice (exact) or reflect2const (lossy)",
                         "reflect2slice")
        modes = ({"reflect": no_pad, "edge": Verdict(ERROR, "TensorRT < 8.2 pads with zeros only"),
                  "wrap": Verdict(ERROR, "TensorRT < 8.2 pads with zeros only")} if old else
                 {"wrap": Verdict(WARNING, "not documented by onnx-tensorrt (constant, reflect, edge are)")})
        table_8 = Verdict(WARNING, "onnx-tensorrt's 8.0 table lists asymmetric/floor only, while TensorRT 8.0's "
                          "resize layer has more modes: verify with trtexec")
        cubic = Verdict(ERROR, f"{release} resizes with nearest or linear only (cubic not listed up to 10.1)",
                        "resize-nearest")
        if old:
            resize = ResizeFacts(release, modes={"cubic": cubic},
                                 coordinate_modes={m: table_8 for m in (*TRT10_COORDINATES[:3], "align_corners",
                                                                        "half_pixel_symmetric")}
                                 | {"tf_crop_and_resize": Verdict(ERROR, "unsupported")},
                                 nearest_modes={m: table_8 for m in ("round_prefer_floor", "round_prefer_ceil",
                                                                     "ceil")})
        else:
            resize = ResizeFacts(release, modes={"cubic": cubic},
                                 coordinate_modes={"tf_crop_and_resize": Verdict(ERROR, "unsupported by TensorRT"),
                                                   "half_pixel_symmetric": Verdict(ERROR, "not among TensorRT's "
                                                                                   "coordinate modes")},
                                 antialias=Verdict(ERROR, "TensorRT does not antialias"),
                                 axes=Verdict(WARNING, "with tensor scales, axes must be 0..rank-1 in order"),
                                 aspect_policy=Verdict(ERROR, "TensorRT supports the stretch policy only"))
        return [
            self._opsets(),
            OperatorList(f"tensorrt-{self.version}.txt", release),
            PadModes(modes, nonzero_value=Verdict(ERROR, "TensorRT < 8.2 pads with zeros only") if old else None,
                     last_two_axes_only=Verdict(ERROR, "TensorRT < 8.2 pads the last two axes only") if old else None,
                     release=release),
            ReflectPadSize(),
            ConstantOperands(CONSTANT_OPERANDS_8 if old else CONSTANT_OPERANDS, ERROR, release),
            ResizeAttributes(resize),
            ConvTransposeAttributes(ConvTransposeFacts(
                release, spatial_ranks=(2, 3), other_rank=Verdict(ERROR, "TensorRT deconvolves in 2-D or 3-D only"),
                weights_not_constant=Verdict(ERROR, "TensorRT 8.0 needs constant weights", FOLD_FIX) if old else None)),
            DynamicInputDims(WARNING, "the trtexec script gives every dynamic axis a min/opt/max profile (other "
                             "axes 32/640/1280 unless --min/--opt/--max-shapes); an engine built for one size is "
                             "faster, and the Shape chains fold"),
            DataTypes(release, float64=Verdict(WARNING, "TensorRT casts DOUBLE down to FLOAT (clamped)"),
                      int64_io=Verdict(WARNING, "TensorRT 8 casts INT64 down to INT32 (clamped)") if old else None),
        ]

    lossy_rewrites = LOSSY_VENDOR

    def rewrites(self, lossy: bool = False) -> Pipeline:
        # TensorRT 10 pads by reflection itself: its exact preset leaves reflect Pads alone
        return super().rewrites(lossy) if lossy or self.version != "8.0" else EXACT_PADS

    def command(self, io: ModelIO, model_ref: str, extra: dict[str, str],
                settings: CompileSettings | None = None) -> Command:
        profile = shape_profile(io, settings or CompileSettings())
        stem = model_ref.rsplit("/", 1)[-1].removesuffix(".onnx")
        argv = ["trtexec", f"--onnx={model_ref}"]
        notes = []
        if profile:  # trtexec wants min/opt/max for every dynamic input, and none for a static model
            for k, kind in enumerate(PROFILE_KINDS):
                argv.append(f"--{kind}Shapes=" + ",".join(f"{trt_name(name)}:{'x'.join(map(str, shapes[k]))}"
                                                           for name, shapes in profile.items()))
            notes.append("--minShapes/--optShapes/--maxShapes: the input sizes the engine accepts, fastest at "
                         "--optShapes (cgsurg apply --min-shapes/--opt-shapes/--max-shapes choose them)")
        argv += ["--fp16", f"--saveEngine={stem}.plan"]
        notes.append("--fp16 lets TensorRT run layers in float16: drop it to build a float32 engine")
        if io.outputs and io.outputs[0].type_name == "float16":
            argv.append("--outputIOFormats=fp16:chw")
        return Command("trtexec", argv, notes=notes)


def trt_name(name: str) -> str:
    """An input name in a trtexec shape list, which trtexec splits at commas, then at the last
    colon or around single quotes: a name with a colon is quoted (its help's 'Input:0')."""
    if set(name) & set(",'"):
        raise InputError(f"trtexec's shape options cannot name input '{name}' (a comma or quote in it): rename it")
    return f"'{name}'" if ":" in name else name
