"""The compile step after ``apply --target``: the compiler's command line filled in from the
model (every input's name and shape, its dynamic axes as the compiler spells them, the output
type) and the user's ``CompileSettings``, and the side files it reads (Ascend's AIPP
configuration).

Dynamic axes per compiler: OpenVINO's ``ovc --input`` writes them ``?``; TensorRT builds an
optimisation profile, min/opt/max for every dynamic axis (``shape_profile``: the batch
1/8/16, any other axis 32/640/1280 unless given); ATC varies the batch only
(``--dynamic_batch_size``), other axes must be fixed before (``static-shape``)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import onnx

from ..core.errors import InputError

DYNAMIC_BATCHES = (1, 2, 4, 8)  # ATC --dynamic_batch_size: 2 to 100 values
PROFILE_BATCH = (1, 8, 16)  # trtexec min / opt / max of a dynamic batch
# any other dynamic axis, most often an image side: multiples of 32, a detector's usual stride
PROFILE_SIDE = (32, 640, 1280)
PROFILE_KINDS = ("min", "opt", "max")
WEIGHTS = ("fp32", "fp16")  # OpenVINO IR weights: float32 as cgsurg checked them, or compressed


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


@dataclass(frozen=True)
class CompileSettings:
    """What a user chooses about the compile step beyond the model: OpenVINO's weight precision
    (``weights``, one of WEIGHTS) and TensorRT's optimisation profile, whole shapes per input
    name (``min_shapes``/``opt_shapes``/``max_shapes``; axes not given get the defaults)."""

    weights: str = "fp32"
    min_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    opt_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    max_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights not in WEIGHTS:
            raise InputError(f"weights '{self.weights}': expected one of {', '.join(WEIGHTS)}")

    @property
    def profile_given(self) -> bool:
        return bool(self.min_shapes or self.opt_shapes or self.max_shapes)

    def shapes(self, kind: str) -> Mapping[str, Sequence[int]]:
        return {"min": self.min_shapes, "opt": self.opt_shapes, "max": self.max_shapes}[kind]


def shape_profile(io: ModelIO, settings: CompileSettings) -> dict[str, list[list[int]]]:
    """TensorRT's optimisation profile: for each input with a dynamic axis, its [min, opt, max]
    shapes. A dynamic axis takes the user's value, else PROFILE_BATCH (axis 0) or PROFILE_SIDE,
    widened to hold the user's opt; static axes keep the model's size."""
    names = [t.name for t in io.inputs]
    for kind in PROFILE_KINDS:
        for name in settings.shapes(kind):
            if name not in names:
                raise InputError(f"{kind} shape for '{name}', which is not an input of the model "
                                 f"(inputs: {', '.join(names)})")
    profile: dict[str, list[list[int]]] = {}
    for t in io.inputs:
        if all(isinstance(d, int) for d in t.dims):
            continue  # static: the engine has its one shape
        given = {kind: settings.shapes(kind).get(t.name) for kind in PROFILE_KINDS}
        for kind, dims in given.items():
            if dims is None:
                continue
            if len(dims) != len(t.dims) or any(isinstance(m, int) and m != d for m, d in zip(t.dims, dims)):
                raise InputError(f"{kind} shape {','.join(map(str, dims))} for '{t.name}' does not fit its "
                                 f"shape {dims_text(t.dims, t.dims[0] if t.dims else '')}")
        shapes: list[list[int]] = [[], [], []]
        for axis, d in enumerate(t.dims):
            if isinstance(d, int):
                low = opt = high = d
            else:
                default = PROFILE_BATCH if axis == 0 else PROFILE_SIDE
                user = [None if g is None else int(g[axis]) for g in given.values()]
                opt = user[1] if user[1] is not None else default[1]
                low = user[0] if user[0] is not None else min(default[0], opt)
                high = user[2] if user[2] is not None else max(default[2], opt)
                if user[1] is None:  # the default opt, moved inside a range the user narrowed
                    opt = min(max(opt, low), high)
                if not low <= opt <= high:
                    raise InputError(f"'{t.name}' axis {axis}: min {low}, opt {opt}, max {high} are not in order")
            for shape, value in zip(shapes, (low, opt, high)):
                shape.append(value)
        profile[t.name] = shapes
    return profile


@dataclass
class Command:
    """A compile command: its words, side files (name -> text) written next to the model, and
    notes for its script, which name that compiler's options only."""

    tool: str
    argv: list[str]
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return " ".join(shlex.quote(a) for a in self.argv)

    def script(self, title: str) -> str:
        comments = "".join(f"# {line}\n" for line in [title, *self.notes])
        return f'#!/bin/sh\n{comments}set -e\ncd "$(dirname "$0")"\n{self.line}\n'


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
