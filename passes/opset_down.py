"""Lowering a model to an older opset where ``onnx.version_converter`` has no adapter.

The converter lacks most downward adapters (Relu 14 -> 13, Reshape 14, Shape 15,
BatchNormalization 15, Constant 12 -> 11, ...), although most of those steps only widened
the types an operator takes. Each node of the default domain is lowered on its own:

1. the operator's schema at the target opset is the one it has at the source (the same
   ``since_version``): nothing changed, the node is kept;
2. an adapter below exists for the operator: it rewrites the node (an attribute that became an
   input or back, an operator newer than the target decomposed into older ones);
3. otherwise the node is relabelled when it uses nothing the target's schema lacks: every
   attribute it sets exists there (or holds the newer schema's default), its inputs and
   outputs sit at positions of the same name, no attribute default changed, and no negative
   axis goes below opset 11. Types are then checked for the whole model by the ONNX checker
   (strict shape inference with type checks): Relu on int8 cannot go to 13.

Anything else is refused, naming the operator, the node and the versions. Semantic changes
that leave the schema's structure alone are adapters (Softmax 13 reads one axis where 11
flattened from it; Resize 19's half_pixel_symmetric; Pad 19's wrap). The opset pass then
compares the result with the original in ONNX Runtime, as for every conversion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from graphsurgeon_cg.core.modelio import weightless

DEFAULT = ("", "ai.onnx")
INT64_MAX = np.iinfo(np.int64).max


class Refused(Exception):
    """The model cannot be lowered; the message says which node and why."""


class _Context:
    def __init__(self, model: onnx.ModelProto, source: int, target: int):
        self.source, self.target = source, target
        inferred = onnx.shape_inference.infer_shapes(weightless(model), data_prop=True)
        self.shapes: dict[str, list[int | None]] = {}
        self.types: dict[str, int] = {}
        for g in _graphs(inferred.graph):
            for t in g.initializer:
                self.shapes[t.name], self.types[t.name] = list(t.dims), t.data_type
            for v in [*g.input, *g.value_info, *g.output]:
                tt = v.type.tensor_type
                if v.type.HasField("tensor_type"):
                    self.types[v.name] = tt.elem_type
                    if tt.HasField("shape"):
                        self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        self.constants = _constants(model.graph)
        self.names = {n for g in _graphs(model.graph) for node in g.node for n in [node.name, *node.output]}
        self.names |= {t.name for g in _graphs(model.graph) for t in [*g.initializer, *g.input]}

    def fresh(self, base: str) -> str:
        name, k = base, 0
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
        """The constant value of input ``index`` (None when absent); refused when computed."""
        if index >= len(node.input) or not node.input[index]:
            return None
        if node.input[index] not in self.constants:
            raise _refuse(node, self, f"its {what} are computed in the graph (fold-constants first)")
        return self.constants[node.input[index]]

    def constant(self, node: onnx.NodeProto, value: np.ndarray, what: str) -> tuple[str, onnx.NodeProto]:
        """A Constant node holding ``value``, named after ``node``; returns (output name, node)."""
        out = self.fresh(f"{node.name or node.output[0]}_{what}")
        return out, helper.make_node("Constant", [], [out], name=self.fresh(out + "_const"),
                                     value=numpy_helper.from_array(value, out))

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


def lower(model: onnx.ModelProto, source: int, target: int) -> onnx.ModelProto:
    """``model`` (opset ``source``) at opset ``target`` < ``source``; ``model`` is left unchanged."""
    if any(f.node for f in model.functions):
        raise Refused("the model has local functions, which cgsurg does not lower")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    ctx = _Context(out, source, target)
    for g in _graphs(out.graph):
        lowered = [new for node in g.node for new in _lower_node(node, ctx)]
        del g.node[:]
        g.node.extend(lowered)
    for entry in out.opset_import:
        if entry.domain in DEFAULT:
            entry.version = target
    try:
        onnx.checker.check_model(weightless(out), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        reason = str(exc).strip().splitlines()[0]
        raise Refused(f"the relabelled model fails the ONNX checker at opset {target}: {reason}") from None
    return out


def _lower_node(node: onnx.NodeProto, ctx: _Context) -> list[onnx.NodeProto]:
    if node.domain not in DEFAULT:
        return [node]
    try:
        src = defs.get_schema(node.op_type, ctx.source)
    except defs.SchemaError:
        raise _refuse(node, ctx, f"ONNX has no operator {node.op_type} at opset {ctx.source}") from None
    tgt = _schema(node.op_type, ctx.target)
    if tgt is not None and tgt.since_version == src.since_version:
        return [node]
    adapter = ADAPTERS.get(node.op_type)
    if adapter is not None:
        return adapter(node, ctx)
    return _relabel(node, ctx)


def _relabel(node: onnx.NodeProto, ctx: _Context) -> list[onnx.NodeProto]:
    """Keep ``node`` as it is when it uses nothing its target schema lacks (see the docstring)."""
    src = defs.get_schema(node.op_type, ctx.source)
    tgt = _schema(node.op_type, ctx.target)
    if tgt is None:
        raise _refuse(node, ctx, f"{node.op_type} exists only from opset {_first(node.op_type)} and cgsurg has no "
                                 "decomposition for it")
    reason = _relabel_reason(node, src, tgt, ctx.target)
    if reason:
        raise _refuse(node, ctx, reason)
    _drop_attrs(node, *(a.name for a in node.attribute if a.name not in tgt.attributes))  # defaults, checked
    return [node]


def _relabel_reason(node: onnx.NodeProto, src: defs.OpSchema, tgt: defs.OpSchema, target: int) -> str | None:
    for attr in node.attribute:
        if attr.name not in tgt.attributes:
            default = src.attributes[attr.name].default_value if attr.name in src.attributes else None
            if default is None or not default.name or _value(default) != _value(attr):
                return f"attribute '{attr.name}' does not exist in {node.op_type}-{tgt.since_version}"
        if target < 11 and attr.name in ("axis", "axes") and np.any(np.asarray(_value(attr)) < 0):
            return "negative axes are allowed only from opset 11"
    for name in set(src.attributes) & set(tgt.attributes):
        a, b = src.attributes[name].default_value, tgt.attributes[name].default_value
        if a.SerializeToString() != b.SerializeToString():
            return f"the default of '{name}' changed from opset {tgt.since_version} to {src.since_version}"
    for kind, used, old, new, low, high in (
            ("input", node.input, src.inputs, tgt.inputs, tgt.min_input, tgt.max_input),
            ("output", node.output, src.outputs, tgt.outputs, tgt.min_output, tgt.max_output)):
        count = len(used)
        while count and not used[count - 1]:
            count -= 1
        if not low <= count <= high:
            return f"{count} {kind}s, where {node.op_type}-{tgt.since_version} takes {low} to {high}"
        for i in range(count):
            was, now = old[min(i, len(old) - 1)], new[min(i, len(new) - 1)]
            if was.name != now.name:
                return f"{kind} {i} is '{was.name}' in {node.op_type}-{src.since_version} but '{now.name}' in " \
                       f"{node.op_type}-{tgt.since_version}"
            if not used[i] and now.option == defs.OpSchema.FormalParameterOption.Single:
                return f"{kind} '{now.name}' is required by {node.op_type}-{tgt.since_version}"
    return None


# --- adapters: each rewrites one node into nodes valid at ctx.target --------------------------

def _hard_swish(node, ctx):  # HardSwish-14 is x * HardSigmoid(x) with alpha 1/6, beta 1/2 by definition
    if ctx.target >= 14:
        return _relabel(node, ctx)
    gate = ctx.fresh(f"{node.output[0]}_gate")
    return [helper.make_node("HardSigmoid", [node.input[0]], [gate], name=ctx.fresh(f"{node.name}_gate"),
                             alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", [node.input[0], gate], list(node.output), name=node.name)]


def _mish(node, ctx):  # Mish-18 is x * tanh(softplus(x)) by definition
    if ctx.target >= 18:
        return _relabel(node, ctx)
    soft, tanh = ctx.fresh(f"{node.output[0]}_softplus"), ctx.fresh(f"{node.output[0]}_tanh")
    return [helper.make_node("Softplus", [node.input[0]], [soft], name=ctx.fresh(soft)),
            helper.make_node("Tanh", [soft], [tanh], name=ctx.fresh(tanh)),
            helper.make_node("Mul", [node.input[0], tanh], list(node.output), name=node.name)]


def _gelu(node, ctx):
    """Gelu-20 by its definition: 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    if ctx.target >= 20:
        return _relabel(node, ctx)
    x, dtype = node.input[0], _np_type(node, ctx)
    approximate = _attrs(node).get("approximate", "none")
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
        return _relabel(node, ctx)
    if len([o for o in node.output if o]) > 1:
        raise _refuse(node, ctx, "its Mean/InvStdDev outputs are used")
    if ctx.types.get(node.input[0]) != onnx.TensorProto.FLOAT:
        raise _refuse(node, ctx, "its data is not known to be float32")
    attrs = _attrs(node)
    axis, rank = attrs.get("axis", -1), ctx.rank(node.input[0])
    if axis >= 0 and rank is None:
        raise _refuse(node, ctx, "its input's rank is unknown")
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
        return _relabel(node, ctx)
    axis, rank = _attrs(node).get("axis", -1), ctx.rank(node.input[0])
    if axis != -1 and (rank is None or axis != rank - 1):
        raise _refuse(node, ctx, f"axis {axis} is not the last axis (before opset 13 {node.op_type} flattens "
                                 "the axes from it on)")
    if ctx.target < 11:
        if rank is None:
            raise _refuse(node, ctx, "its input's rank is unknown")
        axis = rank - 1
    _set_attrs(node, axis=axis)
    return [node]


