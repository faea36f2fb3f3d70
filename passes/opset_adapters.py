"""The adapters of cgsurg's opset lowering (``opset_down``): one per operator whose schema
changed in a way a relabel cannot cover. Each takes a node of the source opset and returns
nodes valid at ``ctx.target``, or raises ``Refused`` saying why; most end in ``relabel`` for
the versions left. Decompositions follow the operators' definitions in the ONNX spec."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .opset_down import INT64_MAX, Context, drop_attrs, float_type, node_attrs, refuse, relabel, set_attrs


def _hard_swish(node, ctx):  # HardSwish-14 is x * HardSigmoid(x) with alpha 1/6, beta 1/2 by definition
    if ctx.target >= 14:
        return relabel(node, ctx)
    gate = ctx.fresh(f"{node.output[0]}_gate")
    return [helper.make_node("HardSigmoid", [node.input[0]], [gate], name=ctx.fresh(f"{node.name}_gate"),
                             alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", [node.input[0], gate], list(node.output), name=node.name)]


def _mish(node, ctx):  # Mish-18 is x * tanh(softplus(x)) by definition
    if ctx.target >= 18:
        return relabel(node, ctx)
    soft, tanh = ctx.fresh(f"{node.output[0]}_softplus"), ctx.fresh(f"{node.output[0]}_tanh")
    return [helper.make_node("Softplus", [node.input[0]], [soft], name=ctx.fresh(soft)),
            helper.make_node("Tanh", [soft], [tanh], name=ctx.fresh(tanh)),
            helper.make_node("Mul", [node.input[0], tanh], list(node.output), name=node.name)]


def _gelu(node, ctx):
    """Gelu-20 by its definition: 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    if ctx.target >= 20:
        return relabel(node, ctx)
    x, dtype = node.input[0], float_type(node, ctx)
    approximate = node_attrs(node).get("approximate", "none")
    nodes: list[onnx.NodeProto] = []

    def op(kind: str, *inputs: str) -> str:
        out = ctx.fresh(f"{node.output[0]}_{kind.lower()}")
        nodes.append(helper.make_node(kind, list(inputs), [out], name=ctx.fresh(out)))
        return out

    def number(value: float, what: str) -> str:
        out, const = ctx.constant(node, np.array(value, dtype), what)
        nodes.append(const)
        return out

    if approximate == "tanh":
        cube = op("Mul", x, op("Mul", x, x))
        inner = op("Mul", number(math.sqrt(2 / math.pi), "k"), op("Add", x, op("Mul", number(0.044715, "c"), cube)))
        gate = op("Tanh", inner)
    else:
        gate = op("Erf", op("Div", x, number(math.sqrt(2), "sqrt2")))
    half = op("Mul", number(0.5, "half"), x)
    nodes.append(helper.make_node("Mul", [half, op("Add", number(1.0, "one"), gate)], list(node.output),
                                  name=node.name))
    return nodes


def _layer_norm(node, ctx):
    """LayerNormalization-17 by its definition over axes [axis, rank): (x - mean) / sqrt(var + eps)
    * scale + bias, in float32 (the op's stash_type) on float32 data only."""
    if ctx.target >= 17:
        return relabel(node, ctx)
    if len([o for o in node.output if o]) > 1:
        raise refuse(node, ctx, "its Mean/InvStdDev outputs are used")
    if ctx.types.get(node.input[0]) != onnx.TensorProto.FLOAT:
        raise refuse(node, ctx, "its data is not known to be float32")
    attrs = node_attrs(node)
    axis, rank = attrs.get("axis", -1), ctx.rank(node.input[0])
    if axis >= 0 and rank is None:
        raise refuse(node, ctx, "its input's rank is unknown")
    axes = list(range(axis, 0)) if axis < 0 else list(range(axis, rank or 0))
    x, nodes = node.input[0], []

    def op(kind: str, *inputs: str, out: str | None = None) -> str:
        out = out or ctx.fresh(f"{node.output[0]}_{kind.lower()}")
        if kind == "ReduceMean" and ctx.target >= 18:
            axes_name, const = ctx.constant(node, np.array(axes, np.int64), "axes")
            nodes.extend([const, helper.make_node(kind, [*inputs, axes_name], [out], name=ctx.fresh(out))])
        else:
            extra = {"axes": axes} if kind == "ReduceMean" else {}
            nodes.append(helper.make_node(kind, list(inputs), [out], name=ctx.fresh(out), **extra))
        return out

    centred = op("Sub", x, op("ReduceMean", x))
    eps, const = ctx.constant(node, np.array(attrs.get("epsilon", 1e-5), np.float32), "epsilon")
    nodes.append(const)
    normed = op("Div", centred, op("Sqrt", op("Add", op("ReduceMean", op("Mul", centred, centred)), eps)))
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    scaled = op("Mul", normed, node.input[1], out=None if bias else node.output[0])
    if bias:
        op("Add", scaled, bias, out=node.output[0])
    return nodes


