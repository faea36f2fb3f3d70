"""fp16: the whole model in float16, inputs and outputs kept float32. Lossy.

For GPU and NPU targets, where fp16 halves memory traffic and runs on fast units. On ORT CPU
it is slower, not faster: Conv and InstanceNormalization have float32 kernels only, so ORT
wraps fp16 nodes in Casts (use fp16out for the output-bytes saving instead). Converted with
onnxruntime's maintained float16 converter; operators that break or lose accuracy in fp16 on
some runtimes stay float32 (``block``: Resize, Upsample, InstanceNormalization by default).
An output that is also a graph input is set aside while converting (the converter would give
its name a second producer) and put back unchanged: it is the float32 input itself.
Declared bound: ``min_cos`` (default 0.99).
"""

from __future__ import annotations

import warnings

import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, Option, Pass, PassContext, PassResult, cosine, cosine_bound, register_pass
from graphsurgeon_cg.core.graphutil import export_without_aliased_outputs, restore_aliased_outputs


@register_pass
class Fp16(Pass):
    name = "fp16"
    summary = "Whole model in float16 with float32 inputs/outputs (GPU targets; slower on ORT CPU)"
    exact = False
    reports_modified = True
    block = Option(tuple, ("Resize", "Upsample", "InstanceNormalization"), "operator types kept in float32")
    min_cos = Option(float, 0.99, "cosine the numeric check requires", check=cosine())

    def needs_shapes(self, graph: gs.Graph) -> bool:
        return False  # the conversion retypes the model: float32 types lent from before it would go stale

    def bound(self) -> Bound:
        return cosine_bound(self.min_cos)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        import numpy as np
        from onnxruntime.transformers.float16 import convert_float_to_float16

        constants = [t for t in graph.tensors().values() if isinstance(t, gs.Constant)]
        if any(t.dtype == np.float16 for t in constants):
            return PassResult(0, ["the model already has float16 weights"], modified=False)
        if not any(t.dtype == np.float32 for t in constants):
            return PassResult(0, ["no float32 weights to convert"], modified=False)
        if all(any(o is i for i in graph.inputs) for o in graph.outputs):
            return PassResult(0, ["every output is a graph input: nothing is computed"], modified=False)
        source, aliased = export_without_aliased_outputs(graph)  # else they would get a second producer
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_float_to_float16(source, keep_io_types=True, op_block_list=list(self.block))
        converted = gs.import_onnx(model)
        restore_aliased_outputs(converted, aliased)
        rewrites = sum(1 for t in converted.tensors().values() if isinstance(t, gs.Constant) and t.dtype == np.float16)
        return PassResult(rewrites, graph=converted)
