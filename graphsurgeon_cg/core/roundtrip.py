"""The way back from onnx-graphsurgeon to a checked ``ModelProto``, and what the import loses.

``export_graph`` exports a graph, ``carry_over`` gives it the model-level fields and
provenance, ``adopt_types`` writes what verification inferred (``core.verifier`` checks the
model in between). Overridable initializers (listed as inputs too)
are variables to the passes and get their default values back on export; a weight a pass
renamed gets its own proto so the caller's model is never renamed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import onnx
import onnx_graphsurgeon as gs

from .errors import PassFailed
from .modelio import default_opset


@dataclass(frozen=True)
class ExportHints:
    """What an exporter knows of the model it made, so that verification need not scan for it:
    ``order`` maps each tensor to the position of the node that makes it, ``bodies=False``
    says no node has an If/Loop body (the protobuf fast path knows both)."""

    order: dict[str, int] | None = None
    bodies: bool = True


def export_graph(graph: gs.Graph, template: onnx.ModelProto, pass_name: str) -> onnx.ModelProto:
    """The graph as a model, unchecked, at ``template``'s IR version (raised when the opset
    needs a later one); ``PassFailed`` when onnx-graphsurgeon cannot export it."""
    try:
        model = gs.export_onnx(graph, do_type_check=True, ir_version=template.ir_version)
    except Exception as exc:
        raise PassFailed(pass_name, f"cannot export the graph: {exc}") from exc
    if graph.opset != default_opset(template):
        model.ir_version = max(template.ir_version, _min_ir_version(graph.opset))
    return model


def carry_over(model: onnx.ModelProto, template: onnx.ModelProto, provenance: dict[str, str],
               bodies: bool = True) -> None:
    """Give an exported model what the round trip loses: the initializers ``template`` lists
    as inputs, its model-level fields, the provenance of the nodes passes made or touched; and
    drop the outer types onnx-graphsurgeon writes into bodies (``bodies=False``: the model has
    none, a scan of every attribute saved)."""
    _keep_initializers_as_inputs(model, template)
    model.producer_name = template.producer_name
    model.producer_version = template.producer_version
    model.model_version = template.model_version
    model.doc_string = template.doc_string
    del model.metadata_props[:]
    model.metadata_props.extend(template.metadata_props)
    if provenance:
        for node in model.graph.node:
            if node.name in provenance:
                node.doc_string = provenance[node.name]
    if bodies:
        _drop_outer_value_info(model.graph)


def adopt_types(model: onnx.ModelProto, inferred: onnx.ModelProto, order: dict[str, int] | None = None) -> None:
    """Write what inference found into ``model``: value infos in node order (``order``: tensor
    name -> the position of its node, when the caller knows it), output types."""
    del model.graph.value_info[:]
    model.graph.value_info.extend(_in_node_order(inferred.graph.value_info, model.graph, order))
    for output, typed in zip(model.graph.output, inferred.graph.output):
        output.type.CopyFrom(typed.type)


def _in_node_order(infos: Sequence[onnx.ValueInfoProto], graph: onnx.GraphProto,
                   rank: dict[str, int] | None = None) -> list[onnx.ValueInfoProto]:
    """Value infos in the order the nodes produce their tensors. Inference lists the declared
    ones first: without this, the order would depend on which shapes were declared when."""
    if rank is None:
        rank = {name: k for k, node in enumerate(graph.node) for name in node.output}
    last = len(rank)
    return sorted(infos, key=lambda info: rank.get(info.name, last))


def _drop_outer_value_info(graph: onnx.GraphProto) -> None:
    """onnx-graphsurgeon writes the types of outer tensors that an If/Loop body reads into the
    body's value_info, whenever they are known: drop them (the outer graph declares them), so
    that what is written does not depend on which shapes were known when."""
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                local = {o for n in body.node for o in n.output} | {i.name for i in body.input}
                kept = _in_node_order([v for v in body.value_info if v.name in local], body)
                del body.value_info[:]
                body.value_info.extend(kept)
                _drop_outer_value_info(body)


def own_renamed_weights(graph: gs.Graph) -> None:
    """onnx-graphsurgeon keeps the caller's TensorProto of each imported weight and, on export,
    writes the weight's current name into it: a pass that renames a weight (folding inlines an
    If branch) would rename it in the caller's model too. A renamed weight gets its own copy."""
    from onnx_graphsurgeon.ir.tensor import LazyValues

    def visit(g: gs.Graph) -> None:
        for node in g.nodes:
            for tensor in node.inputs:
                values = getattr(tensor, "_values", None)
                if isinstance(values, LazyValues) and values.tensor.name != tensor.name:
                    proto = onnx.TensorProto()
                    proto.CopyFrom(values.tensor)
                    proto.name = tensor.name
                    tensor._values = LazyValues(proto)
            for attr in node.attrs.values():
                if isinstance(attr, gs.Graph):
                    visit(attr)

    visit(graph)


