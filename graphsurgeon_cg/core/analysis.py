"""Analyses: facts about the graph that passes read, computed on demand and cached, in the
style of MLIR's AnalysisManager.

An analysis describes the graph as a pass receives it. The pass manager computes one when a
pass asks for it (``ctx.analysis(Shapes)``, ``ctx.shapes``, or before a pass whose
``needs_shapes`` says yes), keeps it while passes leave the graph alone, and drops it after a
pass that changed the graph unless the pass declares it preserved (``Pass.preserves`` or
``PassResult.preserved``): "assume nothing is preserved unless the pass says so". Analyses
are read-only values; nothing of them is written into the graph or the model unless a pass
copies it there.

``Shapes`` is the one built in: the element type and shape of every tensor, If/Loop/Scan
bodies included, as strict ONNX shape inference (with data propagation) gives them, by tensor
name. For the original model it is computed too (its declared ``value_info`` is often empty);
an original that strict inference refuses gets what the lenient inference derives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, NamedTuple, TypeVar

import numpy as np
import onnx

from .modelio import all_graphs, weightless

A = TypeVar("A", bound="Analysis")
Dim = int | str | None


class Analysis:
    """Base of an analysis: ``compute`` builds it from the model as it is, with the types
    strict shape inference gives it (weights left out: only their types and shapes)."""

    name: ClassVar[str] = "analysis"

    @classmethod
    def compute(cls: type[A], model: onnx.ModelProto) -> A:
        raise NotImplementedError


class TensorType(NamedTuple):
    dtype: np.dtype | None  # None: inference found no element type
    shape: tuple[Dim, ...] | None  # None: unknown rank; a dim is a size, a symbol or None (unknown)


class Shapes(Analysis):
    """Element type and shape of each tensor by name, main graph and bodies. A symbol that
    inference made up (``unk__N``) is kept as it named it; its number may differ between
    runs. A name typed differently in two bodies is left out (ambiguous)."""

    name = "shapes"

    def __init__(self, types: dict[str, TensorType]):
        self._types = types

    @classmethod
    def compute(cls, model: onnx.ModelProto) -> Shapes:
        types: dict[str, TensorType] = {}
        ambiguous: set[str] = set()
        for graph in all_graphs(model.graph):
            found = [(t.name, TensorType(onnx.helper.tensor_dtype_to_np_dtype(t.data_type), tuple(t.dims)))
                     for t in graph.initializer]
            found += [(v.name, _type_of(v)) for v in [*graph.input, *graph.value_info, *graph.output]
                      if v.type.HasField("tensor_type")]
            for name, typed in found:
                if types.setdefault(name, typed) != typed:
                    ambiguous.add(name)
        for name in ambiguous:
            del types[name]
        return cls(types)

    def get(self, name: str) -> TensorType | None:
        return self._types.get(name)

    def dtype(self, name: str) -> np.dtype | None:
        typed = self._types.get(name)
        return typed.dtype if typed is not None else None

    def shape(self, name: str) -> tuple[Dim, ...] | None:
        typed = self._types.get(name)
        return typed.shape if typed is not None else None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __len__(self) -> int:
        return len(self._types)

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)


def _type_of(info: onnx.ValueInfoProto) -> TensorType:
    typed = info.type.tensor_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(typed.elem_type) if typed.elem_type else None
    shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in typed.shape.dim) \
        if typed.HasField("shape") else None
    return TensorType(dtype, shape)


def inferred(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without its weights and with every type strict inference derives (bodies
    included). Strict inference refuses some originals for a rule no pass needs (a declared
    output shape it cannot confirm): those get what lenient inference derives, which is what
    they declare and what inference can add."""
    light = weightless(model)
    try:
        return onnx.shape_inference.infer_shapes(light, check_type=True, strict_mode=True, data_prop=True)
    except Exception:  # noqa: BLE001 - any refusal: fall back to the lenient answer
        pass
    try:
        return onnx.shape_inference.infer_shapes(light, data_prop=True)
    except Exception:  # noqa: BLE001 - nothing inferable: the declared types
        return light


class AnalysisManager:
    """The analyses of one graph as it is. ``source`` returns the model as it is with the types
    strict inference gives it (the pass manager exports and verifies first where needed)."""

    def __init__(self, source: Callable[[], onnx.ModelProto]):
        self._source = source
        self._cache: dict[type[Analysis], Analysis] = {}

    def get(self, kind: type[A]) -> A:
        """The analysis, computed now unless it is cached."""
        found = self._cache.get(kind)
        if found is None:
            found = self._cache[kind] = kind.compute(self._source())
        return found  # type: ignore[return-value]

    def cached(self, kind: type[A]) -> A | None:
        return self._cache.get(kind)  # type: ignore[return-value]

    def invalidate(self, preserved: Iterable[type[Analysis]] = ()) -> None:
        """After a pass changed the graph: drop every analysis it did not declare preserved."""
        keep = set(preserved)
        for kind in [k for k in self._cache if k not in keep]:
            del self._cache[kind]

    @classmethod
    def of_graph(cls, graph: Any) -> AnalysisManager:
        """For a pass run outside the pass manager (a test, another pass's helper): analyses of
        ``graph`` (an onnx-graphsurgeon graph) as it is when first asked."""
        import onnx_graphsurgeon as gs

        return cls(lambda: inferred(gs.export_onnx(graph, do_type_check=False)))
