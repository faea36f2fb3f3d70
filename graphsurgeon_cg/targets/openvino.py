"""openvino: Intel OpenVINO's ONNX frontend, converted with ``ovc`` (``openvino.convert_model``).

Release ``2024`` (the ``[openvino]`` extra needs openvino >= 2024.2); facts from
../shared/notes/TARGETS.md and the frontend's operator registrations (ops_bridge.cpp): Pad
constant/reflect/edge (wrap rejected), ``axes`` constant; Resize nearest/linear/cubic, every
nearest mode, tf_crop_and_resize rejected; InstanceNormalization becomes MVN + Mul + Add. An
opset newer than the frontend knows (20 assumed for 2024) falls back to its latest one, with a
warning.
"""

from __future__ import annotations

from .base import ERROR, Rule, Target, register_target
from .commands import Command, ModelIO, dims_text
from .rules import (
    FOLD,
    ConstantOperands,
    OperatorList,
    OpsetRange,
    PadModes,
    ReflectPadSize,
    ResizeAttributes,
    ResizeFacts,
    Verdict,
)


@register_target
class OpenVINO(Target):
    name = "openvino"
    summary = "Intel OpenVINO ONNX frontend, ovc (runs on this machine: pip install openvino)"
    versions = {"2024": "OpenVINO 2024.2 and later"}
    default_version = "2024"
    tool = "ovc"

    def _opsets(self) -> OpsetRange:
        return OpsetRange(7, 20, "OpenVINO 2024", above="the frontend falls back to the newest opset it knows (later "
                                                        "releases know more): operators of newer opsets may be missing")

    def rules(self) -> list[Rule]:
        release = "OpenVINO 2024"
        return [
            self._opsets(),
            OperatorList("openvino.txt", release),
            PadModes({"wrap": Verdict(ERROR, "rejected by OpenVINO's ONNX frontend")}, release=release),
            ReflectPadSize(),
            ConstantOperands({"Pad": [(3, "axes")]}, ERROR, release),
            ResizeAttributes(ResizeFacts(release, coordinate_modes={
                "tf_crop_and_resize": Verdict(ERROR, "rejected by OpenVINO's ONNX frontend")})),
        ]

    def preset(self, lossy: bool = False) -> str:
        opsets = self._opsets().preset_pass
        return f"{FOLD},{opsets},reflect2const,pad-conv-fusion" if lossy else f"{FOLD},{opsets},pad-conv-fusion"

    def command(self, io: ModelIO, model_ref: str, extra: dict[str, str]) -> Command:
        stem = model_ref.rsplit("/", 1)[-1].removesuffix(".onnx")
        shapes = ",".join(f"{t.name}[{dims_text(t.dims, '?' if t.dynamic_batch else t.dims[0])}]" for t in io.inputs)
        return Command("ovc", ["ovc", model_ref, "--output_model", f"{stem}.xml", "--input", shapes])
