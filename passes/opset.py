"""opset: convert the model to another opset of the default domain. Exact.

Uses ``onnx.version_converter``, which rewrites each node whose operator changed between the
versions (e.g. Pad attributes -> inputs at 11, Resize operands at 13). Compilers accept a
fixed range of opsets (Ascend ATC: 11). A conversion that the converter cannot do fails the
pass with its message.
"""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Option, Pass, PassContext, PassResult, between, register_pass


@register_pass
class Opset(Pass):
    name = "opset"
    summary = "Convert to opset N with onnx.version_converter (exact)"
    exact = True
    reports_modified = True
    version = Option(int, 17, "the target opset of the default domain",
                     check=between(7, onnx.defs.onnx_opset_version()))

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        if graph.opset == self.version:
            return PassResult(0, [f"the model is already at opset {self.version}"], modified=False)
        converted = onnx.version_converter.convert_version(gs.export_onnx(graph), self.version)
        return PassResult(1, graph=gs.import_onnx(converted))
