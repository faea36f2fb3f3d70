"""Differential fuzzing of cgsurg's passes: a generator of random valid ONNX models built around
the patterns the passes touch, and the oracle that runs a pass on a model and classifies what
happened (issue 10). ``tests/test_fuzz.py`` runs a short budget in the suite,
``benchmarks/fuzz.py`` the long campaign.

The generator is written against a ``Chooser`` (one method: an integer in a range), so the same
code serves two drivers:

- hypothesis: ``cases()`` is a strategy (each choice is a draw, so hypothesis shrinks failures);
- a seeded numpy RNG for long campaigns: ``generate(seed)``; its choices are recorded, and
  ``shrink()`` replays edited choice lists (whole blocks and chunks deleted, values lowered) to
  find a smaller model that fails the same way. Every choice is ordered simplest first.
  ``replay(choices)`` rebuilds a reproducer from the choices a campaign recorded.

Every model is checked before use (``onnx.checker`` with ``full_check`` and strict shape
inference), then run in ONNX Runtime and ``onnx.reference`` on its feeds; a model that fails
any of that, or on which the two runtimes disagree, is discarded (``Invalid``, with a reason).
Where ``onnx.reference`` cannot run a model (Resize-10, some linear/cubic modes, negative pads)
or is known to be wrong (Loop), ONNX Runtime alone judges it.

What the models contain (``Case.tags`` name the corners, see ``TAGS``): Pad in modes constant,
reflect, edge and wrap (opset >= 19) with pads from an initializer, a Constant node (``value`` or
``value_ints``), the TorchScript ConstantOfShape/Concat/Reshape/Slice/Transpose/Reshape/Cast
chain or computed from ``Shape``; the opset 18 ``axes`` input (negative and unsorted too); no,
zero, -0.0 and non-zero constant values (and a meaningless value on reflect/edge); all-zero and
negative (cropping) pads; attribute-style Pad at opsets 9/10; ranks 3-5;
float32/float16/float64/int32/int64/int8/uint8; dynamic batch and spatial dims; Conv with
auto_pad/group/dilation/stride/pads, after a Pad or alone; Pads with several consumers or
feeding graph outputs or an If; If bodies and Loop bodies holding Pads (conditions constant or
fed); Resize (opset 10/11/13/18/19 forms: scales or sizes, axes, coordinate and nearest modes,
cubic coefficients, antialias, keep_aspect_ratio_policy) and Upsample (opset 9) in
nearest/linear/cubic; heads with static output dims or a Reshape driven by ``Shape``; outputs
declared as inferred or by rank only; intermediates typed or not; several inputs and outputs; a
graph input that is also a graph output; initializers listed as inputs; tensor and node names
that collide with the names passes generate (``reflect_slice__3``, ``starts__7``, ...).
Reflect/wrap pads stay below the axis size (ONNX requires it) and never touch a dynamic batch.

The oracle (``Oracle.check``/``check_pass``) runs a pass (or a pipeline: the last pass is the
one judged) through ``PassManager`` on a copy of the model and classifies the outcome as one of
``CATEGORIES``: ok, not-applicable (nothing rewritten), refused (a documented ``InputError``),
mismatch (exact: ORT or onnx.reference beyond 1e-5; lossy: outside the pass's own bound, judged
by ``NumericChecker``), crash (``PassFailed`` or any other exception), invalid-model (the result
fails ``check_model(full_check=True)`` or a runtime cannot load/run it), interface-changed (input
/output names, count, order, rank, a static dim, or dtypes for passes that keep them), or
input-mutated (the caller's ``ModelProto`` was changed).
"""

from __future__ import annotations

import copy
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# --- choosers ----------------------------------------------------------------------------------


