"""fp16out: float32 graph outputs -> float16 through a Cast before each output. Lossy, tiny.

The vendor guide's "fp16 output nodes": half the bytes to copy back to the host, and a
compiler can keep its last layers in fp16. Output names stay the same; the value is rounded
to the nearest float16, so ``|diff| <= 2**-11 * |ref|`` (plus 2**-24 for subnormals); values
beyond 65504 would become inf and fail the check. An output that is also a graph input keeps
float32 (its one name cannot carry both a float32 input and a float16 output); it is reported.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, Option, Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.graphutil import type_name


@register_pass
class Fp16Out(Pass):
    name = "fp16out"
    summary = "Cast float32 graph outputs to float16, keeping their names (lossy, tiny)"
    exact = False
    reports_modified = True
    changes_io_dtypes = True
    outputs = Option(tuple, (), "names of the outputs to convert (default: all float32 outputs)")

    def bound(self) -> Bound:
        return Bound(max_abs=2.0**-24, rel=2.0**-11)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        names = [o.name for o in graph.outputs]
        missing = [n for n in self.outputs if n not in names]
        if missing:
            raise self.refuse(f"no graph output named {', '.join(missing)} (outputs: {', '.join(names)})")
        rewrites, reasons = 0, []
        inputs = {id(t) for t in graph.inputs}
        converted: dict[int, gs.Variable] = {}  # a tensor listed twice as an output is converted once
        for index, output in enumerate(list(graph.outputs)):
            if id(output) in converted:
                graph.outputs[index] = converted[id(output)]
                continue
            if self.outputs and output.name not in self.outputs:
                continue
            if output.dtype != np.float32:
                reasons.append(f"output '{output.name}' is {type_name(output.dtype)}, not float32")
                continue
            if id(output) in inputs:
                reasons.append(f"output '{output.name}' is also a graph input: the name cannot be both float32 "
                               "and float16, so it stays float32")
                continue
            name = output.name
            output.name = ctx.fresh_name(f"{name}_fp32")  # internal consumers keep the fp32 tensor
            half = gs.Variable(name, dtype=np.float16, shape=output.shape)
            graph.nodes.append(gs.Node("Cast", name=ctx.fresh_name(f"{name}_to_fp16"),
                                       attrs={"to": onnx.TensorProto.FLOAT16}, inputs=[output], outputs=[half]))
            graph.outputs[index] = converted[id(output)] = half
            rewrites += 1
        return PassResult(rewrites, reasons, modified=rewrites > 0)
