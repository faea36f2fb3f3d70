"""The fast path: the pipeline on the protobuf itself, when every pass can run there.

Built-in structural passes (reflect2slice, pad-conv-fusion, static-batch, and fold-constants
where it has nothing to fold) also have ``run_proto(graph)`` on a ``core.protograph.ProtoGraph``.
When every pass of a pipeline has one, no instrument reads the models between passes and the
model is plain (no If/Loop bodies, functions, sparse or overridable initializers, IR >= 4), the
pass manager runs them here instead of importing the model into onnx-graphsurgeon: the same
records, cleanup, sort, provenance and verification as ``PassManager._run_passes``, mirrored
step by step, so the written model is the same (``tests/test_fastpath.py``). Anything else
(a pass declining, a failure to be named, an invalid result) returns False before any
instrument hook ran: the onnx-graphsurgeon path then runs from the start and says what it says.
"""

from __future__ import annotations

import time

import onnx

from .analysis import inferred
from .base import Pass
from .cleanup import tag_provenance
from .instruments import Instruments, PipelineRun
from .modelio import default_opset
from .protograph import ProtoGraph
from .records import PassRecord
from .roundtrip import ExportHints
from .verifier import DEFAULT_VERIFIER, Verifier


class _Declined(Exception):
    """A pass cannot do exactly what its onnx-graphsurgeon version does on this graph."""


# Set to a list by a process that exits at once when its output is written (``cgsurg apply``,
# for the length of its run only): the working graph is kept there instead of being freed as the
# run ends (0.6 s at 100k nodes). Anywhere else it is freed with the run, as it should be.
RETAINED: list | None = None


def has_fast_path(p: Pass) -> bool:
    return callable(getattr(p, "run_proto", None)) and callable(getattr(p, "needs_shapes_proto", None))


def plain(model: onnx.ModelProto) -> bool:
    """Whether onnx-graphsurgeon's import and export would only carry ``model`` through: the
    corners where they change something (bodies, functions, initializers listed as inputs,
    non-tensor types) stay on the onnx-graphsurgeon path."""
    g = model.graph
    if model.ir_version < 4 or model.functions or model.training_info or g.sparse_initializer:
        return False
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        return False
    inits = {t.name for t in g.initializer}
    io = [i.name for i in g.input] + [o.name for o in g.output]
    if inits & set(io) or {v.name for v in g.value_info} & set(io):
        return False
    for info in [*g.input, *g.output, *g.value_info]:
        if not info.type.HasField("tensor_type") or not info.type.tensor_type.elem_type:
            return False
    produced: set[str] = set()
    for node in g.node:
        for attr in node.attribute:
            if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                return False
        for name in node.output:
            if name and (name in produced or name in inits):
                return False
            produced.add(name)
    return not (produced & {i.name for i in g.input})


def run_fast(passes: list[Pass], instruments: Instruments, each: bool, model: onnx.ModelProto,
             run: PipelineRun, verifier: Verifier = DEFAULT_VERIFIER) -> bool:
    """Run ``passes`` on the protobuf into ``run`` (calling the instruments' pass hooks), or
    return False having touched nothing. ``each``: the manager verifies after every pass;
    ``verifier``: the manager's."""
    if each or not all(has_fast_path(p) for p in passes) or not plain(model):
        return False
    try:
        stages, records, graph = _run(passes, model, verifier)
    except Exception:  # noqa: BLE001 - declined, invalid or a pass's own error: the gs path says what it says
        return False
    if RETAINED is not None:
        RETAINED.append(graph)
    for index, (p, record) in enumerate(zip(passes, records)):
        instruments.call("before_pass", run, index, p)
        run.stages.append(stages[index + 1])
        run.adapters.append(run.declared[index])
        run.records.append(record)
        instruments.call("after_pass", run, index, p, record)
    return True


def _run(passes: list[Pass], model: onnx.ModelProto,
         verifier: Verifier) -> tuple[list, list[PassRecord], ProtoGraph]:
    """``PassManager._run_passes`` with deferred verification, on the view (returned too)."""
    graph = ProtoGraph(model, default_opset(model))
    provenance: dict[str, str] = {}
    stages: list = [model]
    records: list[PassRecord] = []
    last_verified, dirty, current = model, False, False  # the original is lent its inferred shapes too
    for p in passes:
        if p.needs_shapes_proto(graph):  # type: ignore[attr-defined]
            if not current:
                if dirty:
                    last_verified = _verify(verifier, graph, model, records[-1], provenance)
                    stages[-1] = last_verified
                    dirty = False
                graph.lend_inferred(inferred(last_verified))  # as the Shapes analysis gives it
                current = True
        elif graph.inferred:
            graph.inferred = {}
            current = False
        record = _run_one(p, graph, provenance)
        if record.modified:
            graph.inferred = {}
            dirty, current = True, False
        stages.append(None if dirty else last_verified)
        records.append(record)
    if dirty:
        stages[-1] = _verify(verifier, graph, model, records[-1], provenance)
    return stages, records, graph


def _verify(verifier: Verifier, graph: ProtoGraph, template: onnx.ModelProto, record: PassRecord,
            provenance: dict[str, str]) -> onnx.ModelProto:
    start = time.perf_counter()
    exported = graph.to_model(template, provenance)
    if type(verifier).verify is Verifier.verify:
        # Provenance is written by to_model already, and a plain model has no bodies to tidy.
        model = verifier.verify(exported, template, record.name, {}, ExportHints(order=graph.order(), bodies=False))[0]
    else:  # a verifier with its own verify gets the call it was written for
        model = verifier.verify(exported, template, record.name, provenance)[0]
    record.verify_seconds += time.perf_counter() - start
    return model


def _run_one(p: Pass, graph: ProtoGraph, provenance: dict[str, str]) -> PassRecord:
    """``PassManager._run_one`` on the view."""
    graph.begin_pass()
    before = list(graph.nodes)  # their names are read only if the pass adds nodes
    nodes_before = len(graph.nodes)
    ops_before = graph.op_counts()
    start = time.perf_counter()
    result = p.run_proto(graph)  # type: ignore[attr-defined]
    if result is None:
        raise _Declined(p.name)
    modified = bool(result.rewrites or graph.touched or result.modified is None or result.modified)
    record = PassRecord(name=p.name, spec=str(p), exact=p.exact, rewrites=result.rewrites,
                        reasons=list(dict.fromkeys(result.reasons)), modified=modified, seconds=0.0,
                        verify_seconds=0.0, nodes_before=nodes_before, nodes_after=nodes_before, op_delta={})
    if not modified:
        record.seconds = time.perf_counter() - start
        return record
    graph.clean_and_sort(p.name)

    before_names = {n.name for n in before if n.name} if graph.new else set()

    def is_new(node: onnx.NodeProto) -> bool:
        return id(node) in graph.new and not (node.name and node.name in before_names)

    if graph.new or graph.touched:  # else there is nothing to name or record
        tag_provenance(graph.nodes, is_new, graph.touched, p.name, provenance, lambda n: n.op_type)
    ops_after = graph.op_counts()
    record.op_delta = {op: ops_after[op] - ops_before[op] for op in sorted(set(ops_before) | set(ops_after))
                       if ops_after[op] != ops_before[op]}
    record.nodes_after = len(graph.nodes)
    record.seconds = time.perf_counter() - start
    return record
