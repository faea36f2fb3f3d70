"""static-batch: fix a dynamic batch dimension to ``batch=N`` and re-infer shapes. Exact.

Compilers such as Ascend ATC want static shapes (one compiled model per batch size). Every
graph input whose first dimension is symbolic or unknown gets N; the shapes of all other
tensors are cleared so that shape inference (run by the pass manager after every pass)
recomputes them with the static batch. An input that already has a different static batch
is left alone and reported.
"""

from __future__ import annotations

import onnx_graphsurgeon as gs

from graphsurgeon_cg import Option, Pass, PassContext, PassResult, at_least, register_pass


@register_pass
class StaticBatch(Pass):
    name = "static-batch"
    summary = "Set the dynamic batch dimension of the inputs to N (exact)"
    exact = True
    reports_modified = True
    batch = Option(int, 1, "the batch size", check=at_least(1))

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        rewrites, reasons = 0, []
        for inp in graph.inputs:
            if not inp.shape:
                reasons.append(f"input '{inp.name}' has no shape")
                continue
            first = inp.shape[0]
            if isinstance(first, int) and first > 0:
                if first != self.batch:
                    reasons.append(f"input '{inp.name}' already has static batch {first}")
                continue
            inp.shape = [self.batch, *inp.shape[1:]]
            rewrites += 1
        if rewrites:
            inputs = {id(t) for t in graph.inputs}
            for tensor in graph.tensors().values():
                if isinstance(tensor, gs.Variable) and id(tensor) not in inputs:
                    tensor.shape = None
        elif not reasons:
            reasons.append("no input with a dynamic batch dimension")
        return PassResult(rewrites, reasons, modified=rewrites > 0)