def _softmax(node, ctx):
    """Softmax/LogSoftmax/Hardmax before 13 flatten the axes from ``axis`` on: the same as 13
    only when ``axis`` is the last one."""
    if ctx.target >= 13 or ctx.source < 13:
        return relabel(node, ctx)
    axis, rank = node_attrs(node).get("axis", -1), ctx.rank(node.input[0])
    if axis != -1 and (rank is None or axis != rank - 1):
        raise refuse(node, ctx, f"axis {axis} is not the last axis (before opset 13 {node.op_type} flattens "
                                 "the axes from it on)")
    if ctx.target < 11:
        if rank is None:
            raise refuse(node, ctx, "its input's rank is unknown")
        axis = rank - 1
    set_attrs(node, axis=axis)
    return [node]


def _resize(node, ctx):
    attrs = node_attrs(node)
    if ctx.target < 11:
        raise refuse(node, ctx, "Resize before opset 11 has other operands and coordinates")
    if ctx.target < 19 and attrs.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        raise refuse(node, ctx, "half_pixel_symmetric exists only from opset 19")
    if ctx.target < 18:
        for name, default in (("antialias", 0), ("keep_aspect_ratio_policy", "stretch")):
            if attrs.get(name, default) != default:
                raise refuse(node, ctx, f"{name} exists only from opset 18")
        if "axes" in attrs:
            raise refuse(node, ctx, "axes exists only from opset 18")
        drop_attrs(node, "antialias", "keep_aspect_ratio_policy")
    nodes = []
    if ctx.target < 13:  # roi and scales were required operands: give them empty constants
        inputs = list(node.input) + [""] * (3 - len(node.input))
        for index, what in ((1, "roi"), (2, "scales")):
            if not inputs[index]:
                inputs[index], const = ctx.constant(node, np.zeros(0, np.float32), what)
                nodes.append(const)
        del node.input[:]
        node.input.extend(inputs)
    return [*nodes, *relabel(node, ctx)]


def _pad(node, ctx):
    mode = node_attrs(node).get("mode", "constant")
    if ctx.target < 11:
        raise refuse(node, ctx, "Pad before opset 11 takes its pads as an attribute (not lowered by cgsurg)")
    if ctx.target < 19 and mode == "wrap":
        raise refuse(node, ctx, "wrap padding exists only from opset 19")
    axes = ctx.const(node, 3, "axes")
    if ctx.target >= 18 or axes is None:
        return relabel(node, ctx)
    pads, rank = ctx.const(node, 1, "pads"), ctx.rank(node.input[0])
    if pads is None or rank is None:
        raise refuse(node, ctx, "its input's rank is unknown, so its axes cannot be spelt out as pads")
    full = np.zeros(2 * rank, np.int64)
    for i, axis in enumerate(int(a) % rank for a in axes.ravel()):
        full[axis], full[axis + rank] = pads[i], pads[i + axes.size]
    name, const = ctx.constant(node, full, "pads")
    inputs = list(node.input[:3])
    inputs[1] = name
    del node.input[:]
    node.input.extend(inputs)
    return [const, *relabel(node, ctx)]


def _split(node, ctx):
    attrs = node_attrs(node)
    sizes = ctx.const(node, 1, "split sizes")
    if "num_outputs" in attrs and ctx.target < 18:
        shape, axis = ctx.shapes.get(node.input[0]), attrs.get("axis", 0)
        dim = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None
        if dim is None:
            raise refuse(node, ctx, "it splits by num_outputs along an axis whose size is unknown")
        count = attrs["num_outputs"]
        chunk = -(-dim // count)  # Split-18: equal chunks of ceil(dim / n), the last one smaller
        sizes = np.array([chunk] * (count - 1) + [dim - chunk * (count - 1)], np.int64)
        drop_attrs(node, "num_outputs")
    nodes = []
    del node.input[1:]
    if sizes is not None and ctx.target >= 13:
        name, const = ctx.constant(node, sizes.astype(np.int64), "split")
        nodes.append(const)
        node.input.append(name)
    elif sizes is not None:
        set_attrs(node, split=[int(s) for s in sizes.ravel()])
    return [*nodes, *relabel(node, ctx)]


def _axes_input(since: int, noop: bool = False) -> Callable:
    """Squeeze/Unsqueeze (13), ReduceSum (13), the other reductions (18) took ``axes`` as an
    attribute before ``since``: a constant operand goes back into it."""
    def adapt(node, ctx):
        if ctx.target >= since or ctx.source < since:
            return relabel(node, ctx)
        axes = ctx.const(node, 1, "axes")
        empty = axes is None or axes.size == 0
        if noop and empty and node_attrs(node).get("noop_with_empty_axes", 0):
            return [helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)]
        del node.input[1:]
        drop_attrs(node, "noop_with_empty_axes")
        if not empty:
            set_attrs(node, axes=[int(a) for a in axes.ravel()])
        return relabel(node, ctx)
    return adapt


