"""fold-constants: evaluate constant subgraphs and remove dead nodes. Exact.

TorchScript export at opset 11 computes each Pad's ``pads`` at run time with a
ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast chain; compilers and the other passes want
plain initializers. Folding uses onnx-graphsurgeon, which evaluates the constant subgraphs
with ONNX Runtime itself, so the values are the ones the runtime would compute: exact.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg import Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import graph_fingerprint, walk_nodes
from graphsurgeon_cg.core.protograph import ProtoGraph


@register_pass
class FoldConstants(Pass):
    name = "fold-constants"
    summary = "Fold constant subgraphs into initializers and remove dead nodes"
    exact = True
    reports_modified = True

    def needs_shapes(self, graph: gs.Graph) -> bool:
        # Static input shapes fold Shape and Size; onnx-graphsurgeon elides Casts by their input types.
        return any(node.op in ("Shape", "Size", "Cast") for node in walk_nodes(graph))

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        before = {id(n) for n in graph.nodes}
        fingerprint = None
        if _has_foldable_node(graph):  # folding copies the whole graph: skip it when it cannot fold
            fingerprint = graph_fingerprint(graph)
            graph.fold_constants(error_ok=False)
            graph.cleanup(remove_unused_graph_inputs=False)
        elif _has_dead_node(graph):
            graph.cleanup(remove_unused_graph_inputs=False)
        # Rewrites: nodes folded or removed (an If with a constant condition is replaced by its
        # branch's nodes: the If counts). Folding may also replace a node's computed input by an
        # initializer without removing a node (a shared subgraph): the fingerprint sees that.
        gone = len(before - {id(n) for n in graph.nodes})
        modified = bool(gone) or (fingerprint is not None and graph_fingerprint(graph) != fingerprint)
        return PassResult(gone, [] if gone else ["no constant or dead subgraph found"], modified=modified)

    # On the protobuf (core.fastpath) only where there is nothing to fold or remove: folding
    # itself stays with onnx-graphsurgeon (None sends the whole pipeline there).
    def needs_shapes_proto(self, graph: ProtoGraph) -> bool:
        return any(node.op_type in ("Shape", "Size", "Cast") for node in graph.nodes)

    def run_proto(self, graph: ProtoGraph) -> PassResult | None:
        for node in graph.nodes:
            inputs = graph.io(node)[0]
            op = node.op_type
            if op in ("Shape", "Size") and inputs:
                shape = graph.shape(inputs[0])
                if shape and all(isinstance(d, int) for d in shape):
                    return None
            if op == "Constant" or not inputs or all(graph.is_initializer(t) or not t for t in inputs):
                return None
        needed = set(graph.outputs)
        for node in reversed(graph.nodes):
            inputs, outputs = graph.io(node)
            if not any(t in needed for t in outputs):
                return None
            needed.update(inputs)
        return PassResult(0, ["no constant or dead subgraph found"], modified=False)


def _has_foldable_node(graph: gs.Graph) -> bool:
    """Whether some node computes only from constants (or from static shapes). Conservative:
    a node that might fold sends the graph through onnx-graphsurgeon's folding."""
    for node in graph.nodes:
        if node.op in ("Shape", "Size") and node.inputs and node.inputs[0].shape and \
                all(isinstance(d, int) for d in node.inputs[0].shape):
            return True
        if node.op == "Constant" or not node.inputs or all(
                isinstance(t, gs.Constant) or not t.name for t in node.inputs):
            return True
    return False


def _has_dead_node(graph: gs.Graph) -> bool:
    """Whether some node feeds no graph output, walking back from the outputs once. A node in a
    subgraph that reads an outer tensor can make this say yes wrongly; onnx-graphsurgeon's
    cleanup then decides, so the answer is only ever a shortcut."""
    needed = {id(t) for t in graph.outputs}
    for node in reversed(graph.nodes):  # topological order, as ONNX requires
        if not any(id(t) in needed for t in node.outputs):
            return True
        needed.update(id(t) for t in node.inputs)
    return False
