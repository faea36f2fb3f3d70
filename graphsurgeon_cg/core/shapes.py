"""Shapes inference found, lent to the graph of a pass that reads them and taken back after."""

from __future__ import annotations

from typing import Any

import onnx
import onnx_graphsurgeon as gs


def _kept(symbol: str, declared: set[str]) -> bool:
    return bool(symbol) and (symbol in declared or not symbol.startswith("unk__"))


class InferredShapes:
    """The element types and shapes the manager gave tensors from a verified model's shape
    inference (cheaper than importing the model again, which dominates on large graphs), so
    that they can be taken out again: they are not the model's own declarations."""

    def __init__(self) -> None:
        self.given: list[tuple[gs.Variable, Any, Any]] = []  # tensor, the dtype and shape it was given

    def __bool__(self) -> bool:
        return bool(self.given)

    def fill(self, graph: gs.Graph, model: onnx.ModelProto) -> None:
        """Give the tensors that lack a type or shape what inference found in ``model``."""
        self.forget()
        tensors = graph.tensors()
        missing = {name: t for name, t in tensors.items()
                   if isinstance(t, gs.Variable) and (t.shape is None or t.dtype is None)}
        if not missing:
            return
        # Symbols inference made up (unk__N) are not kept: their numbering depends on what was
        # declared when, and a later inference names them afresh.
        declared = {d for t in tensors.values() if t.shape is not None for d in t.shape if isinstance(d, str)}
        for info in list(model.graph.value_info) + list(model.graph.output):
            tensor = missing.get(info.name)
            if tensor is None or not info.type.HasField("tensor_type"):
                continue
            tt = info.type.tensor_type
            dtype, shape = tensor.dtype, tensor.shape
            if dtype is None and tt.elem_type:
                dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            if shape is None and tt.HasField("shape"):
                shape = [d.dim_value if d.HasField("dim_value") else d.dim_param if _kept(d.dim_param, declared)
                         else None for d in tt.shape.dim]
            self.given.append((tensor, None if dtype is tensor.dtype else dtype,
                               None if shape is tensor.shape else shape))
            tensor.dtype, tensor.shape = dtype, shape

    def forget(self) -> None:
        """Take back what ``fill`` gave, where no pass has set something else since."""
        for tensor, dtype, shape in self.given:
            if not isinstance(tensor, gs.Variable):  # folded into a constant since (to_constant)
                continue
            if dtype is not None and tensor.dtype is dtype:
                tensor.dtype = None
            if shape is not None and tensor.shape is shape:
                tensor.shape = None
        self.given.clear()
