"""The ``Shapes`` analysis lent to the graph of a pass that reads tensor shapes, taken back after.

Passes built on onnx-graphsurgeon read ``tensor.shape`` and ``tensor.dtype`` (and so does
onnx-graphsurgeon's constant folding): the pass manager gives tensors that lack a type or
shape what the analysis says, before such a pass, and takes it back as soon as the graph
changes, before a pass that does not read them and before every export. What is written
is what the model declares and passes set, whether verification was deferred or not.
"""

from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from .analysis import Shapes


def _kept(symbol: str, declared: set[str]) -> bool:
    return bool(symbol) and (symbol in declared or not symbol.startswith("unk__"))


class InferredShapes:
    """What the manager lent to the tensors of a graph (main graph and bodies), so that it can
    be taken out again: it is not the model's own declaration."""

    def __init__(self) -> None:
        self.given: list[tuple[gs.Variable, Any, Any]] = []  # tensor, the dtype and shape it was given
        self.source: Shapes | None = None  # the analysis lent, while it is

    def __bool__(self) -> bool:
        return bool(self.given)

    def lend(self, graph: gs.Graph, shapes: Shapes) -> None:
        """Give the tensors that lack a type or shape what ``shapes`` says (unless lent already)."""
        if self.source is shapes:
            return
        self.forget()
        self.source = shapes
        tensors = [t for g in [graph, *graph.subgraphs(recursive=True)] for t in g.tensors().values()]
        # Symbols inference made up (unk__N) are not kept: their numbering depends on what was
        # declared when, and a later inference names them afresh.
        declared = {d for t in tensors if t.shape is not None for d in t.shape if isinstance(d, str)}
        seen: set[int] = set()
        for tensor in tensors:
            if not isinstance(tensor, gs.Variable) or id(tensor) in seen or \
                    (tensor.shape is not None and tensor.dtype is not None):
                continue
            seen.add(id(tensor))
            typed = shapes.get(tensor.name)
            if typed is None:
                continue
            dtype, shape = tensor.dtype, tensor.shape
            if dtype is None and typed.dtype is not None:
                dtype = typed.dtype
            if shape is None and typed.shape is not None:
                shape = [d if not isinstance(d, str) or _kept(d, declared) else None for d in typed.shape]
            if dtype is tensor.dtype and shape is tensor.shape:
                continue
            self.given.append((tensor, None if dtype is tensor.dtype else dtype,
                               None if shape is tensor.shape else shape))
            tensor.dtype, tensor.shape = dtype, shape

    def forget(self) -> None:
        """Take back what ``lend`` gave, where no pass has set something else since."""
        for tensor, dtype, shape in self.given:
            if not isinstance(tensor, gs.Variable):  # folded into a constant since (to_constant)
                continue
            if dtype is not None and tensor.dtype is dtype:
                tensor.dtype = None
            if shape is not None and tensor.shape is shape:
                tensor.shape = None
        self.given.clear()
        self.source = None
