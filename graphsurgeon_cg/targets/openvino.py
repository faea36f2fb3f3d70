"""openvino: Intel OpenVINO's ONNX frontend, converted with ``ovc`` (``openvino.convert_model``).

Release ``2024`` (the ``[openvino]`` extra needs openvino >= 2024.2); facts from
../shared/notes/TARGETS.md and the frontend's operator registrations (ops_bridge.cpp): Pad
constant/reflect/edge (wrap rejected), ``axes`` constant; Resize nearest/linear/cubic, every
nearest mode, tf_crop_and_resize rejected; InstanceNormalization becomes MVN + Mul + Add. An
opset newer than the frontend knows (20 assumed for 2024) falls back to its latest one, with a
warning.

The ``ovc`` script keeps the weights float32 (``--compress_to_fp16=False``, where ovc would
compress them): what cgsurg checked, and what ``cgsurg compile --target openvino`` writes;
``CompileSettings.weights="fp16"`` (``--weights fp16``) compresses them in both.
"""

from __future__ import annotations

from .base import ERROR, Rule, Target, register_target
from .commands import Command, CompileSettings, ModelIO
from .rules import (
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

    def precision(self, asked: str | None = None):
        """The CPU plugin's INFERENCE_PRECISION_HINT: bf16 by default on CPUs with native bf16."""
        from .precision import BF16, FP16, FP32, Precision, choose, cpu_has_bf16

        default = (Precision(BF16, "INFERENCE_PRECISION_HINT default bf16 (this CPU has avx512_bf16/AMX)")
                   if cpu_has_bf16() else Precision(FP32, "INFERENCE_PRECISION_HINT default f32 (no native bf16 "
                                                         "on this CPU)"))
        return choose(default, {"f32": Precision(FP32, "INFERENCE_PRECISION_HINT=f32"),
                                "bf16": Precision(BF16, "INFERENCE_PRECISION_HINT=bf16"),
                                "f16": Precision(FP16, "INFERENCE_PRECISION_HINT=f16")}, asked)

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

    def command(self, io: ModelIO, model_ref: str, extra: dict[str, str],
                settings: CompileSettings | None = None) -> Command:
        fp16 = (settings or CompileSettings()).weights == "fp16"
        stem = model_ref.rsplit("/", 1)[-1].removesuffix(".onnx")
        argv = ["ovc", model_ref, "--output_model", f"{stem}.xml"]
        if io.inputs:
            argv += ["--input", ovc_inputs(io)]
        notes = ["--input: ? is a dynamic axis, set at run time; a number fixes the axis in the IR",
                 "--compress_to_fp16=" + ("True: float16 weights, half the size (cgsurg apply --weights fp16)" if fp16
                                          else "False: float32 weights, as cgsurg checked them (True halves the size)")]
        return Command("ovc", [*argv, f"--compress_to_fp16={fp16}"], notes=notes)


def ovc_inputs(io: ModelIO) -> str:
    """ovc's ``--input``: every input in order as NAME[D,?,...], ``?`` for a dynamic axis. ovc
    splits the text at commas and brackets (cli_parser.split_inputs), so if a name holds one of
    ``,[]()<`` the shapes go unnamed, which ovc matches to the inputs in order."""
    named = not any(set(t.name) & set(",[]()<") for t in io.inputs)
    shapes = ["[" + ",".join(str(d) if isinstance(d, int) else "?" for d in t.dims) + "]" for t in io.inputs]
    return ",".join(f"{t.name}{shape}" if named else shape for t, shape in zip(io.inputs, shapes))
