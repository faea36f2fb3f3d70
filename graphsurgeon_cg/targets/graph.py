"""The model as the rules read it: every node (subgraphs included), constant values, and the
shapes and types that ONNX shape inference finds. Built once per lint; read-only."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from ..core.modelio import default_opset, weightless

Dim = int | str | None  # a size, a symbol, or unknown


def _dims(type_proto: onnx.TypeProto) -> list[Dim] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else d.dim_param if d.HasField("dim_param") else None
            for d in type_proto.tensor_type.shape.dim]


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


class LintGraph:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.opset = default_opset(model)
        skeleton = weightless(model)  # big weights matter only through their types and shapes
        try:
            skeleton = onnx.shape_inference.infer_shapes(skeleton, data_prop=True)
        except Exception:  # noqa: BLE001  (a model shape inference cannot read: declared shapes only)
            pass
        self.nodes: list[onnx.NodeProto] = []
        self.constants: dict[str, np.ndarray] = {}
        self.shapes: dict[str, list[Dim] | None] = {}
        self.dtypes: dict[str, int] = {}
        self.initializers = {t.name for t in model.graph.initializer}
        self._walk(skeleton.graph)
        for tensor in model.graph.initializer:  # every weight's type and shape, small or not
            self.dtypes[tensor.name] = tensor.data_type
            self.shapes[tensor.name] = list(tensor.dims)
        self.inputs = [i for i in model.graph.input if i.name not in self.initializers]
        self.outputs = list(model.graph.output)
        self.batch_symbols = {d[0] for i in self.inputs if (d := _dims(i.type)) and isinstance(d[0], str)}

    def _walk(self, graph: onnx.GraphProto) -> None:
        for info in [*graph.input, *graph.output, *graph.value_info]:
            self.shapes[info.name] = _dims(info.type)
            if info.type.HasField("tensor_type"):
                self.dtypes[info.name] = info.type.tensor_type.elem_type
        for tensor in graph.initializer:
            if tensor.data_location != onnx.TensorProto.EXTERNAL:
                self.constants[tensor.name] = numpy_helper.to_array(tensor)
        for node in graph.node:
            self.nodes.append(node)
            if node.op_type == "Constant" and node.output:
                value = next((a.t for a in node.attribute if a.name == "value"), None)
                if value is not None:
                    self.constants[node.output[0]] = numpy_helper.to_array(value)
            for sub in _subgraphs(node):
                self._walk(sub)

    @staticmethod
    def attr(node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                return value.decode() if isinstance(value, bytes) else value
        return default

    @staticmethod
    def input(node: onnx.NodeProto, index: int) -> str | None:
        """The name of optional input ``index``, or None when absent."""
        return node.input[index] if index < len(node.input) and node.input[index] else None

    def is_constant(self, name: str) -> bool:
        """An initializer (of any size) or a Constant node's output."""
        return name in self.constants or name in self.initializers

    def is_static(self, name: str) -> bool:
        """Every dimension known but the first when the batch is dynamic: shape inference renames
        the batch symbol after some ops (Resize gives ``unk__0``), so any first dim passes then."""
        dims = self.shapes.get(name)
        return dims is not None and all(isinstance(d, int) and d > 0 or (i == 0 and bool(self.batch_symbols))
                                        for i, d in enumerate(dims))

    def const(self, name: str | None) -> np.ndarray | None:
        return None if name is None else self.constants.get(name)

    def static_size(self, name: str, axis: int) -> int | None:
        dims = self.shapes.get(name)
        if dims is None or not -len(dims) <= axis < len(dims):
            return None
        d = dims[axis]
        return d if isinstance(d, int) and d > 0 else None
