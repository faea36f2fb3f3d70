"""The tensors two models compute and how ``diff --layers`` pairs them (``check.layers``'s
module doc says by what rules): ONNX graphs read with inferred types and sizes, OpenVINO IRs
through the names its ONNX frontend keeps on output ports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from .backends import import_openvino

_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


@dataclass
class Tensor:
    """One tensor a model computes: its name(s), its producer and output index, and what
    shape inference knows (``elem`` 0 and ``size`` None where it knows nothing)."""

    name: str
    node: str
    index: int
    op: str
    elem: int = 0
    size: int | None = None  # bytes at the feeds' shapes
    aliases: frozenset[str] = frozenset()  # OpenVINO ports carry several names


# --- the tensors of each model -------------------------------------------------------------
def onnx_tensors(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray] | None = None) -> list[Tensor]:
    """The outputs of the main graph's nodes in graph order, with types and sizes inferred at
    the shapes of ``feeds`` (dynamic axes fixed to them first)."""
    infos = _inferred(model, feeds)
    found = []
    for node in model.graph.node:
        for index, name in enumerate(node.output):
            if name:
                elem, size = infos.get(name, (0, None))
                found.append(Tensor(name, node.name, index, node.op_type, elem, size, frozenset([name])))
    return found


def _inferred(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray] | None) -> dict[str, tuple[int, int | None]]:
    shell = onnx.ModelProto()
    shell.CopyFrom(model)
    shell.graph.ClearField("value_info")
    for inp in shell.graph.input:
        if feeds and inp.name in feeds and inp.type.HasField("tensor_type"):
            dims = inp.type.tensor_type.shape.dim
            for dim, size in zip(dims, feeds[inp.name].shape):
                dim.ClearField("dim_param")
                dim.dim_value = int(size)
    try:  # sizes only steer the chunking: a model shape inference cannot read still runs
        shell = onnx.shape_inference.infer_shapes(shell, data_prop=True)
    except Exception:
        pass
    infos: dict[str, tuple[int, int | None]] = {}
    for info in [*shell.graph.value_info, *shell.graph.output]:
        if not info.type.HasField("tensor_type"):
            infos[info.name] = (-1, None)  # sequences and optionals: not markable
            continue
        tt = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        known = tt.HasField("shape") and all(d is not None for d in dims) and tt.elem_type
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)).itemsize if known else 0
        infos[info.name] = (tt.elem_type, int(np.prod(dims, dtype=np.int64)) * itemsize if known else None)
    return infos


def openvino_tensors(path: str | os.PathLike) -> list[Tensor]:
    """The tensors an OpenVINO IR names, in its topological order (sizes where static)."""
    openvino = import_openvino()
    model = openvino.Core().read_model(str(path))
    found = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in ("Parameter", "Result", "Constant"):
            continue
        for index, port in enumerate(op.outputs()):
            names = frozenset(port.get_names())
            if names:
                shape = port.get_partial_shape()
                size = None
                if shape.is_static:
                    size = int(np.prod([d.get_length() for d in shape], dtype=np.int64)) * 4
                found.append(Tensor(sorted(names)[0], op.get_friendly_name(), index, op.get_type_name(),
                                    onnx.TensorProto.FLOAT, size, names))
    return found


# --- matching -------------------------------------------------------------------------------
def match_tensors(a: Sequence[Tensor], b: Sequence[Tensor], b_constants: Mapping[str, Any] = {}
                  ) -> tuple[list[tuple[Tensor, Tensor | None, str]], list[Tensor]]:
    """Each of A's tensors with B's counterpart and how it was found (see the module doc), and
    B's tensors left without one."""
    by_name = {alias: t for t in b for alias in t.aliases}
    by_producer = {(t.node, t.index): t for t in b if t.node}
    taken: set[int] = set()
    pairs: list[tuple[Tensor, Tensor | None, str]] = []
    pending = []
    for t in a:
        other = by_name.get(t.name)
        if other is not None and not _other_quantity(t, other):
            pairs.append((t, other, "name"))
            taken.add(id(other))
        elif t.name in b_constants:
            pairs.append((t, None, "constant"))
        else:
            pairs.append((t, None, ""))
            pending.append(len(pairs) - 1)
    for k in pending:
        t = pairs[k][0]
        other = by_producer.get((t.node, t.index)) if t.node else None
        if other is not None and id(other) not in taken and not _other_quantity(t, other):
            pairs[k] = (t, other, "producer")
            taken.add(id(other))
    return pairs, [t for t in b if id(t) not in taken]


def _other_quantity(a: Tensor, b: Tensor) -> bool:
    """A float tensor in A that became integers in B (an 8-bit output) names another quantity."""
    return a.elem in _FLOATS and b.elem not in _FLOATS and b.elem > 0