def _resize(node, ctx):
    attrs = _attrs(node)
    if ctx.target < 11:
        raise _refuse(node, ctx, "Resize before opset 11 has other operands and coordinates")
    if ctx.target < 19 and attrs.get("coordinate_transformation_mode") == "half_pixel_symmetric":
        raise _refuse(node, ctx, "half_pixel_symmetric exists only from opset 19")
    if ctx.target < 18:
        for name, default in (("antialias", 0), ("keep_aspect_ratio_policy", "stretch")):
            if attrs.get(name, default) != default:
                raise _refuse(node, ctx, f"{name} exists only from opset 18")
        if "axes" in attrs:
            raise _refuse(node, ctx, "axes exists only from opset 18")
        _drop_attrs(node, "antialias", "keep_aspect_ratio_policy")
    nodes = []
    if ctx.target < 13:  # roi and scales were required operands: give them empty constants
        inputs = list(node.input) + [""] * (3 - len(node.input))
        for index, what in ((1, "roi"), (2, "scales")):
            if not inputs[index]:
                inputs[index], const = ctx.constant(node, np.zeros(0, np.float32), what)
                nodes.append(const)
        del node.input[:]
        node.input.extend(inputs)
    return [*nodes, *_relabel(node, ctx)]


def _pad(node, ctx):
    mode = _attrs(node).get("mode", "constant")
    if ctx.target < 11:
        raise _refuse(node, ctx, "Pad before opset 11 takes its pads as an attribute (not lowered by cgsurg)")
    if ctx.target < 19 and mode == "wrap":
        raise _refuse(node, ctx, "wrap padding exists only from opset 19")
    axes = ctx.const(node, 3, "axes")
    if ctx.target >= 18 or axes is None:
        return _relabel(node, ctx)
    pads, rank = ctx.const(node, 1, "pads"), ctx.rank(node.input[0])
    if pads is None or rank is None:
        raise _refuse(node, ctx, "its input's rank is unknown, so its axes cannot be spelt out as pads")
    full = np.zeros(2 * rank, np.int64)
    for i, axis in enumerate(int(a) % rank for a in axes.ravel()):
        full[axis], full[axis + rank] = pads[i], pads[i + axes.size]
    name, const = ctx.constant(node, full, "pads")
    inputs = list(node.input[:3])
    inputs[1] = name
    del node.input[:]
    node.input.extend(inputs)
    return [const, *_relabel(node, ctx)]


