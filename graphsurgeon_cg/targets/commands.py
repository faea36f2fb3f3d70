"""The compile step after ``apply --target``: the compiler's command line filled in from the
model (input name and shape, a dynamic batch as the compiler spells it, the output type), and
the side files it reads (Ascend's AIPP configuration)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

import onnx

from ..core.errors import InputError

DYNAMIC_BATCHES = (1, 2, 4, 8)  # ATC --dynamic_batch_size: 2 to 100 values
TRT_BATCH = (1, 8, 16)  # trtexec min / opt / max batch


@dataclass
class TensorIO:
    name: str
    dims: list[int | str]  # a symbol (or "?") for a dynamic axis
    elem_type: int

    @property
    def dynamic_batch(self) -> bool:
        return bool(self.dims) and not isinstance(self.dims[0], int)

    @property
    def type_name(self) -> str:
        return onnx.helper.tensor_dtype_to_np_dtype(self.elem_type).name


@dataclass
class ModelIO:
    inputs: list[TensorIO]
    outputs: list[TensorIO]

    @classmethod
    def of(cls, model: onnx.ModelProto) -> ModelIO:
        weights = {t.name for t in model.graph.initializer}

        def io(info: onnx.ValueInfoProto) -> TensorIO:
            t = info.type.tensor_type
            dims: list[int | str] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                                     for d in t.shape.dim]
            return TensorIO(info.name, dims, t.elem_type)

        return cls([io(i) for i in model.graph.input if i.name not in weights], [io(o) for o in model.graph.output])

    def static_rest(self) -> None:
        """Compilers take a fixed size for every axis but the batch: refuse a model without one."""
        for t in self.inputs:
            if any(not isinstance(d, int) for d in t.dims[1:]):
                raise InputError(f"input '{t.name}' has dynamic axes other than the batch ({t.dims}); "
                                 "fix them with --input-shape NAME:D1,D2,... (the static-shape pass)")


@dataclass
class Command:
    """A compile command: its words, and side files (name -> text) written next to the model."""

    tool: str
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def line(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)

    def script(self, note: str) -> str:
        return f'#!/bin/sh\n# {note}\nset -e\ncd "$(dirname "$0")"\n{self.line}\n'


def dims_text(dims: list, batch, sep: str = ",") -> str:
    return sep.join(str(d) for d in [batch, *dims[1:]])


def aipp_config(io: ModelIO, mean: float = 127.5, var_reci: float = 0.0078431) -> str:
    """Ascend AIPP, static: an RGB uint8 image of the model's size in, (x - 127.5) * 1/127.5 out,
    i.e. the guide's preprocessing (cgsurg's ``preproc-fold`` defaults) done by the chip."""
    inp = io.inputs[0]
    if inp.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
        raise InputError(f"input '{inp.name}' is {inp.type_name}, not an image normalised by the model: AIPP would "
                         "normalise twice (drop preproc-fold, or drop --aipp)")
    if len(inp.dims) != 4 or inp.dims[1] != 3:
        raise InputError(f"AIPP needs an NCHW RGB input, '{inp.name}' is {inp.dims}")
    h, w = inp.dims[2], inp.dims[3]
    channels = "".join(f"    min_chn_{c}: {mean}\n" for c in range(3))
    channels += "".join(f"    var_reci_chn_{c}: {var_reci}\n" for c in range(3))
    return ("aipp_op {\n    aipp_mode: static\n    related_input_rank: 0\n    input_format: RGB888_U8\n"
            f"    src_image_size_w: {w}\n    src_image_size_h: {h}\n    crop: true\n"
            f"    load_start_pos_w: 0\n    load_start_pos_h: 0\n    crop_size_w: {w}\n    crop_size_h: {h}\n"
            f"{channels}}}\n")
