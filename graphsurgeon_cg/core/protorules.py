"""The rule driver and the no-op bypass of ``core.base``/``core.graphutil``, on a ``ProtoGraph``
(for the ``run_proto`` of node-local built-in passes)."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from .base import Match, NoMatch, PassResult
from .protograph import ProtoGraph


def run_rule(graph: ProtoGraph, op_types: tuple[str, ...], nothing_found: str,
             match: Callable[[onnx.NodeProto], Match | NoMatch | None],
             rewrite: Callable[[Match], str | None]) -> PassResult:
    """``NodeRewritePass.run`` on the view: the same candidates in the same order, the same reasons."""
    rewrites, reasons = 0, []
    for original in list(graph.nodes):
        node = graph.latest(original)
        if node.op_type not in op_types:
            continue
        found = match(node)
        if found is None:
            continue
        if isinstance(found, NoMatch):
            reasons.append(f"{node.name or node.op_type}: {found.reason}")
            continue
        note = rewrite(found)
        if note:
            reasons.append(f"{node.name or node.op_type}: {note}")
        rewrites += 1
    if not rewrites and not reasons:
        reasons.append(nothing_found)
    return PassResult(rewrites, reasons, modified=rewrites > 0)


def bypass(graph: ProtoGraph, node: onnx.NodeProto) -> None:
    """``graphutil.bypass`` on the view."""
    data, out = node.input[0], node.output[0]
    graph.clear_outputs(node)
    if out in graph.outputs:
        graph.add_node("Identity", [data], [out], name=graph.fresh_name(f"{node.op_type.lower()}_bypass"))
        return
    for consumer in graph.users(out):
        consumer = graph.latest(consumer)
        for index, name in enumerate(consumer.input):
            if name == out:
                consumer = graph.set_input(consumer, index, data)