def _clip(node, ctx):
    """Clip before 11 took min and max as attributes."""
    if ctx.target >= 11:
        return relabel(node, ctx)
    bounds = {k: ctx.const(node, i, k) for i, k in ((1, "min"), (2, "max"))}
    del node.input[1:]
    set_attrs(node, **{k: float(v) for k, v in bounds.items() if v is not None})
    return relabel(node, ctx)


def _shape(node, ctx):
    """Shape-15's start/end: the same as a Slice of the whole shape."""
    attrs = node_attrs(node)
    if ctx.target >= 15 or ("start" not in attrs and "end" not in attrs):
        return relabel(node, ctx)
    drop_attrs(node, "start", "end")
    whole = ctx.fresh(f"{node.output[0]}_whole")
    out, node.output[0] = node.output[0], whole
    nodes = [node]
    names = []
    for what, value in (("starts", attrs.get("start", 0)), ("ends", attrs.get("end", INT64_MAX)), ("axes", 0)):
        name, const = ctx.constant(node, np.array([value], np.int64), what)
        nodes.append(const)
        names.append(name)
    nodes.append(helper.make_node("Slice", [whole, *names], [out], name=ctx.fresh(f"{node.name}_slice")))
    return [*relabel(node, ctx), *nodes[1:]]


def _slice(node, ctx):
    """Slice before 10 took starts, ends and axes as attributes, and no steps."""
    if ctx.target >= 10:
        return relabel(node, ctx)
    values = {k: ctx.const(node, i, k) for i, k in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps"))}
    if values["steps"] is not None and np.any(values["steps"] != 1):
        raise refuse(node, ctx, "steps other than 1 exist only from opset 10")
    del node.input[1:]
    set_attrs(node, **{k: [int(v) for v in a.ravel()] for k, a in values.items() if a is not None and k != "steps"})
    return relabel(node, ctx)


def _batch_norm(node, ctx):
    """BatchNormalization 14/15 in inference mode (training_mode 0, one output) is BN-9's."""
    if ctx.target >= 14:
        return relabel(node, ctx)
    if ctx.target < 9:
        raise refuse(node, ctx, "BatchNormalization before opset 9 has a 'spatial' attribute")
    if node_attrs(node).get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise refuse(node, ctx, "it is in training mode (running statistics as outputs)")
    drop_attrs(node, "training_mode")
    del node.output[1:]
    return [node]


def _constant(node, ctx):
    """Constant-12's value_float(s)/value_int(s)/value_string(s) are a ``value`` tensor before 12."""
    attrs = node_attrs(node)
    if ctx.target >= 12 or "value" in attrs:
        return relabel(node, ctx)
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64,
             "value_string": object, "value_strings": object}
    name = next((k for k in attrs if k in kinds), None)
    if name is None:
        raise refuse(node, ctx, "sparse constants exist only from opset 11")
    value = attrs[name]
    array = np.array([v.decode() for v in value] if name == "value_strings" else
                     value.decode() if name == "value_string" else value, kinds[name])
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(array, node.output[0])))
    return [node]


def _reshape(node, ctx):
    """allowzero=1 means what 0 means when the shape holds no zero."""
    if node_attrs(node).get("allowzero", 0) and ctx.target < 14:
        shape = ctx.const(node, 1, "shape")
        if shape is None or np.any(shape == 0):
            raise refuse(node, ctx, "allowzero=1 with a zero in the shape exists only from opset 14")
        drop_attrs(node, "allowzero")
    return relabel(node, ctx)


ADAPTERS: dict[str, Callable[[onnx.NodeProto, Context], list[onnx.NodeProto]]] = {
    "HardSwish": _hard_swish, "Mish": _mish, "Gelu": _gelu, "LayerNormalization": _layer_norm,
    "Softmax": _softmax, "LogSoftmax": _softmax, "Hardmax": _softmax, "Resize": _resize, "Pad": _pad,
    "Split": _split, "Squeeze": _axes_input(13), "Unsqueeze": _axes_input(13), "ReduceSum": _axes_input(13, True),
    **{op: _axes_input(18, True) for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                            "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")},
    "Clip": _clip, "Slice": _slice, "Shape": _shape, "BatchNormalization": _batch_norm, "Constant": _constant,
    "Reshape": _reshape,
}