def _split(node, ctx):
    attrs = _attrs(node)
    sizes = ctx.const(node, 1, "split sizes")
    if "num_outputs" in attrs and ctx.target < 18:
        shape, axis = ctx.shapes.get(node.input[0]), attrs.get("axis", 0)
        dim = shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None
        if dim is None:
            raise _refuse(node, ctx, "it splits by num_outputs along an axis whose size is unknown")
        count = attrs["num_outputs"]
        chunk = -(-dim // count)  # Split-18: equal chunks of ceil(dim / n), the last one smaller
        sizes = np.array([chunk] * (count - 1) + [dim - chunk * (count - 1)], np.int64)
        _drop_attrs(node, "num_outputs")
    nodes = []
    del node.input[1:]
    if sizes is not None and ctx.target >= 13:
        name, const = ctx.constant(node, sizes.astype(np.int64), "split")
        nodes.append(const)
        node.input.append(name)
    elif sizes is not None:
        _set_attrs(node, split=[int(s) for s in sizes.ravel()])
    return [*nodes, *_relabel(node, ctx)]


def _axes_input(since: int, noop: bool = False) -> Callable:
    """Squeeze/Unsqueeze (13), ReduceSum (13), the other reductions (18) took ``axes`` as an
    attribute before ``since``: a constant operand goes back into it."""
    def adapt(node, ctx):
        if ctx.target >= since or ctx.source < since:
            return _relabel(node, ctx)
        axes = ctx.const(node, 1, "axes")
        empty = axes is None or axes.size == 0
        if noop and empty and _attrs(node).get("noop_with_empty_axes", 0):
            return [helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name)]
        del node.input[1:]
        _drop_attrs(node, "noop_with_empty_axes")
        if not empty:
            _set_attrs(node, axes=[int(a) for a in axes.ravel()])
        return _relabel(node, ctx)
    return adapt


