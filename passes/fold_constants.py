"""fold-constants: evaluate constant subgraphs and remove dead nodes. Exact.

TorchScript export at opset 11 computes each Pad's ``pads`` at run time with a
ConstantOfShape/Concat/Reshape/Slice/Transpose/Cast chain; compilers and the other passes want
plain initializers. Folding uses onnx-graphsurgeon, which evaluates the constant subgraphs
with ONNX Runtime itself, so the values are the ones the runtime would compute: exact.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg.registry import Pass, PassContext, PassResult, register_pass


@register_pass
class FoldConstants(Pass):
    name = "fold-constants"
    summary = "Fold constant subgraphs into initializers and remove dead nodes"
    exact = True

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        before = len(graph.nodes)
        graph.fold_constants(error_ok=False).cleanup(remove_unused_graph_inputs=False)
        removed = before - len(graph.nodes)
        return PassResult(rewrites=removed, reasons=[] if removed else ["no constant or dead subgraph found"])
