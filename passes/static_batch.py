"""static-batch: fix a dynamic batch dimension to ``batch=N`` and re-infer shapes. Exact.

Compilers such as Ascend ATC want static shapes (one compiled model per batch size). Every
graph input whose first dimension is symbolic or unknown gets N. Every other tensor whose
declared shape (outputs and value_info, subgraphs included) starts with an input's batch
symbol gets N there; all other dimensions, static or symbolic, stay as declared, so no shape
is lost where inference cannot re-derive it (If/Loop outputs, a Reshape driven by ``Shape``).
The pass manager's shape inference then refines the rest: a batch symbol on another axis
becomes N where inference derives it and stays symbolic where it cannot (exporters reuse the
batch name for other axes, e.g. a [batch, 3, batch, W] output, so it is not trusted there).
A symbol that an input also uses on another axis is not only the batch and is left alone.
An input that already has a different static batch is left alone and reported. Only
declared shapes change: exact.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg import Option, Pass, PassContext, PassResult, at_least, register_pass
from graphsurgeon_cg.core.protograph import ProtoGraph


@register_pass
class StaticBatch(Pass):
    name = "static-batch"
    summary = "Set the dynamic batch dimension of the inputs to N (exact)"
    exact = True
    reports_modified = True
    batch = Option(int, 1, "the batch size", check=at_least(1))

    def needs_shapes(self, graph: gs.Graph) -> bool:
        return False  # it rewrites declared shapes only; inference after it derives the rest

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        rewrites, reasons = 0, []
        symbols: set[str] = set()
        inputs = [t for t in graph.inputs if isinstance(t, gs.Variable)]
        for inp in inputs:
            if inp.shape is None:
                reasons.append(f"input '{inp.name}' has no shape")
                continue
            if not inp.shape:
                reasons.append(f"input '{inp.name}' is a scalar")
                continue
            first = inp.shape[0]
            if isinstance(first, int) and first > 0:
                if first != self.batch:
                    reasons.append(f"input '{inp.name}' already has static batch {first}")
                continue
            if isinstance(first, str):
                symbols.add(first)
            inp.shape = [self.batch, *inp.shape[1:]]
            rewrites += 1
        symbols -= {d for inp in inputs for d in (inp.shape or [])[1:] if isinstance(d, str)}
        if symbols:
            skip = {id(t) for t in inputs}
            for g in [graph, *graph.subgraphs(recursive=True)]:
                for tensor in g.tensors().values():
                    shape = tensor.shape if isinstance(tensor, gs.Variable) and id(tensor) not in skip else None
                    if shape and isinstance(shape[0], str) and shape[0] in symbols:
                        tensor.shape = [self.batch, *shape[1:]]
        if not rewrites and not reasons:
            reasons.append("no input with a dynamic batch dimension")
        return PassResult(rewrites, reasons, modified=rewrites > 0)

    # The same on the protobuf (core.fastpath): declared shapes by name (no bodies there).
    def needs_shapes_proto(self, graph: ProtoGraph) -> bool:
        return False

    def run_proto(self, graph: ProtoGraph) -> PassResult:
        rewrites, reasons = 0, []
        symbols: set[str] = set()
        for name in graph.inputs:
            dtype, shape = graph.declared.get(name, (None, None))
            if shape is None:
                reasons.append(f"input '{name}' has no shape")
                continue
            if not shape:
                reasons.append(f"input '{name}' is a scalar")
                continue
            first = shape[0]
            if isinstance(first, int) and first > 0:
                if first != self.batch:
                    reasons.append(f"input '{name}' already has static batch {first}")
                continue
            if isinstance(first, str):
                symbols.add(first)
            graph.declare(name, dtype, [self.batch, *shape[1:]])
            rewrites += 1
        symbols -= {d for name in graph.inputs for d in (graph.declared.get(name, (None, None))[1] or [])[1:]
                    if isinstance(d, str)}
        if symbols:
            for name in graph.tensor_names() - set(graph.inputs) - set(graph.initializers):
                dtype, shape = graph.declared.get(name, (None, None))
                if shape and isinstance(shape[0], str) and shape[0] in symbols:
                    graph.declare(name, dtype, [self.batch, *shape[1:]])
        if not rewrites and not reasons:
            reasons.append("no input with a dynamic batch dimension")
        return PassResult(rewrites, reasons, modified=rewrites > 0)
