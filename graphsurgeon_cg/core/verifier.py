"""Verification as a component, as MLIR's pass manager runs its verifier after each pass: the
pass manager holds a ``Verifier`` (``PassManager(verifier=...)``) and calls it on every model it
exports, on the onnx-graphsurgeon path and the protobuf fast path alike.

``Verifier.verify`` gives an exported model what the round trip loses (``roundtrip.carry_over``),
asks ``check`` whether it is valid, and writes the types strict inference found into it. The
default ``check`` is strict shape inference (types checked, data propagated, bodies included)
and the ONNX checker, on the model without its weights; a stricter verifier overrides ``check``
(``StrictVerifier``). A model ``check`` refuses fails the pass that changed it (``PassFailed``).
"""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from .errors import CgsurgError, PassFailed
from .modelio import weightless
from .roundtrip import ExportHints, adopt_types, carry_over, export_graph


class Verifier:
    """Strict shape inference and the ONNX checker: what every model cgsurg writes passes."""

    def check(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """Raise (any exception; its first line becomes the error) when ``model``, without its
        weights, is invalid; else return it with every type strict inference gives it."""
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        onnx.checker.check_model(inferred)
        return inferred

    def verify(self, model: onnx.ModelProto, template: onnx.ModelProto, pass_name: str,
               provenance: dict[str, str],
               hints: ExportHints = ExportHints()) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """``model`` exported after ``pass_name``, made whole from ``template`` and checked: the
        verified model, and the weightless one as ``check`` typed it (the ``Shapes`` analysis
        is read from it without inferring again). ``hints``: what the exporter knows of it."""
        carry_over(model, template, provenance, hints.bodies)
        try:
            inferred = self.check(weightless(model))
        except CgsurgError:
            raise
        except Exception as exc:
            message = str(exc).strip().splitlines()
            reason = message[0] if message else type(exc).__name__
            raise PassFailed(pass_name, f"the rewritten model is invalid: {reason}") from None
        adopt_types(model, inferred, hints.order)
        return model, inferred

    def export(self, graph: gs.Graph, template: onnx.ModelProto, pass_name: str,
               provenance: dict[str, str]) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """``verify`` on ``graph`` exported (renamed weights have their own protos already:
        the pass manager sees to it after each pass)."""
        return self.verify(export_graph(graph, template, pass_name), template, pass_name, provenance)


class StrictVerifier(Verifier):
    """The default checks, and every tensor a node of the main graph makes typed with a known
    rank after inference: what compilers need to plan their buffers (ATC, trtexec), which ONNX
    itself does not ask (it requires shapes of graph outputs only)."""

    def check(self, model: onnx.ModelProto) -> onnx.ModelProto:
        inferred = super().check(model)
        g = inferred.graph
        typed = {v.name for v in [*g.value_info, *g.output, *g.input]
                 if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
                 and v.type.tensor_type.HasField("shape")}
        for node in g.node:
            for name in node.output:
                if name and name not in typed:
                    raise ValueError(f"tensor '{name}' of {node.op_type} node '{node.name}' has no known "
                                     "element type and rank")
        return inferred


DEFAULT_VERIFIER = Verifier()