class Chooser:
    """Where the generator's decisions come from. ``integer(lo, hi)`` (inclusive) is the only
    primitive; ``lo`` is the simplest answer, which is what shrinking moves towards."""

    choices: list[int]

    def __init__(self) -> None:
        self.choices = []
        self.spans: list[tuple[int, int]] = []  # [start, end) of choices that belong together

    def integer(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def span(self) -> _Span:
        """``with c.span(): ...`` marks the choices of one block, which shrinking may delete whole."""
        return _Span(self)

    def pick(self, options: Sequence[Any], weights: Sequence[int] | None = None) -> Any:
        """One of ``options`` (the first is the simplest), optionally weighted."""
        if not weights:
            return options[self.integer(0, len(options) - 1)]
        k = self.integer(0, sum(weights) - 1)
        for option, weight in zip(options, weights):
            if k < weight:
                return option
            k -= weight
        return options[-1]

    def flag(self, p: float) -> bool:
        """True with probability ``p``; False is the simpler answer."""
        return self.integer(0, 99) >= 100 - round(100 * p)


class _Span:
    def __init__(self, chooser: Chooser):
        self.chooser = chooser

    def __enter__(self) -> None:
        self.start = len(self.chooser.choices)

    def __exit__(self, *exc: object) -> None:
        if len(self.chooser.choices) > self.start:
            self.chooser.spans.append((self.start, len(self.chooser.choices)))


class RngChooser(Chooser):
    """Choices from a seeded numpy RNG, recorded (as offsets from ``lo``) for replay."""

    def __init__(self, rng: np.random.Generator):
        super().__init__()
        self.rng = rng

    def integer(self, lo: int, hi: int) -> int:
        value = int(self.rng.integers(lo, hi + 1))
        self.choices.append(value - lo)
        return value


class ReplayChooser(Chooser):
    """Replays recorded choices (clamped into range; the simplest answer once exhausted)."""

    def __init__(self, choices: Sequence[int]):
        super().__init__()
        self.source = list(choices)

    def integer(self, lo: int, hi: int) -> int:
        k = len(self.choices)
        offset = min(max(self.source[k], 0), hi - lo) if k < len(self.source) else 0
        self.choices.append(offset)
        return lo + offset


class DrawChooser(Chooser):
    """Choices drawn from hypothesis (inside ``st.composite``), so hypothesis shrinks them."""

    def __init__(self, draw: Callable):
        from hypothesis import strategies as st

        super().__init__()
        self.draw = draw
        self.st = st

    def integer(self, lo: int, hi: int) -> int:
        value = self.draw(self.st.integers(lo, hi))
        self.choices.append(value - lo)
        return value


# --- the generated case ------------------------------------------------------------------------

# Corners a case may contain (``Case.tags``); tests exclude known-bad ones per pass.
TAGS = {
    "pad-constant", "pad-reflect", "pad-edge", "pad-wrap", "pad-attr", "pad-axes", "pad-axes-negative",
    "pads-init", "pads-constant-node", "pads-torch-chain", "pads-from-shape", "pad-value-zero",
    "pad-value-negzero", "pad-value-nonzero", "pad-value-on-nonconstant-mode", "pad-zero-pads", "pad-negative",
    "pad-several-consumers", "pad-graph-output", "pad-feeds-if", "if-body-pads", "loop-body-pads",
    "conv", "conv-auto-pad", "conv-group", "conv-dilation", "conv-stride", "conv-pads", "pad-conv",
    "resize", "upsample", "resize-nearest", "resize-linear", "resize-cubic", "resize-sizes", "resize-axes",
    "dynamic-batch", "dynamic-spatial", "multi-input", "multi-output", "input-is-output",
    "initializers-as-inputs", "colliding-names", "untyped-intermediates", "shape-reshape", "static-dims-output",
    "cond-input", "float16", "float64", "int-dtype", "static-batch-2", "reference-fails", "if-constant-cond",
    "pad-attr-non-float32",
}

COLLIDING_BASES = ("reflect_slice", "reflect_concat", "starts", "ends", "axes", "steps", "zero", "scale", "offset",
                   "one", "half_range", "low", "high", "preproc_sub", "postproc_cast", "y_fp32", "y_float")

NP = {"float32": np.float32, "float16": np.float16, "float64": np.float64, "int32": np.int32,
      "int64": np.int64, "int8": np.int8, "uint8": np.uint8}


@dataclass
class Case:
    """A generated model with what it takes to run it."""

    model: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]  # the concrete feed shape of every (non-initializer) input
    tags: set[str]
    choices: list[int]
    reference_ok: bool = True  # whether onnx.reference runs the original (else ORT alone judges)
    seed: int | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)  # of ``choices``, for shrinking

    @property
    def text(self) -> str:
        return onnx.printer.to_text(self.model)

    @property
    def opset(self) -> int:
        return next(o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx"))


class Invalid(Exception):
    """The generator produced a model that is not valid or not runnable: discard it."""


@dataclass
class T:
    """A tensor while building: name, dtype, the concrete shape it has at feed time, and whether
    axis 0 is the dynamic batch (static-batch changes it, so reflect/wrap never pad it)."""

    name: str
    dtype: Any
    shape: list[int]
    dynbatch: bool = False

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return np.issubdtype(self.dtype, np.floating)


class Builder:
    def __init__(self, c: Chooser, opset: int, collide: bool, exclude: frozenset[str]):
        self.c, self.opset, self.collide, self.exclude = c, opset, collide, exclude
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.outputs: list[T] = []
        self.tags: set[str] = set()
        self.used: set[str] = set()
        self.counter = 0
        self.rng = np.random.default_rng(c.integer(0, 1 << 16))

    # names ---------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A new name; with ``collide``, sometimes one that the passes' fresh_name would make."""
        if self.collide and self.c.flag(0.35):
            name = f"{self.c.pick(COLLIDING_BASES)}__{self.c.integer(1, 30)}"
            if name not in self.used:
                self.used.add(name)
                self.tags.add("colliding-names")
                return name
        while True:
            self.counter += 1
            name = f"{base}_{self.counter}"
            if name not in self.used:
                self.used.add(name)
                return name

    # graph pieces --------------------------------------------------------------------------
    def node(self, op: str, inputs: Sequence[str], nodes: list | None = None, base: str | None = None,
             n_out: int = 1, **attrs: Any) -> list[str]:
        outs = [self.fresh(base or op.lower()) for _ in range(n_out)]
        (self.nodes if nodes is None else nodes).append(
            helper.make_node(op, list(inputs), outs, name=self.fresh(f"n_{op.lower()}"), **attrs))
        return outs

    def init(self, base: str, array: np.ndarray) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def constant(self, base: str, array: np.ndarray, nodes: list | None = None, ints: bool = False) -> str:
        array = np.asarray(array)
        if ints:
            return self.node("Constant", [], nodes, base, value_ints=[int(v) for v in array.reshape(-1)])[0]
        return self.node("Constant", [], nodes, base, value=numpy_helper.from_array(array))[0]

    def operand(self, base: str, array: np.ndarray, nodes: list | None = None) -> str:
        """A constant operand: an initializer, or (sometimes) a Constant node."""
        if self.c.flag(0.3):
            return self.constant(base, array, nodes)
        return self.init(base, array)

    def add_input(self, name: str, dtype: Any, dims: Sequence[Any], shape: Sequence[int]) -> None:
        self.used.add(name)
        self.inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)),
                                                         list(dims)))
        self.shapes[name] = tuple(shape)

    def weights(self, shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
        return self.rng.uniform(-1, 1, size=tuple(shape)).astype(dtype)


# --- Pad ---------------------------------------------------------------------------------------

def _scalar(dtype: Any, kind: str) -> np.ndarray:
    if kind == "zero":
        return np.zeros((), dtype)
    if kind == "negzero":
        return np.array(-0.0 if np.issubdtype(dtype, np.floating) else 0, dtype)
    if np.issubdtype(dtype, np.floating):
        return np.array(-1.5, dtype)
    return np.array(5 if dtype == np.uint8 else -3, dtype)


def add_pad(b: Builder, t: T, nodes: list | None = None, mode: str | None = None, spatial_only: bool = False,
            zero_value: bool = False, body: bool = False) -> T:
    """A Pad of ``t`` with every operand form the opset allows."""
    c, r = b.c, t.rank
    modes = ["constant", "reflect", "edge"] + (["wrap"] if b.opset >= 19 else [])
    mode = mode or c.pick(modes, [4, 4, 2, 1][: len(modes)])
    mirror = mode in ("reflect", "wrap")
    begins, ends = [0] * r, [0] * r

    def limit(axis: int) -> int:
        if mirror:
            if axis == 0 and t.dynbatch:
                return 0
            return min(3, t.shape[axis] - 1)
        return 2 if axis < 2 else 3

    for axis in range(r):
        if spatial_only and axis < 2:
            continue
        if not c.flag(0.6 if axis >= 2 else 0.12) or limit(axis) <= 0:
            continue
        begins[axis], ends[axis] = c.integer(0, limit(axis)), c.integer(0, limit(axis))
        if mode == "constant" and not body and c.flag(0.1) and t.shape[axis] > 2:  # cropping
            begins[axis] = -c.integer(1, t.shape[axis] - 2)
            ends[axis] = max(ends[axis], 0)
            b.tags.add("pad-negative")
    if not any(begins + ends):
        if mode == "reflect" and "pad-reflect-zero-pads" in b.exclude or not c.flag(0.25):
            axis = next((a for a in range(r - 1, -1, -1) if limit(a) > 0 and (a >= 2 or not spatial_only)), None)
            if axis is None:
                mode, mirror = "constant", False
                axis = r - 1
            ends[axis] = 1
    if not any(begins + ends):
        b.tags.add("pad-zero-pads")
        if mode == "reflect":
            b.tags.add("pad-reflect-zero-pads")
    b.tags.add(f"pad-{mode}")

    value_kind = None
    if mode == "constant":
        value_kind = "zero" if zero_value else c.pick([None, "zero", "negzero", "nonzero"], [4, 2, 2, 3])
    elif c.flag(0.1) and "pad-value-on-nonconstant-mode" not in b.exclude:
        value_kind = "nonzero"
        b.tags.add("pad-value-on-nonconstant-mode")
    if value_kind:
        b.tags.add(f"pad-value-{value_kind}")

    out_shape = [t.shape[a] + begins[a] + ends[a] for a in range(r)]
    if b.opset < 11:  # Pad-2: attributes
        b.tags.add("pad-attr")
        if t.dtype != np.float32:
            b.tags.add("pad-attr-non-float32")
        attrs: dict[str, Any] = {"mode": mode, "pads": begins + ends}
        if value_kind:
            attrs["value"] = float(_scalar(np.float32, value_kind))
        out = b.node("Pad", [t.name], nodes, "pad", **attrs)[0]
        return T(out, t.dtype, out_shape, t.dynbatch)

    axes = None
    if b.opset >= 18 and c.flag(0.4):
        chosen = [a for a in range(r) if begins[a] or ends[a]] or [r - 1]
        extra = [a for a in range(r) if a not in chosen and c.flag(0.2)]
        axes = chosen + extra
        if c.flag(0.5):  # some order other than ascending
            k = c.integer(0, len(axes) - 1)
            axes = axes[k:] + axes[:k]
        axes = [a - r if c.flag(0.4) else a for a in axes]
        b.tags.add("pad-axes")
        if any(a < 0 for a in axes):
            b.tags.add("pad-axes-negative")
        pads = [begins[a % r] for a in axes] + [ends[a % r] for a in axes]
    else:
        pads = begins + ends
    pads_arr = np.asarray(pads, np.int64)

    source = c.pick(["init", "constant", "torch", "shape", "ints"], [4, 2, 3, 2, 1 if b.opset >= 12 else 0])
    if source == "torch" and (axes is not None or body):
        source = "init"
    if source == "init":
        pads_name = b.init("pads", pads_arr)
    elif source in ("constant", "ints"):
        pads_name = b.constant("pads", pads_arr, nodes, ints=source == "ints")
        source = "constant-node"
    elif source == "torch":
        pads_name = _torch_pads(b, begins, ends, nodes)
        source = "torch-chain"
    else:
        pads_name = _shape_pads(b, t, pads_arr, nodes)
        source = "from-shape"
    b.tags.add(f"pads-{source}")

    inputs = [t.name, pads_name]
    if value_kind:
        inputs.append(b.operand("value", _scalar(t.dtype, value_kind), nodes))
    if axes is not None:
        if len(inputs) == 2:
            inputs.append("")
        inputs.append(b.operand("axes", np.asarray(axes, np.int64), nodes))
    out = b.node("Pad", inputs, nodes, "pad", mode=mode)[0]
    return T(out, t.dtype, out_shape, t.dynbatch)


def _torch_pads(b: Builder, begins: list[int], ends: list[int], nodes: list | None) -> str:
    """What TorchScript's exporter emits for F.pad at opset 11: the torch-ordered pads (last axis
    first), zeros for the unpadded leading axes, then reshape/reverse/transpose/flatten/cast."""
    r = len(begins)
    first = next((a for a in range(r) if begins[a] or ends[a]), r - 1)
    k = r - first  # trailing axes torch pads
    torch_order = []
    for axis in range(r - 1, first - 1, -1):
        torch_order += [begins[axis], ends[axis]]
    given = b.constant("onnx_constant", np.asarray(torch_order, np.int64), nodes)
    count = b.constant("onnx_constant", np.asarray([2 * (r - k)], np.int64), nodes)
    zeros = b.node("ConstantOfShape", [count], nodes, "constantofshape",
                   value=numpy_helper.from_array(np.zeros(1, np.int64)))[0]
    cat = b.node("Concat", [given, zeros], nodes, "concat", axis=0)[0]
    pairs_shape = b.constant("onnx_constant", np.asarray([-1, 2], np.int64), nodes)
    pairs = b.node("Reshape", [cat, pairs_shape], nodes, "reshape")[0]
    starts = b.constant("onnx_constant", np.asarray([-1], np.int64), nodes)
    stops = b.constant("onnx_constant", np.asarray([-9223372036854775807], np.int64), nodes)
    axes = b.constant("onnx_constant", np.asarray([0], np.int64), nodes)
    steps = b.constant("onnx_constant", np.asarray([-1], np.int64), nodes)
    reversed_pairs = b.node("Slice", [pairs, starts, stops, axes, steps], nodes, "slice")[0]
    columns = b.node("Transpose", [reversed_pairs], nodes, "transpose", perm=[1, 0])[0]
    flat_shape = b.constant("onnx_constant", np.asarray([-1], np.int64), nodes)
    flat = b.node("Reshape", [columns, flat_shape], nodes, "reshape")[0]
    return b.node("Cast", [flat], nodes, "cast", to=TensorProto.INT64)[0]


def _shape_pads(b: Builder, t: T, pads: np.ndarray, nodes: list | None) -> str:
    """pads = Gather(Shape(x), zeros) * 0 + pads: computed from the data's shape (foldable only
    when the shape is static)."""
    shape = b.node("Shape", [t.name], nodes, "shape")[0]
    index = b.init("gather_index", np.zeros(len(pads), np.int64))
    dims = b.node("Gather", [shape, index], nodes, "gather", axis=0)[0]
    zero = b.init("zero_i64", np.zeros(1, np.int64))
    nothing = b.node("Mul", [dims, zero], nodes, "mul")[0]
    return b.node("Add", [nothing, b.init("pads", pads)], nodes, "add")[0]


# --- Conv --------------------------------------------------------------------------------------

def add_conv(b: Builder, t: T) -> T | None:
    """A Conv on ``t`` (float32, rank 3-5) with random auto_pad/group/dilation/stride/pads, or
    None when no output size fits."""
    c = b.c
    r = t.rank
    spatial = r - 2
    channels = t.shape[1]
    groups = [g for g in (1, channels, 2, 3) if g <= channels and channels % g == 0]
    group = c.pick(sorted(set(groups), key=groups.index))
    out_channels = group * c.integer(1, max(1, 4 // group))
    kernel = [c.integer(1, 3 if spatial < 3 else 2) for _ in range(spatial)]
    strides = [c.pick([1, 2], [3, 1]) for _ in range(spatial)]
    dilations = [c.pick([1, 2], [3, 1]) for _ in range(spatial)]
    auto_pad = c.pick(["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"], [6, 1, 1, 1])
    if auto_pad.startswith("SAME"):  # ONNX Runtime has no dilated SAME convolution
        dilations = [1] * spatial
    pads = [0] * (2 * spatial)
    if auto_pad == "NOTSET" and c.flag(0.4):
        pads = [c.integer(0, 2) for _ in range(2 * spatial)]
        b.tags.add("conv-pads")
    sizes = []
    for i in range(spatial):
        size = t.shape[2 + i]
        span = dilations[i] * (kernel[i] - 1) + 1
        if auto_pad.startswith("SAME"):
            out = math.ceil(size / strides[i])
        elif auto_pad == "VALID":
            out = (size - span) // strides[i] + 1
        else:
            out = (size + pads[i] + pads[spatial + i] - span) // strides[i] + 1
        if out < 1:
            return None
        sizes.append(out)
    attrs: dict[str, Any] = {"kernel_shape": kernel}
    if auto_pad != "NOTSET":
        attrs["auto_pad"] = auto_pad
        b.tags.add("conv-auto-pad")
    elif any(pads) or c.flag(0.3):
        attrs["pads"] = pads
    if any(s != 1 for s in strides) or c.flag(0.2):
        attrs["strides"] = strides
        b.tags.add("conv-stride")
    if any(d != 1 for d in dilations) or c.flag(0.2):
        attrs["dilations"] = dilations
        b.tags.add("conv-dilation")
    if group != 1:
        attrs["group"] = group
        b.tags.add("conv-group")
    weight = b.weights([out_channels, channels // group, *kernel]) * 0.5
    inputs = [t.name, b.init("weight", weight)]
    if c.flag(0.6):
        inputs.append(b.init("bias", b.weights([out_channels]) * 0.1))
    b.tags.add("conv")
    out = b.node("Conv", inputs, None, "conv", **attrs)[0]
    return T(out, t.dtype, [t.shape[0], out_channels, *sizes], t.dynbatch)


# --- Resize / Upsample ----------------------------------------------------------------------------

def add_resize(b: Builder, t: T) -> T | None:
    c, opset, r = b.c, b.opset, t.rank
    modes = ["nearest", "linear"] + (["cubic"] if opset >= 11 and r == 4 else [])
    mode = c.pick(modes, [2, 3, 2][: len(modes)])
    if mode == "linear" and r not in (4, 5) or opset < 10 and r != 4:
        mode = "nearest"
    spatial = list(range(2, r))
    factors = [c.pick([2.0, 3.0, 0.5, 1.5], [4, 1, 2, 1]) if opset >= 10 else c.pick([2.0, 3.0]) for _ in spatial]
    if r == 5:
        factors = [2.0 if f > 1 else 0.5 for f in factors]
    out_shape = list(t.shape)
    for axis, f in zip(spatial, factors):
        out_shape[axis] = int(math.floor(t.shape[axis] * f))
        if out_shape[axis] < 1:
            return None
    b.tags.add(f"resize-{mode}")
    scales = np.asarray([1.0, 1.0, *factors], np.float32)
    if opset < 10:
        b.tags.add("upsample")
        out = b.node("Upsample", [t.name, b.init("scales", scales)], None, "upsample", mode=mode)[0]
        return T(out, t.dtype, out_shape, t.dynbatch)
    b.tags.add("resize")
    if opset == 10:
        out = b.node("Resize", [t.name, b.init("scales", scales)], None, "resize", mode=mode)[0]
        return T(out, t.dtype, out_shape, t.dynbatch)
    attrs: dict[str, Any] = {"mode": mode}
    coordinate_modes = ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]
    if opset >= 19:
        coordinate_modes.append("half_pixel_symmetric")
    if c.flag(0.7):
        attrs["coordinate_transformation_mode"] = c.pick(coordinate_modes)
    if mode == "nearest" and c.flag(0.6):
        attrs["nearest_mode"] = c.pick(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
    if mode == "cubic":
        if c.flag(0.5):
            attrs["cubic_coeff_a"] = c.pick([-0.75, -0.5])
        if c.flag(0.3):
            attrs["exclude_outside"] = 1
    use_axes = opset >= 18 and c.flag(0.3)
    if opset >= 18 and mode != "nearest" and any(f < 1 for f in factors) and c.flag(0.3):
        attrs["antialias"] = 1
    use_sizes = c.flag(0.3) and (use_axes or not t.dynbatch)
    empty = np.zeros(0, np.float32)
    axes = spatial if not c.flag(0.4) else [a - r for a in spatial]
    if use_axes:
        attrs["axes"] = axes
        b.tags.add("resize-axes")
    if use_sizes:
        b.tags.add("resize-sizes")
        if opset >= 18 and c.flag(0.3):
            policy = c.pick(["stretch", "not_larger", "not_smaller"])
            attrs["keep_aspect_ratio_policy"] = policy
            if policy != "stretch" and len(set(factors)) > 1:
                return None  # the kept aspect ratio would make other sizes than asked
        sizes = np.asarray([out_shape[a] for a in spatial] if use_axes else out_shape, np.int64)
        return _resize_node(b, t, attrs, sizes, opset, empty, out_shape, by_sizes=True)
    if use_axes:
        scales = np.asarray(factors, np.float32)
    return _resize_node(b, t, attrs, scales, opset, empty, out_shape, by_sizes=False)


def _resize_node(b: Builder, t: T, attrs: dict, operand: np.ndarray, opset: int, empty: np.ndarray,
                 out_shape: list[int], by_sizes: bool) -> T:
    if opset == 11:  # roi and scales are required inputs; empty tensors stand for "not given"
        roi = b.init("roi", empty)
        inputs = [t.name, roi, b.init("scales", empty), b.init("sizes", operand)] if by_sizes else \
            [t.name, roi, b.init("scales", operand)]
    else:
        inputs = [t.name, "", "", b.operand("sizes", operand)] if by_sizes else \
            [t.name, "", b.operand("scales", operand)]
    out = b.node("Resize", inputs, None, "resize", **attrs)[0]
    return T(out, t.dtype, out_shape, t.dynbatch)


# --- If / Loop -----------------------------------------------------------------------------------

def _cond(b: Builder) -> str:
    if b.c.flag(0.5) or "if-constant-cond" in b.exclude:
        name = "cond" if "cond" not in b.used else b.fresh("cond")
        b.add_input(name, np.bool_, [], ())
        b.tags.add("cond-input")
        return name
    b.tags.add("if-constant-cond")
    return b.operand("cond", np.array(bool(b.c.integer(0, 1))))


def _value_info(b: Builder, t: T, shaped: bool) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(t.dtype))
    if shaped:
        return helper.make_tensor_value_info(t.name, elem, [None if (a == 0 and t.dynbatch) else d
                                                            for a, d in enumerate(t.shape)])
    return helper.make_tensor_value_info(t.name, elem, [None] * t.rank)


def add_if(b: Builder, t: T) -> T:
    """Either a Pad feeding an If, or an If whose branches pad ``t`` differently."""
    c = b.c
    cond = _cond(b)
    shaped = c.flag(0.5)
    if c.flag(0.5):
        padded = add_pad(b, t)
        b.tags.add("pad-feeds-if")
        then_nodes: list = []
        else_nodes: list = []
        then_out = T(b.node("Identity", [padded.name], then_nodes, "then_out")[0], t.dtype, padded.shape,
                     t.dynbatch)
        op = "Neg" if padded.dtype in (np.float32, np.float64, np.int32, np.int64, np.int8) else "Identity"
        else_out = T(b.node(op, [padded.name], else_nodes, "else_out")[0], t.dtype, padded.shape, t.dynbatch)
        shape = padded.shape
    else:
        b.tags.add("if-body-pads")
        then_nodes, else_nodes = [], []
        then_pad = add_pad(b, t, then_nodes, body=True)
        # the else branch pads the same amounts with the first padded tensor's shape: use a
        # constant pad to the same output shape (pads recomputed from the shapes)
        else_pad = _same_shape_pad(b, t, then_pad.shape, else_nodes)
        then_out, else_out, shape = then_pad, else_pad, then_pad.shape
    then_graph = helper.make_graph(then_nodes, b.fresh("then_branch"), [], [_value_info(b, then_out, shaped)])
    else_graph = helper.make_graph(else_nodes, b.fresh("else_branch"), [], [_value_info(b, else_out, shaped)])
    out = b.node("If", [cond], None, "if_out", then_branch=then_graph, else_branch=else_graph)[0]
    return T(out, t.dtype, list(shape), t.dynbatch)


def _same_shape_pad(b: Builder, t: T, shape: list[int], nodes: list) -> T:
    """A Pad (edge or constant) of ``t`` to ``shape``: growth at the end, cropping at the start."""
    growth = [shape[a] - t.shape[a] for a in range(t.rank)]
    begins = [min(g, 0) for g in growth]
    ends = [max(g, 0) for g in growth]
    mode = "edge" if not any(begins) and b.c.flag(0.5) else "constant"
    if b.opset < 11:
        b.tags.add("pad-attr")
        if t.dtype != np.float32:
            b.tags.add("pad-attr-non-float32")
        out = b.node("Pad", [t.name], nodes, "pad", mode=mode, pads=begins + ends)[0]
    else:
        pads = b.operand("pads", np.asarray(begins + ends, np.int64), nodes)
        out = b.node("Pad", [t.name, pads], nodes, "pad", mode=mode)[0]
    return T(out, t.dtype, list(shape), t.dynbatch)


def add_loop(b: Builder, t: T) -> T:
    """A Loop of 2 iterations carrying ``t``; the body pads the carried value and slices a
    window of the original size from the padded corner, so the border values travel on."""
    b.tags.add("loop-body-pads")
    body: list = []
    it, cond_in, carried = b.fresh("iter"), b.fresh("cond_in"), b.fresh("carried")
    cond_out = b.node("Identity", [cond_in], body, "cond_out")[0]
    padded = add_pad(b, T(carried, t.dtype, list(t.shape), t.dynbatch), body, body=True)
    grown = [a for a in range(t.rank) if padded.shape[a] != t.shape[a]]
    if grown:
        window = b.node("Slice", [padded.name, b.operand("starts", np.zeros(len(grown), np.int64), body),
                                  b.operand("ends", np.asarray([t.shape[a] - padded.shape[a] for a in grown], np.int64),
                                            body),
                                  b.operand("axes", np.asarray(grown, np.int64), body)], body, "window")[0]
    else:
        window = b.node("Identity", [padded.name], body, "window")[0]
    trips = b.init("trip_count", np.array(2, np.int64))
    cond = b.init("loop_cond", np.array(True)) if b.c.flag(0.5) else ""
    shaped = b.c.flag(0.5)
    graph = helper.make_graph(
        body, b.fresh("loop_body"),
        [helper.make_tensor_value_info(it, TensorProto.INT64, []),
         helper.make_tensor_value_info(cond_in, TensorProto.BOOL, []),
         _value_info(b, T(carried, t.dtype, t.shape, t.dynbatch), shaped)],
        [helper.make_tensor_value_info(cond_out, TensorProto.BOOL, []),
         _value_info(b, T(window, t.dtype, t.shape, t.dynbatch), shaped)])
    out = b.node("Loop", [trips, cond, t.name], None, "loop_out", body=graph)[0]
    return T(out, t.dtype, list(t.shape), t.dynbatch)


# --- other blocks --------------------------------------------------------------------------------

def add_unary(b: Builder, t: T) -> T:
    ops = ["Identity"]
    if t.dtype in (np.float32, np.float64, np.float16):
        ops += ["Relu", "Tanh"]
    if t.dtype != np.uint8:
        ops.append("Neg")
    if _adds(b, t.dtype):
        ops.append("AddSelf")
    op = b.c.pick(ops)
    if op == "AddSelf":
        out = b.node("Add", [t.name, t.name], None, "add")[0]
    else:
        out = b.node(op, [t.name], None, op.lower())[0]
    return T(out, t.dtype, list(t.shape), t.dynbatch)


def _adds(b: Builder, dtype: Any) -> bool:
    """Whether Add takes ``dtype`` at the builder's opset (8-bit integers from opset 14)."""
    return b.opset >= 14 or dtype not in (np.int8, np.uint8)


def add_head(b: Builder, t: T) -> T:
    """Terminal blocks whose outputs have static dims besides the batch, or are reshaped by
    ``Shape``: GlobalAveragePool + Flatten ([N, C]) or Reshape(x, [Shape(x)[0], -1])."""
    if b.c.flag(0.5) and t.dtype == np.float32:
        pooled = b.node("GlobalAveragePool", [t.name], None, "gap")[0]
        out = b.node("Flatten", [pooled], None, "flatten", axis=1)[0]
        b.tags.add("static-dims-output")
        return T(out, t.dtype, [t.shape[0], t.shape[1]], t.dynbatch)
    if b.opset < 10:  # Slice takes attributes there
        out = b.node("Flatten", [t.name], None, "flatten", axis=1)[0]
        return T(out, t.dtype, [t.shape[0], int(np.prod(t.shape[1:]))], t.dynbatch)
    shape = b.node("Shape", [t.name], None, "shape")[0]
    first = b.node("Slice", [shape, b.init("start", np.array([0], np.int64)), b.init("end", np.array([1], np.int64))],
                   None, "batch")[0]
    target = b.node("Concat", [first, b.init("minus_one", np.array([-1], np.int64))], None, "target", axis=0)[0]
    out = b.node("Reshape", [t.name, target], None, "reshape")[0]
    b.tags.add("shape-reshape")
    return T(out, t.dtype, [t.shape[0], int(np.prod(t.shape[1:]))], t.dynbatch)


# --- the model -----------------------------------------------------------------------------------

OPSETS = (13, 11, 18, 17, 19, 21, 10, 9)


def _ir_version(opset: int) -> int:
    return min(ir for _release, ir, ai_onnx, *_ in helper.VERSION_TABLE if ai_onnx >= opset)


FLOAT_KINDS = {"pad_conv", "conv", "resize"}


def build(c: Chooser, exclude: Iterable[str] = (), opsets: Sequence[int] = OPSETS,
          focus: Sequence[str] = ()) -> Case:
    """A random model (unchecked: see ``generate``/``cases``). ``exclude`` names corners (tags)
    the generator must not produce; ``opsets`` the opsets it may use; ``focus`` the kinds of
    block the first stage is drawn from (pad, pad_reflect, pad_conv, conv, resize, if, loop,
    unary, head), to aim a short budget at one pass."""
    exclude = frozenset(exclude)
    opset = c.pick([o for o in OPSETS if o in opsets])
    b = Builder(c, opset, collide=c.flag(0.25), exclude=exclude)
    dtypes = ["float32", "float16", "float64"] + (["int32", "int64", "int8", "uint8"] if opset >= 11 else [])
    dtype = NP[c.pick(dtypes, [8, 1, 1, 1, 1, 1, 1][: len(dtypes)])]
    if opset < 11 and "pad-attr-non-float32" in exclude or FLOAT_KINDS & set(focus):
        dtype = np.float32
    if dtype == np.float16:
        b.tags.add("float16")
    elif dtype == np.float64:
        b.tags.add("float64")
    elif dtype != np.float32:
        b.tags.add("int-dtype")
    rank = c.pick([4, 3, 5], [5, 2, 1])
    channels = c.pick([3, 1, 2, 4])
    spatial = [c.pick([4, 5, 3, 6, 2, 1] if rank < 5 else [3, 2, 4]) for _ in range(rank - 2)]
    dynbatch = c.flag(0.5)
    batch = c.pick([1, 2])
    dims: list[Any] = ["N" if dynbatch else batch, channels]
    for i, size in enumerate(spatial):
        if c.flag(0.15):
            dims.append("HWD"[i] if i < 3 else f"S{i}")
            b.tags.add("dynamic-spatial")
        else:
            dims.append(size)
    if dynbatch:
        b.tags.add("dynamic-batch")
    elif batch > 1:
        b.tags.add("static-batch-2")
    shape = [batch, channels, *spatial]
    b.add_input("x", dtype, dims, shape)
    x = T("x", dtype, shape, dynbatch)
    cur = x
    extra_outputs: list[T] = []
    with c.span():
        if c.flag(0.2) and "multi-input" not in exclude:
            b.tags.add("multi-input")
            b.add_input("x2", dtype, dims, shape)
            x2 = T("x2", dtype, shape, dynbatch)
            if c.flag(0.5) and _adds(b, dtype):
                cur = T(b.node("Add", ["x", "x2"], None, "sum")[0], dtype, shape, dynbatch)
            else:
                extra_outputs.append(add_pad(b, x2))
    floaty = dtype == np.float32
    kinds = ["pad", "pad_conv", "conv", "resize", "if", "loop", "unary", "head", "pad_reflect"]
    weights = [6, 4 if floaty else 0, 2 if floaty else 0, 2 if floaty else 0, 2, 1 if opset >= 11 else 0, 2, 1, 0]
    for stage in range(4):
        with c.span():  # one stage: shrinking deletes it whole
            if stage and not c.flag(0.6):
                break
            if focus and not stage:
                kind = c.pick([k for k in kinds if k in focus])
            else:
                kind = c.pick(kinds, weights)
            if kind in ("pad", "pad_reflect"):
                padded = add_pad(b, cur, mode="reflect" if kind == "pad_reflect" else None)
                if c.flag(0.2):  # several consumers: the padded tensor also goes to a unary op/output
                    b.tags.add("pad-several-consumers")
                    extra_outputs.append(add_unary(b, padded))
                if c.flag(0.15):
                    b.tags.add("pad-graph-output")
                    extra_outputs.append(padded)
                cur = padded
            elif kind == "pad_conv":
                if cur.rank < 3 or not cur.is_float:
                    continue
                padded = add_pad(b, cur, spatial_only=not c.flag(0.1), zero_value=c.flag(0.6),
                                 mode=c.pick(["constant", "reflect"], [3, 1]))
                conv = add_conv(b, padded)
                if conv is None:
                    continue
                b.tags.add("pad-conv")
                if c.flag(0.15):
                    b.tags.add("pad-several-consumers")
                    extra_outputs.append(padded if c.flag(0.5) else add_unary(b, padded))
                    if extra_outputs[-1] is padded:
                        b.tags.add("pad-graph-output")
                cur = conv
            elif kind == "conv":
                conv = add_conv(b, cur) if cur.rank >= 3 and cur.dtype == np.float32 else None
                cur = conv or cur
            elif kind == "resize":
                if cur.dtype != np.float32:
                    continue
                cur = add_resize(b, cur) or cur
            elif kind == "if":
                cur = add_if(b, cur)
            elif kind == "loop":
                cur = add_loop(b, cur)
            elif kind == "unary":
                cur = add_unary(b, cur)
            elif kind == "head":
                extra_outputs.append(add_head(b, cur))
    if cur is x and not extra_outputs:
        cur = add_pad(b, cur)
    with c.span():  # an image-like output in [-1, 1], as generators end (postproc-fold's domain)
        if cur.is_float and c.flag(0.3):
            cur = T(b.node("Tanh", [cur.name], None, "tanh")[0], cur.dtype, list(cur.shape), cur.dynbatch)
    outputs = [cur] if cur is not x or not extra_outputs else []
    outputs += [o for o in extra_outputs if all(o.name != p.name for p in outputs)]
    with c.span():
        if c.flag(0.1) and "input-is-output" not in exclude and all(o.name != "x" for o in outputs):
            outputs.insert(c.integer(0, len(outputs)), x)
    if any(o.name == "x" for o in outputs):
        b.tags.add("input-is-output")
    if len(outputs) > 1:
        b.tags.add("multi-output")
    case = _assemble(b, outputs)
    excluded = case.tags & exclude
    if excluded:  # a corner the generator could not steer around: reject the case
        raise Invalid(f"excluded corner(s) {', '.join(sorted(excluded))}")
    return case


def _assemble(b: Builder, outputs: list[T]) -> Case:
    c = b.c
    elem = {o.name: helper.np_dtype_to_tensor_dtype(np.dtype(o.dtype)) for o in outputs}
    graph = helper.make_graph(b.nodes, "fuzz", list(b.inputs),
                              [helper.make_tensor_value_info(o.name, elem[o.name], None) for o in outputs],
                              initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", b.opset)], producer_name="cgsurg-fuzz")
    model.ir_version = _ir_version(b.opset)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as exc:
        raise Invalid(f"shape inference: {_first_line(exc)}") from None
    typed = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.input) +
             list(inferred.graph.output) if v.type.tensor_type.HasField("shape")}
    ranks = {o.name: o.rank for o in outputs}
    for out in model.graph.output:  # declared: as inferred, or with the rank only
        source = typed.get(out.name)
        if c.pick(["inferred", "rank"], [6, 1]) == "inferred" and source is not None:
            out.type.CopyFrom(source.type)
        else:
            out.type.CopyFrom(helper.make_tensor_type_proto(elem[out.name], [b.fresh("d") for _ in
                                                                              range(ranks[out.name])]))
    if c.flag(0.5):  # intermediate tensors typed (else gs sees them untyped until a pass re-infers)
        model.graph.value_info.extend(inferred.graph.value_info)
    else:
        b.tags.add("untyped-intermediates")
    if c.flag(0.08) and "initializers-as-inputs" not in b.exclude:
        b.tags.add("initializers-as-inputs")
        for t in model.graph.initializer:
            model.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return Case(model=model, shapes=dict(b.shapes), tags=set(b.tags), choices=[])


# --- validation ------------------------------------------------------------------------------------

def _first_line(exc: BaseException, limit: int = 240) -> str:
    text = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return text[:limit]


def feeds_for(case: Case, batch: int | None = None, model: onnx.ModelProto | None = None) -> list[dict]:
    """Two seeded feeds for the case's inputs (a boolean input is True in the first, False in
    the second); ``batch`` replaces a dynamic batch (for static-batch)."""
    from graphsurgeon_cg.check.feeds import random_array

    model = model or case.model
    inits = {t.name for t in model.graph.initializer}
    feeds = []
    for k in range(2):
        rng = np.random.default_rng(1000 + k)
        feed = {}
        for inp in model.graph.input:
            if inp.name in inits:
                continue
            tt = inp.type.tensor_type
            dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
            shape = list(case.shapes[inp.name])
            dims = tt.shape.dim
            if batch and shape and dims and not dims[0].HasField("dim_value"):
                shape[0] = batch
            if dtype == np.bool_ and not shape:
                feed[inp.name] = np.array(k == 0)
            else:
                feed[inp.name] = random_array(shape, dtype, rng)
        feeds.append(feed)
    return feeds


def run_ort(model: onnx.ModelProto, feeds: list[dict]) -> list[dict]:
    from graphsurgeon_cg.check.session import make_session, run_session

    return run_session(make_session(model), feeds)


def run_reference(model: onnx.ModelProto, feeds: list[dict]) -> list[dict]:
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in model.graph.output]
    evaluator = ReferenceEvaluator(model)
    return [dict(zip(names, evaluator.run(None, feed))) for feed in feeds]


def differ(want: list[dict], got: list[dict], atol: float, rtol: float = 0.0, half_ulp: bool = False) -> str | None:
    """None when every output agrees within ``|a - e| <= atol + rtol*|e|`` (NaN where NaN);
    ``half_ulp``: float16 outputs may also differ by one float16 unit in the last place."""
    for w, g in zip(want, got):
        if list(w) != list(g):
            return f"outputs {list(w)} vs {list(g)}"
        for name in w:
            e, a = np.asarray(w[name]), np.asarray(g[name])
            if e.shape != a.shape:
                return f"output '{name}' shape {e.shape} vs {a.shape}"
            e64, a64 = e.astype(np.float64), a.astype(np.float64)
            if not np.array_equal(np.isnan(e64), np.isnan(a64)):
                return f"output '{name}' NaN positions differ"
            diff = np.abs(np.nan_to_num(a64) - np.nan_to_num(e64))
            rel = max(rtol, 2.0**-10 if half_ulp and e.dtype == np.float16 else 0.0)
            if diff.size and not np.all(diff <= atol + rel * np.abs(np.nan_to_num(e64))):
                return f"output '{name}' differs by up to {float(diff.max()):.3g}"
    return None


def validate(case: Case) -> Case:
    """Checker (full), strict shape inference, and a run in ORT and onnx.reference whose results
    agree; raises ``Invalid`` otherwise."""
    model = case.model
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise Invalid(f"checker: {_first_line(exc)}") from None
    feeds = feeds_for(case)
    try:
        want = run_ort(model, feeds)
    except Exception as exc:
        raise Invalid(f"onnxruntime: {_first_line(exc)}") from None
    if "loop-body-pads" in case.tags:  # onnx.reference's Loop returns wrong carried values (seen in 1.23)
        case.reference_ok = False
        return case
    try:
        ref = run_reference(model, feeds)
    except Exception as exc:
        case.reference_ok = False
        case.tags.add("reference-fails")
        del exc
        return case
    problem = differ(want, ref, atol=1e-4, rtol=1e-3)
    if problem:
        raise Invalid(f"onnxruntime and onnx.reference disagree on the original: {problem}")
    return case


def generate(seed: int, exclude: Iterable[str] = (), tries: int = 50,
             discards: dict[str, int] | None = None, opsets: Sequence[int] = OPSETS) -> Case:
    """A valid case from ``seed`` (the first valid one of up to ``tries`` derived seeds);
    ``discards`` counts why others were discarded."""
    for attempt in range(tries):
        chooser = RngChooser(np.random.default_rng([seed, attempt]))
        try:
            case = build(chooser, exclude, opsets)
            case.choices, case.spans, case.seed = chooser.choices, chooser.spans, seed
            return validate(case)
        except Invalid as exc:
            if discards is not None:
                key = signature(str(exc))
                discards[key] = discards.get(key, 0) + 1
    raise RuntimeError(f"no valid model from seed {seed} in {tries} tries")


def replay(choices: Sequence[int], exclude: Iterable[str] = ()) -> Case:
    chooser = ReplayChooser(choices)
    case = build(chooser, exclude)
    case.choices, case.spans = chooser.choices, chooser.spans
    return validate(case)


def cases(exclude: Iterable[str] = (), opsets: Sequence[int] = OPSETS, focus: Sequence[str] = ()):
    """A hypothesis strategy of valid cases (invalid ones are rejected with ``assume``);
    ``exclude``, ``opsets`` and ``focus`` as for ``build``."""
    from hypothesis import assume
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw):
        chooser = DrawChooser(draw)
        try:
            case = build(chooser, exclude, opsets, focus)
            case.choices = chooser.choices
            case = validate(case)
        except Invalid:
            assume(False)
            raise  # unreachable: assume raises
        return case

    return strategy()


# --- the oracle ------------------------------------------------------------------------------------

OK, NOT_APPLICABLE, REFUSED = "ok", "not-applicable", "refused"
MISMATCH, CRASH, INVALID_MODEL, INTERFACE = "mismatch", "crash", "invalid-model", "interface-changed"
INPUT_MUTATED = "input-mutated"  # the pass (or the manager) changed the caller's ModelProto
CATEGORIES = (OK, NOT_APPLICABLE, REFUSED, MISMATCH, CRASH, INVALID_MODEL, INTERFACE, INPUT_MUTATED)
FINE = frozenset({OK, NOT_APPLICABLE, REFUSED})

# The passes checked, as pipeline specs. Cosine bounds of reflect2const, resize-nearest and int8
# are model-dependent gates (a random graph of tiny tensors is mostly border): they run with a
# loose bar, so that what is judged is validity, interface and sanity, not image quality.
PASSES = ("fold-constants", "reflect2slice", "reflect2const(min_cos=0.0)", "resize-nearest(min_cos=0.0)",
          "fp16out", "pad-conv-fusion", "static-batch(batch=2)", "opset(version=11)", "opset(version=13)",
          "opset(version=18)", "opset(version=21)", "preproc-fold", "postproc-fold", "fp16", "int8(min_cos=0.0)",
          "nearest-half-pixel",
          # as the README runs them: most pads are computed until fold-constants turns them into initializers
          "fold-constants,reflect2slice", "fold-constants,pad-conv-fusion",
          # the scale benchmark's pipeline, verified once at the end (deferred verification)
          "fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=2)")
DTYPE_CHANGING = ("fp16out", "preproc-fold", "postproc-fold", "fp16")
EXACT_TOLERANCE = 1e-5


@dataclass
class Outcome:
    spec: str
    category: str
    message: str = ""
    seconds: float = 0.0
    rewrites: int = 0

    @property
    def fine(self) -> bool:
        return self.category in FINE


def pass_names(spec: str) -> list[str]:
    """The pass names of a pipeline spec (``fold-constants,opset(version=11)``)."""
    return [part.split("(", 1)[0].strip() for part in re.split(r",(?![^(\[]*[)\]])", spec)]


def static_batch_of(spec: str) -> int | None:
    if "static-batch" not in pass_names(spec):
        return None
    found = re.search(r"batch=(\d+)", spec)
    return int(found.group(1)) if found else 1


def interface(model: onnx.ModelProto) -> tuple[list, list]:
    """(inputs, outputs) as (name, element type, dims or None); initializers listed as inputs
    are kept (they are part of what a caller may feed)."""
    def describe(values: Iterable[onnx.ValueInfoProto]) -> list:
        rows = []
        for v in values:
            tt = v.type.tensor_type
            dims = None
            if tt.HasField("shape"):
                dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
            rows.append((v.name, tt.elem_type, dims))
        return rows

    return describe(model.graph.input), describe(model.graph.output)


def interface_change(before: onnx.ModelProto, after: onnx.ModelProto, spec: str) -> str | None:
    """What a pass changed in the interface: names, count, order, rank (or a shape lost), a
    static dim changed (static-batch may fix a dynamic batch), dtypes unless the pass changes
    them by design."""
    names = pass_names(spec)
    for side, old, new in zip(("input", "output"), interface(before), interface(after)):
        old_names, new_names = [n for n, _, _ in old], [n for n, _, _ in new]
        if old_names != new_names:
            inits = {t.name for t in before.graph.initializer}
            gone = [n for n in old_names if n not in new_names]
            added = [n for n in new_names if n not in old_names]
            what = []
            if gone:
                kind = " (initializers listed as inputs)" if side == "input" and set(gone) <= inits else ""
                what.append(f"removed {side}(s) {', '.join(gone)}{kind}")
            if added:
                what.append(f"added {side}(s) {', '.join(added)}")
            return f"{side}s changed: {'; '.join(what) or 'reordered'}"
        for (n, old_type, old_dims), (_, new_type, new_dims) in zip(old, new):
            if old_type != new_type and not set(names) & set(DTYPE_CHANGING):
                return (f"{side} '{n}' type {TensorProto.DataType.Name(old_type)} -> "
                        f"{TensorProto.DataType.Name(new_type)}")
            if old_dims is None:
                continue
            if new_dims is None:
                return f"{side} '{n}' lost its shape {old_dims}"
            if len(old_dims) != len(new_dims):
                return f"{side} '{n}' rank {len(old_dims)} -> {len(new_dims)}"
            if set(names) & {"preproc-fold", "postproc-fold"} and "nhwc" in spec:
                continue
            for axis, (o, w) in enumerate(zip(old_dims, new_dims)):
                if isinstance(o, int) and o != w:
                    return f"{side} '{n}' dim {axis} {o} -> {w if w is not None else '?'} ({old_dims} -> {new_dims})"
                if side == "input" and o != w and not ("static-batch" in names and axis == 0):
                    return f"input '{n}' dim {axis} {o} -> {w}"
    return None


def _recorder():
    from graphsurgeon_cg.core.instruments import Instrument

    class Recorder(Instrument):
        """Remembers the model after the pass, so that failures of the checker (which runs
        after the pass) are told apart from failures of the pass."""

        def __init__(self):
            self.model: onnx.ModelProto | None = None
            self.passes_done = 0

        def after_pass(self, run, index, p, record):
            self.model, self.passes_done = run.stages[-1], index + 1

    return Recorder()


def _data_file(case: Case, folder: Path) -> str:
    """A small info file of calibration samples for the model's first input (int8), drawn like the
    numeric checker's own random inputs so that calibration covers the range it is checked on."""
    from graphsurgeon_cg.check.feeds import random_array

    first = case.model.graph.input[0]
    shape = case.shapes[first.name]
    rng = np.random.default_rng(7)
    lines = []
    for k in range(8):
        path = folder / f"sample{k}.npy"
        np.save(path, random_array((1, *shape[1:]), np.dtype(np.float32), rng)[0])
        lines.append(f"{k} {path.name} {shape[-1] if len(shape) > 1 else 1} {shape[-2] if len(shape) > 2 else 1}")
    info = folder / "calib.info"
    info.write_text("\n".join(lines) + "\n")
    return str(info)


class Oracle:
    """Checks passes on one case; the original's outputs are computed once per feed batch."""

    def __init__(self, case: Case):
        self.case = case
        self._outputs: dict[tuple[str, int | None], list[dict]] = {}

    def original(self, runtime: str, batch: int | None) -> tuple[list[dict], list[dict]]:
        feeds = feeds_for(self.case, batch)
        key = (runtime, batch)
        if key not in self._outputs:
            self._outputs[key] = (run_ort if runtime == "onnxruntime" else run_reference)(self.case.model, feeds)
        return feeds, self._outputs[key]

    def _outside_unit_range(self) -> str | None:
        """The first image-like float32 output (N x 1|3 x H x W) with values outside [-1, 1]:
        postproc-fold maps [-1, 1] to 0..255 and clips the rest, as documented."""
        _, outputs = self.original("onnxruntime", None)
        for sample in outputs:
            for name, value in sample.items():
                value = np.asarray(value)
                if value.dtype == np.float32 and value.ndim == 4 and value.shape[1] in (1, 3) and \
                        (not np.isfinite(value).all() or np.abs(value).max(initial=0) > 1):
                    return name
        return None

    def check(self, spec: str) -> tuple[Outcome, onnx.ModelProto | None]:
        """Run ``spec`` on a copy of the case's model, classify, and check that the copy (the
        caller's model) was left as it was (up to the names of Constant nodes' value tensors)."""
        start = time.perf_counter()
        given = copy.deepcopy(self.case.model)
        outcome, model = self._check(spec, given)
        changed = _changed_line(self.case.model, given)
        if changed:
            note = f"; the pass itself: {outcome.category}" + (f" ({outcome.message})" if outcome.message else "")
            outcome = Outcome(spec, INPUT_MUTATED, f"the caller's model was changed [{changed[0]}]: {changed[1]}{note}"
                              [:600], rewrites=outcome.rewrites)
        outcome.seconds = time.perf_counter() - start
        return outcome, model

    def _check(self, spec: str, given: onnx.ModelProto) -> tuple[Outcome, onnx.ModelProto | None]:
        from graphsurgeon_cg.check import CheckSettings, NumericChecker
        from graphsurgeon_cg.core.errors import InputError, NumericCheckFailed, PassFailed
        from graphsurgeon_cg.core.manager import PassManager
        from graphsurgeon_cg.services import OrtServices

        case = self.case
        passes = PassManager(spec).passes
        names = [p.name for p in passes]
        if "postproc-fold" in names:
            outside = self._outside_unit_range()
            if outside:
                return Outcome(spec, NOT_APPLICABLE, f"output '{outside}' leaves [-1, 1], the pass's domain"), None
        lossy = not all(p.exact for p in passes)
        recorder = _recorder()
        instruments = [recorder]
        if lossy:
            instruments.append(NumericChecker(CheckSettings(shapes=dict(case.shapes), seed=3)))
        with tempfile.TemporaryDirectory() as tmp:
            data = _data_file(case, Path(tmp)) if "int8" in names else None
            try:
                result = PassManager(spec, instruments=instruments, data=data, services=OrtServices()).run(given)
            except Exception as exc:  # classify by where it came from
                message = _first_line(exc, 400)
                if recorder.passes_done < len(passes):  # a pass (or the manager's verification of it)
                    if isinstance(exc, PassFailed):
                        if re.search(r"changed the model's|changed rank|changed type", message):
                            return Outcome(spec, INTERFACE, message), None
                        if re.search(r"rewritten model is invalid|cannot export the graph|has a cycle", message):
                            return Outcome(spec, INVALID_MODEL, message), None
                        return Outcome(spec, CRASH, message), None
                    if isinstance(exc, InputError):
                        return Outcome(spec, REFUSED, message), None
                    return Outcome(spec, CRASH, f"{type(exc).__name__}: {message}"), None
                if isinstance(exc, NumericCheckFailed):  # the checker, after the last pass
                    return Outcome(spec, MISMATCH, message), recorder.model
                if isinstance(exc, InputError) and "ONNX Runtime" in message:
                    return Outcome(spec, INVALID_MODEL, message), recorder.model
                return Outcome(spec, CRASH, f"{type(exc).__name__} in the check: {message}"), recorder.model
        record = result.records[-1]  # the pass under test is the last; earlier ones prepare the graph
        model = result.model
        if not record.modified:
            reason = "; ".join(record.reasons)[:300]
            return Outcome(spec, NOT_APPLICABLE, reason), model
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:
            return Outcome(spec, INVALID_MODEL, f"check_model(full_check=True): {_first_line(exc)}",
                           rewrites=record.rewrites), model
        changed = interface_change(case.model, model, spec)
        if changed:
            return Outcome(spec, INTERFACE, changed, rewrites=record.rewrites), model
        if lossy:  # the numeric checker judged it against the pass's bound
            return Outcome(spec, OK, rewrites=record.rewrites), model
        batch = static_batch_of(spec)
        runtimes = ["onnxruntime"] + (["onnx.reference"] if case.reference_ok else [])
        for runtime in runtimes:
            try:
                feeds, want = self.original(runtime, batch)
            except Exception as exc:  # e.g. the original at another batch: not the pass's fault
                return Outcome(spec, NOT_APPLICABLE, f"{runtime} cannot run the original at batch {batch}: "
                                                     f"{_first_line(exc)}"), model
            try:
                got = (run_ort if runtime == "onnxruntime" else run_reference)(model, feeds)
            except Exception as exc:
                return Outcome(spec, INVALID_MODEL, f"{runtime} cannot run the rewritten model: {_first_line(exc)}",
                               rewrites=record.rewrites), model
            # ORT's float16 kernels (Tanh seen) may round one ulp differently depending on how the
            # graph around them is laid out, even for identical inputs: allow that, in ORT only.
            problem = differ(want, got, atol=EXACT_TOLERANCE, half_ulp=runtime == "onnxruntime")
            if problem:
                return Outcome(spec, MISMATCH, f"{runtime}: {problem}", rewrites=record.rewrites), model
        return Outcome(spec, OK, rewrites=record.rewrites), model


def _semantic_text(model: onnx.ModelProto) -> list[str]:
    text = onnx.printer.to_text(model)
    return re.sub(r"(tensor = \w+(?:\[[^\]]*\])?) [^\s{]+ \{", r"\1 {", text).splitlines()


def _changed_line(before: onnx.ModelProto, after: onnx.ModelProto) -> tuple[str, str] | None:
    """How ``after`` differs from ``before`` (kind, detail), or None; Constant value tensor names
    aside (onnx-graphsurgeon names them on import, which is harmless)."""
    if before.SerializeToString() == after.SerializeToString():
        return None
    old_inits = [t.name for t in before.graph.initializer]
    new_inits = [t.name for t in after.graph.initializer]
    if old_inits != new_inits:
        gone = [n for n in old_inits if n not in new_inits]
        added = [n for n in new_inits if n not in old_inits]
        if gone and len(gone) == len(added):
            return "initializers renamed", ", ".join(f"{a} -> {b}" for a, b in zip(gone, added))
        return "initializers changed", f"removed {gone}, added {added}"
    old, new = _semantic_text(before), _semantic_text(after)
    for a, b in zip(old, new):
        if a != b:
            return "graph changed", f"{a.strip()[:150]} -> {b.strip()[:150]}"
    if len(old) != len(new):
        return "graph changed", f"{len(old)} -> {len(new)} lines of ONNX text"
    return None


def check_pass(case: Case, spec: str) -> Outcome:
    return Oracle(case).check(spec)[0]


# --- reproducers ------------------------------------------------------------------------------------

def signature(message: str) -> str:
    """A message with numbers and quoted names blanked, to group failures of one kind."""
    if message.startswith("the caller's model was changed ["):
        return message.split("]", 1)[0] + "]"
    text = re.sub(r"'[^']*'", "'…'", message)
    text = re.sub(r"/tmp/\S+", "<tmp>", text)
    text = re.sub(r"\b[\w./]*__\d+\b", "#", text)
    text = re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", text)
    return text[:160]


@dataclass
class Reproducer:
    spec: str
    category: str
    message: str
    text: str
    tags: list[str]
    choices: list[int]
    seed: int | None = None
    shrunk_from: int | None = None  # node count before shrinking
    nodes: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def reproducer(case: Case, outcome: Outcome) -> Reproducer:
    return Reproducer(outcome.spec, outcome.category, outcome.message, case.text, sorted(case.tags),
                      list(case.choices), case.seed, nodes=_count_nodes(case.model))


def _count_nodes(model: onnx.ModelProto) -> int:
    def count(graph: onnx.GraphProto) -> int:
        total = 0
        for node in graph.node:
            total += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    total += count(attr.g)
        return total

    return count(model.graph)


def shrink(case: Case, outcome: Outcome, seconds: float = 20.0, exclude: Iterable[str] = ()) -> tuple[Case, Outcome]:
    """A smaller case that fails ``outcome.spec`` the same way (category and message signature),
    by replaying edited choice lists: chunks deleted, values zeroed or halved."""
    want = (outcome.category, signature(outcome.message))
    deadline = time.perf_counter() + seconds
    best, best_outcome = case, outcome
    seen: set[tuple[int, ...]] = set()

    def attempt(choices: list[int]) -> bool:
        nonlocal best, best_outcome
        key = tuple(choices)
        if key in seen or time.perf_counter() > deadline:
            return False
        seen.add(key)
        try:
            candidate = replay(choices, exclude)
        except (Invalid, RuntimeError):
            return False
        except Exception:  # a generator bug on an odd choice list: not a smaller reproducer
            return False
        got = check_pass(candidate, outcome.spec)
        if (got.category, signature(got.message)) != want:
            return False
        if _count_nodes(candidate.model) > _count_nodes(best.model):
            return False
        candidate.seed = case.seed
        best, best_outcome = candidate, got
        return True

    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        for start, end in sorted(best.spans, key=lambda se: se[0] - se[1]):  # whole blocks, largest first
            if end <= len(best.choices) and attempt(best.choices[:start] + best.choices[end:]):
                improved = True
                break
        if improved:
            continue
        for size in (16, 8, 4, 2, 1):
            i = len(best.choices) - size
            while i >= 0 and time.perf_counter() < deadline:
                if attempt(best.choices[:i] + best.choices[i + size:]):
                    improved = True
                i -= size
        for i in range(len(best.choices)):
            if time.perf_counter() > deadline:
                break
            value = best.choices[i] if i < len(best.choices) else 0
            for smaller in dict.fromkeys((0, value // 2, value - 1)):
                if 0 <= smaller < value:
                    trial = list(best.choices)
                    trial[i] = smaller
                    if attempt(trial):
                        improved = True
                        break
    return best, best_outcome


# --- campaigns -------------------------------------------------------------------------------------

@dataclass
class PassTally:
    spec: str
    tried: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    seconds: float = 0.0
    reproducers: dict[str, list[Reproducer]] = field(default_factory=dict)
    signatures: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def applicable(self) -> int:
        return self.tried - self.counts[NOT_APPLICABLE] - self.counts[REFUSED]


def run_campaign(graphs: int, seed: int = 0, passes: Sequence[str] = PASSES, keep: int = 3,
                 shrink_seconds: float = 10.0, shrink_budget: float | None = None, exclude: Iterable[str] = (),
                 progress: Callable[[int, Case], None] | None = None, deadline: float | None = None,
                 tallies: dict[str, PassTally] | None = None) -> tuple[dict[str, PassTally], dict[str, Any]]:
    """``graphs`` cases from ``seed``, every pass on each; per pass the tally and up to ``keep``
    reproducers per category (distinct message signatures first, shrunk; ``deadline`` is a
    ``time.perf_counter()`` value after which no new graph starts)."""
    tallies = tallies if tallies is not None else {spec: PassTally(spec) for spec in passes}
    shrink_left = math.inf if shrink_budget is None else shrink_budget
    discards: dict[str, int] = {}
    tags: dict[str, int] = {}
    done = 0
    start = time.perf_counter()
    for index in range(graphs):
        if deadline is not None and time.perf_counter() > deadline:
            break
        case = generate(seed * 1_000_003 + index, exclude, discards=discards)
        for tag in case.tags:
            tags[tag] = tags.get(tag, 0) + 1
        oracle = Oracle(case)
        for spec in passes:
            outcome, _ = oracle.check(spec)
            tally = tallies[spec]
            tally.tried += 1
            tally.counts[outcome.category] += 1
            tally.seconds += outcome.seconds
            if outcome.fine:
                continue
            sig = signature(outcome.message)
            by_sig = tally.signatures.setdefault(outcome.category, {})
            by_sig[sig] = by_sig.get(sig, 0) + 1
            kept = tally.reproducers.setdefault(outcome.category, [])
            if len(kept) < keep and all(signature(r.message) != sig for r in kept):
                seconds = min(shrink_seconds, shrink_left)
                began = time.perf_counter()
                small, small_outcome = shrink(case, outcome, seconds, exclude) if seconds > 0 else (case, outcome)
                shrink_left -= time.perf_counter() - began
                rep = reproducer(small, small_outcome)
                rep.shrunk_from = _count_nodes(case.model)
                kept.append(rep)
        done += 1
        if progress:
            progress(index, case)
    meta = {"graphs": done, "seed": seed, "seconds": time.perf_counter() - start, "discarded": discards,
            "tags": dict(sorted(tags.items()))}
    return tallies, meta
