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

from collections.abc import Callable, Mapping

import numpy as np
import onnx
from onnx import defs, helper, numpy_helper

from graphsurgeon_cg.core.modelio import all_graphs, constant_values, weightless

DEFAULT = ("", "ai.onnx")
INT64_MAX = np.iinfo(np.int64).max


Adapter = Callable[[onnx.NodeProto, "Context"], "list[onnx.NodeProto]"]


class Refused(Exception):
    """The model cannot be lowered; the message says which node and why."""


class Context:
    def __init__(self, model: onnx.ModelProto, source: int, target: int, adapters: Mapping[str, Adapter]):
        self.source, self.target, self.adapters = source, target, adapters
        inferred = onnx.shape_inference.infer_shapes(weightless(model), data_prop=True)
        self.shapes: dict[str, list[int | None]] = {}
        self.types: dict[str, int] = {}
        for g in all_graphs(inferred.graph):
            for t in g.initializer:
                self.shapes[t.name], self.types[t.name] = list(t.dims), t.data_type
            for v in [*g.input, *g.value_info, *g.output]:
                tt = v.type.tensor_type
                if v.type.HasField("tensor_type"):
                    self.types[v.name] = tt.elem_type
                    if tt.HasField("shape"):
                        self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        self.constants = constant_values(model.graph)
        self.names = {n for g in all_graphs(model.graph) for node in g.node for n in [node.name, *node.output]}
        self.names |= {t.name for g in all_graphs(model.graph) for t in [*g.initializer, *g.input]}

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
            raise refuse(node, self, f"its {what} are computed in the graph (fold-constants first)")
        return self.constants[node.input[index]]

    def constant(self, node: onnx.NodeProto, value: np.ndarray, what: str) -> tuple[str, onnx.NodeProto]:
        """A Constant node holding ``value``, named after ``node``; returns (output name, node)."""
        out = self.fresh(f"{node.name or node.output[0]}_{what}")
        return out, helper.make_node("Constant", [], [out], name=self.fresh(out + "_const"),
                                     value=numpy_helper.from_array(value, out))

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


def lower(model: onnx.ModelProto, source: int, target: int, adapters: Mapping[str, Adapter]) -> onnx.ModelProto:
    """``model`` (opset ``source``) at opset ``target`` < ``source``, each node rewritten by its
    operator's adapter when ``adapters`` has one (``opset_adapters.ADAPTERS``); ``model`` is left
    unchanged."""
    if any(f.node for f in model.functions):
        raise Refused("the model has local functions, which cgsurg does not lower")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    ctx = Context(out, source, target, adapters)
    for g in all_graphs(out.graph):
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


def _lower_node(node: onnx.NodeProto, ctx: Context) -> list[onnx.NodeProto]:
    if node.domain not in DEFAULT:
        return [node]
    try:
        src = defs.get_schema(node.op_type, ctx.source)
    except defs.SchemaError:
        raise refuse(node, ctx, f"ONNX has no operator {node.op_type} at opset {ctx.source}") from None
    tgt = schema(node.op_type, ctx.target)
    if tgt is not None and tgt.since_version == src.since_version:
        return [node]
    adapter = ctx.adapters.get(node.op_type)
    if adapter is not None:
        return adapter(node, ctx)
    return relabel(node, ctx)


def relabel(node: onnx.NodeProto, ctx: Context) -> list[onnx.NodeProto]:
    """Keep ``node`` as it is when it uses nothing its target schema lacks (see the docstring)."""
    src = defs.get_schema(node.op_type, ctx.source)
    tgt = schema(node.op_type, ctx.target)
    if tgt is None:
        raise refuse(node, ctx, f"{node.op_type} exists only from opset {_first(node.op_type)} and cgsurg has no "
                                 "decomposition for it")
    reason = _relabel_reason(node, src, tgt, ctx.target)
    if reason:
        raise refuse(node, ctx, reason)
    drop_attrs(node, *(a.name for a in node.attribute if a.name not in tgt.attributes))  # defaults, checked
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


# --- helpers -------------------------------------------------------------------------------

def refuse(node: onnx.NodeProto, ctx: Context, reason: str) -> Refused:
    since = schema(node.op_type, ctx.source)
    version = f"{node.op_type}-{since.since_version}" if since else node.op_type
    return Refused(f"{version} '{node.name or node.output[0]}' cannot go to opset {ctx.target}: {reason}")


def schema(op: str, version: int) -> defs.OpSchema | None:
    try:
        return defs.get_schema(op, version)
    except defs.SchemaError:
        return None


def _first(op: str) -> int:
    return min(s.since_version for s in defs.get_all_schemas_with_history() if s.name == op and s.domain == "")


def _value(attr: onnx.AttributeProto):
    value = helper.get_attribute_value(attr)
    return value.decode() if isinstance(value, bytes) else list(value) if isinstance(value, list) else value


def node_attrs(node: onnx.NodeProto) -> dict:
    return {a.name: _value(a) for a in node.attribute}


def drop_attrs(node: onnx.NodeProto, *names: str) -> None:
    keep = [a for a in node.attribute if a.name not in names]
    del node.attribute[:]
    node.attribute.extend(keep)


def set_attrs(node: onnx.NodeProto, **values) -> None:
    drop_attrs(node, *values)
    node.attribute.extend(helper.make_attribute(k, v) for k, v in values.items())


def float_type(node: onnx.NodeProto, ctx: Context) -> np.dtype:
    elem = ctx.types.get(node.input[0])
    if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        raise refuse(node, ctx, "its data type is not known to be float16, float32 or float64")
    return helper.tensor_dtype_to_np_dtype(elem)