def _clip(node, ctx):
    """Clip before 11 took min and max as attributes."""
    if ctx.target >= 11:
        return _relabel(node, ctx)
    bounds = {k: ctx.const(node, i, k) for i, k in ((1, "min"), (2, "max"))}
    del node.input[1:]
    _set_attrs(node, **{k: float(v) for k, v in bounds.items() if v is not None})
    return _relabel(node, ctx)


def _shape(node, ctx):
    """Shape-15's start/end: the same as a Slice of the whole shape."""
    attrs = _attrs(node)
    if ctx.target >= 15 or ("start" not in attrs and "end" not in attrs):
        return _relabel(node, ctx)
    _drop_attrs(node, "start", "end")
    whole = ctx.fresh(f"{node.output[0]}_whole")
    out, node.output[0] = node.output[0], whole
    nodes = [node]
    names = []
    for what, value in (("starts", attrs.get("start", 0)), ("ends", attrs.get("end", INT64_MAX)), ("axes", 0)):
        name, const = ctx.constant(node, np.array([value], np.int64), what)
        nodes.append(const)
        names.append(name)
    nodes.append(helper.make_node("Slice", [whole, *names], [out], name=ctx.fresh(f"{node.name}_slice")))
    return [*_relabel(node, ctx), *nodes[1:]]


def _slice(node, ctx):
    """Slice before 10 took starts, ends and axes as attributes, and no steps."""
    if ctx.target >= 10:
        return _relabel(node, ctx)
    values = {k: ctx.const(node, i, k) for i, k in ((1, "starts"), (2, "ends"), (3, "axes"), (4, "steps"))}
    if values["steps"] is not None and np.any(values["steps"] != 1):
        raise _refuse(node, ctx, "steps other than 1 exist only from opset 10")
    del node.input[1:]
    _set_attrs(node, **{k: [int(v) for v in a.ravel()] for k, a in values.items() if a is not None and k != "steps"})
    return _relabel(node, ctx)