def _overridable(model: onnx.ModelProto) -> set[str]:
    """The initializers a caller may override: from IR 4 on, those also listed as graph inputs
    (ONNX Runtime reads them so). Before IR 4 every initializer had to be listed, and listing
    says nothing: they are constants."""
    if model.ir_version < 4:
        return set()
    return {i.name for i in model.graph.input} & {t.name for t in model.graph.initializer}


def overridable_as_variables(graph: gs.Graph, model: onnx.ModelProto) -> dict[str, gs.Constant]:
    """To the passes, an overridable initializer is a variable input, not a constant to fold,
    consume or quantise (a caller feeding their own pads would get the old ones baked in);
    ``_keep_initializers_as_inputs`` gives it back its default value on export. Returns the
    default values (constants, loaded when read), for passes that run the model (calibration)."""
    names = _overridable(model)
    if not names:
        return {}
    # onnx-graphsurgeon imports them as constants and drops them from the inputs.
    variables: dict[str, gs.Variable] = {}
    for tensor in model.graph.input:
        if tensor.name in names:
            typed = tensor.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in typed.shape.dim] if typed.HasField("shape") else None
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.type.tensor_type.elem_type)
            variables[tensor.name] = gs.Variable(tensor.name, dtype=dtype, shape=dims)
    order = [i.name for i in model.graph.input]
    kept = {t.name: t for t in graph.inputs}
    graph.inputs = [kept[name] if name in kept else variables[name]
                    for name in order if name in kept or name in variables]
    defaults: dict[str, gs.Constant] = {}  # values load lazily: old big exports list every weight
    for g in [graph, *graph.subgraphs(recursive=True)]:  # subgraphs read outer tensors directly
        for node in g.nodes:
            for k, tensor in enumerate(node.inputs):
                if isinstance(tensor, gs.Constant) and tensor.name in variables:
                    defaults.setdefault(tensor.name, tensor)
                    node.inputs[k] = variables[tensor.name]
    return defaults


def _keep_initializers_as_inputs(model: onnx.ModelProto, template: onnx.ModelProto) -> None:
    """IR < 4 requires every initializer to be a graph input, and older exports list some as
    inputs on purpose (overridable weights, which the passes saw as variables): put back what
    onnx-graphsurgeon drops, overridable ones with their original default value."""
    template_inits = {t.name for t in template.graph.initializer}
    listed = {i.name for i in template.graph.input if i.name in template_inits}
    every = model.ir_version < 4
    if not listed and not every:
        return
    present = {i.name for i in model.graph.input}
    for tensor in model.graph.initializer:
        if tensor.name not in present and (every or tensor.name in listed):
            model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    defaults = _overridable(template) & present - {t.name for t in model.graph.initializer}
    for tensor in template.graph.initializer:
        if tensor.name in defaults:
            model.graph.initializer.append(tensor)  # a copy (protobuf); external data keeps its location
    # In the original's order (weights a pass made unused are gone: listing them would turn
    # them into inputs a caller must feed).
    rank = {i.name: k for k, i in enumerate(template.graph.input)}
    ordered = [_copied(i) for i in sorted(model.graph.input, key=lambda i: rank.get(i.name, len(rank)))]
    del model.graph.input[:]
    model.graph.input.extend(ordered)


def _copied(info: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(info)
    return out


def _min_ir_version(opset: int) -> int:
    """The lowest IR version that can carry ``opset`` of the default domain."""
    irs = [ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset]
    return min(irs, default=onnx.IR_VERSION)
