"""A pass keeps the model's interface: the names, order, element types and ranks of the graph
inputs (weights aside) and outputs, which callers feed and read by name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from .base import Pass
from .errors import PassFailed

Interface = tuple[list[tuple[str, Any, int | None]], list[tuple[str, Any, int | None]]]


def interface_of(graph: gs.Graph) -> Interface:
    """Name, element type and rank of each graph input (weights aside) and output."""
    def describe(tensors: Sequence[gs.Tensor]) -> list[tuple[str, Any, int | None]]:
        return [(t.name, None if t.dtype is None else np.dtype(t.dtype) if not isinstance(t.dtype, int) else t.dtype,
                 None if t.shape is None else len(t.shape)) for t in tensors]

    return describe([t for t in graph.inputs if not isinstance(t, gs.Constant)]), describe(graph.outputs)


def check_interface(p: Pass, before: Interface, after: Interface, removable: Sequence[str] = ()) -> None:
    """A pass may not rename, add, drop or re-rank graph inputs or outputs, nor change their
    element types unless it declares ``changes_io_dtypes``: callers feed and read by name. The
    one exception: inputs the pass bound to constants and says so in its adapter's
    ``removed_inputs`` (the checker feeds the original their frozen values)."""
    gone_on_purpose = set(removable) - {n for n, _, _ in after[0]}
    before = ([i for i in before[0] if i[0] not in gone_on_purpose], before[1])
    for side, old, new in (("input", before[0], after[0]), ("output", before[1], after[1])):
        old_names, new_names = [n for n, _, _ in old], [n for n, _, _ in new]
        if old_names != new_names:
            gone = [n for n in old_names if n not in new_names]
            added = [n for n in new_names if n not in old_names]
            what = (f"removed {side}(s) {', '.join(gone)}" if gone else "") + \
                   ("; " if gone and added else "") + (f"added {side}(s) {', '.join(added)}" if added else "")
            raise PassFailed(p.name, f"it changed the model's {side}s ({what or 'reordered them'}); "
                                     "a pass must keep the interface")
        for (name, old_type, old_rank), (_, new_type, new_rank) in zip(old, new):
            if old_rank is not None and new_rank is not None and old_rank != new_rank:
                raise PassFailed(p.name, f"{side} '{name}' changed rank {old_rank} -> {new_rank}")
            if not p.changes_io_dtypes and old_type is not None and new_type is not None and old_type != new_type:
                raise PassFailed(p.name, f"{side} '{name}' changed type {old_type} -> {new_type} "
                                         "(a pass that does this on purpose declares changes_io_dtypes)")