def _batch_norm(node, ctx):
    """BatchNormalization 14/15 in inference mode (training_mode 0, one output) is BN-9's."""
    if ctx.target >= 14:
        return _relabel(node, ctx)
    if ctx.target < 9:
        raise _refuse(node, ctx, "BatchNormalization before opset 9 has a 'spatial' attribute")
    if _attrs(node).get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise _refuse(node, ctx, "it is in training mode (running statistics as outputs)")
    _drop_attrs(node, "training_mode")
    del node.output[1:]
    return [node]


def _constant(node, ctx):
    """Constant-12's value_float(s)/value_int(s)/value_string(s) are a ``value`` tensor before 12."""
    attrs = _attrs(node)
    if ctx.target >= 12 or "value" in attrs:
        return _relabel(node, ctx)
    kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64,
             "value_string": object, "value_strings": object}
    name = next((k for k in attrs if k in kinds), None)
    if name is None:
        raise _refuse(node, ctx, "sparse constants exist only from opset 11")
    value = attrs[name]
    array = np.array([v.decode() for v in value] if name == "value_strings" else
                     value.decode() if name == "value_string" else value, kinds[name])
    del node.attribute[:]
    node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(array, node.output[0])))
    return [node]


def _reshape(node, ctx):
    """allowzero=1 means what 0 means when the shape holds no zero."""
    if _attrs(node).get("allowzero", 0) and ctx.target < 14:
        shape = ctx.const(node, 1, "shape")
        if shape is None or np.any(shape == 0):
            raise _refuse(node, ctx, "allowzero=1 with a zero in the shape exists only from opset 14")
        _drop_attrs(node, "allowzero")
    return _relabel(node, ctx)


ADAPTERS: dict[str, Callable[[onnx.NodeProto, _Context], list[onnx.NodeProto]]] = {
    "HardSwish": _hard_swish, "Mish": _mish, "Gelu": _gelu, "LayerNormalization": _layer_norm,
    "Softmax": _softmax, "LogSoftmax": _softmax, "Hardmax": _softmax, "Resize": _resize, "Pad": _pad,
    "Split": _split, "Squeeze": _axes_input(13), "Unsqueeze": _axes_input(13), "ReduceSum": _axes_input(13, True),
    **{op: _axes_input(18, True) for op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                            "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")},
    "Clip": _clip, "Slice": _slice, "Shape": _shape, "BatchNormalization": _batch_norm, "Constant": _constant, "Reshape": _reshape,
}


# --- helpers -------------------------------------------------------------------------------

def _refuse(node: onnx.NodeProto, ctx: _Context, reason: str) -> Refused:
    since = _schema(node.op_type, ctx.source)
    version = f"{node.op_type}-{since.since_version}" if since else node.op_type
    return Refused(f"{version} '{node.name or node.output[0]}' cannot go to opset {ctx.target}: {reason}")


def _schema(op: str, version: int) -> defs.OpSchema | None:
    try:
        return defs.get_schema(op, version)
    except defs.SchemaError:
        return None


def _first(op: str) -> int:
    return min(s.since_version for s in defs.get_all_schemas_with_history() if s.name == op and s.domain == "")


def _value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else list(value) if isinstance(value, list) else value


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: _value(a) for a in node.attribute}


def _drop_attrs(node: onnx.NodeProto, *names: str) -> None:
    keep = [a for a in node.attribute if a.name not in names]
    del node.attribute[:]
    node.attribute.extend(keep)


def _set_attrs(node: onnx.NodeProto, **values) -> None:
    _drop_attrs(node, *values)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in values.items())


def _np_type(node: onnx.NodeProto, ctx: _Context) -> np.dtype:
    elem = ctx.types.get(node.input[0])
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        raise _refuse(node, ctx, "its data type is not known to be float16, float32 or float64")
    return helper.tensor_dtype_to_np_dtype(elem)


def _graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                yield from _graphs(sub)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    found = {t.name: numpy_helper.to_array(t) for g in _graphs(graph) for t in g.initializer}
    for g in _graphs(graph):
        for node in g.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                found[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return found
