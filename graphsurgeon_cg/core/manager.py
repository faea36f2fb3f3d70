"""The pass manager: run a pipeline of passes, clean up, verify, record; instruments observe.

For every pass: run it on an onnx-graphsurgeon graph; decide whether it changed anything
(what the pass says, else a structural fingerprint); if it did, remove dead nodes, sort
topologically, export, infer shapes strictly, run the ONNX checker, and tag the nodes it
created or touched with provenance; then record rewrites, time, node counts and the op-type
delta. A pass that raises or leaves an invalid model stops the pipeline with an error naming
it. Numeric checks, reports and timing are instruments (``core.instruments``): this module
knows nothing of ONNX Runtime.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from .base import IDENTITY, IOAdapter, Pass, PassContext, PassResult
from .bounds import EXACT, Bound
from .errors import CgsurgError, InputError, PassFailed
from .graphutil import graph_fingerprint
from .instruments import Instrument, Instruments, PipelineRun
from .modelio import default_opset, weightless
from .pipeline import PassSpec
from .registry import build_pipeline

PROVENANCE_PREFIX = "cgsurg:"
gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # its warnings would precede our one-line errors


@dataclass
class PassRecord:
    name: str
    spec: str
    exact: bool
    rewrites: int
    reasons: list[str]
    modified: bool
    seconds: float
    verify_seconds: float
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    check: Any = None  # set by the numeric checker (a check.metrics.Comparison) with check_each

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["check"] = self.check.as_dict() if self.check is not None else None
        return d


@dataclass
class PipelineResult:
    model: onnx.ModelProto
    pipeline: str
    records: list[PassRecord]
    bound: Bound
    check: Any = None  # set by the numeric checker: the comparison of the result with the original
    report_dir: Path | None = None
    extras: dict = field(default_factory=dict)  # what other instruments want to hand back

    @property
    def rewrites(self) -> int:
        return sum(r.rewrites for r in self.records)

    def as_dict(self) -> dict:
        return {"pipeline": self.pipeline, "bound": self.bound.describe(),
                "passes": [r.as_dict() for r in self.records],
                "check": self.check.as_dict() if self.check is not None else None}


VERIFY_MODES = ("auto", "each", "end")


def changed_bound(passes: Sequence[Pass], records: Sequence[PassRecord]) -> Bound:
    """The bound of a run: the lossy passes that changed the graph add theirs to ``EXACT``;
    a pass that changed nothing (``resize-nearest`` on a model with no Resize) adds nothing."""
    return Bound.chain([EXACT] + [p.bound() for p, r in zip(passes, records) if not p.exact and r.modified])


class PassManager:
    def __init__(self, pipeline: str | Sequence[PassSpec | Pass], instruments: Sequence[Instrument] = (),
                 data: str | None = None, verify: str = "auto"):
        """``pipeline``: a pipeline string or specs/passes (all checked here, before any work).
        ``instruments``: observers such as ``check.NumericChecker`` and ``report.AccuracyReport``.
        ``data``: an info file of samples that passes may use (int8 calibration).
        ``verify``: ``each`` exports and verifies the model after every pass that changed it;
        ``end`` only before a pass that reads inferred shapes (``Pass.needs_shapes``) and at
        the end, and replays pass by pass on failure to name the culprit: the same result,
        without one export, shape inference and checker run per pass (graphs with If/Loop
        bodies are still verified after every pass); ``auto`` (the default) is ``each`` when
        an instrument needs the model after every pass, else ``end``."""
        if verify not in VERIFY_MODES:
            raise InputError(f"verify must be one of {', '.join(VERIFY_MODES)}, not '{verify}'")
        self.passes: list[Pass] = build_pipeline(pipeline)
        self.instruments = Instruments(instruments)
        self.data = data
        self.verify = verify
        # The most the pipeline may declare: exact passes add nothing to EXACT, lossy ones their
        # own bound. A run's bound (``PipelineResult.bound``) counts only the passes that changed
        # the graph (``changed_bound``).
        self.bound = Bound.chain([EXACT] + [p.bound() for p in self.passes if not p.exact])

    @property
    def pipeline(self) -> str:
        return ",".join(str(p) for p in self.passes)

    @property
    def verifies_each_pass(self) -> bool:
        return self.verify == "each" or (self.verify == "auto" and
                                         any(i.needs_stages for i in self.instruments.items))

    def run(self, model: onnx.ModelProto) -> PipelineResult:
        readers = [type(i).__name__ for i in self.instruments.items if i.needs_stages]
        if self.verify == "end" and readers:
            raise InputError(f"verify='end' leaves no model between passes, which {', '.join(readers)} reads")
        run = PipelineRun(self.passes, self.bound, [model], replay=lambda: self._every_stage(model))
        try:
            self.instruments.call("before_pipeline", run)
            try:
                self._run_passes(model, run, each=self.verifies_each_pass, hooks=True)
            except _Unattributed:
                # A pass failed, or the result is invalid, with verification deferred: the
                # failing pass may be an earlier one that left the graph broken. Replaying with
                # a verified model after every pass names it (passes hold no state).
                del run.stages[1:], run.adapters[:], run.records[:]
                self._run_passes(model, run, each=True, hooks=False)
            run.bound = changed_bound(self.passes, run.records)
            result = PipelineResult(model=run.stages[-1], pipeline=self.pipeline, records=run.records,
                                    bound=run.bound)
            self.instruments.call("after_pipeline", run, result)
        except CgsurgError as exc:
            self.instruments.call("after_pipeline_failed", run, exc)
            raise
        return result

    def _every_stage(self, model: onnx.ModelProto) -> list[onnx.ModelProto]:
        replayed = PipelineRun(self.passes, self.bound, [model])
        self._run_passes(model, replayed, each=True, hooks=False)
        return replayed.stages

    def _run_passes(self, model: onnx.ModelProto, run: PipelineRun, each: bool, hooks: bool) -> None:
        """Run every pass on one graph, appending to ``run``. ``stages[k]`` is the verified model
        after ``k`` passes; with deferred verification (``each`` false) it is None where the
        graph changed since the last verification, until the end."""
        def call(hook: str, *args: Any) -> None:
            if hooks:
                self.instruments.call(hook, *args)

        graph = gs.import_onnx(model)
        defaults = _overridable_as_variables(graph, model)
        # With If/Loop bodies, what inference finds depends on the shapes declared so far (an
        # inlined branch loses its declared output shape): verify after every pass there.
        each = each or _has_bodies(graph)
        provenance: dict[str, str] = {}
        # The graph's shapes are what the model declares, what passes set, and what the manager
        # filled in from inference (``inferred``: given only before a pass that reads them, taken
        # out again as soon as the graph changes, before a pass that does not read them and
        # before every export), so that each pass sees the same graph in either mode.
        inferred = InferredShapes()
        verified = model  # the last verified model
        dirty = False  # whether the graph changed since ``verified``
        current = True  # whether the inferred shapes describe the graph as it is
        for index, p in enumerate(self.passes):
            call("before_pass", run, index, p)
            try:
                if p.needs_shapes(graph):
                    if not current:
                        if dirty:  # only with deferred verification
                            verified = self._verify(graph, model, run.records[-1], provenance, inferred)
                            run.stages[-1] = verified
                            dirty = False
                        inferred.fill(graph, verified)
                        current = True
                elif inferred:
                    inferred.forget()
                    current = False
                record, graph, adapter = self._run_one(p, graph, defaults, provenance)
                if record.modified:  # inferred shapes may be stale now: nothing may read them
                    inferred.forget()
                    dirty, current = True, False
                    if each:
                        verified = self._verify(graph, model, record, provenance, inferred)
                        dirty = False
            except CgsurgError as exc:
                if not each:
                    raise _Unattributed() from exc
                call("after_pass_failed", run, index, p, exc)
                raise
            run.stages.append(None if dirty else verified)
            run.adapters.append(adapter)
            run.records.append(record)
            call("after_pass", run, index, p, record)
        if dirty:
            try:
                run.stages[-1] = self._verify(graph, model, run.records[-1], provenance, inferred)
            except CgsurgError as exc:
                raise _Unattributed() from exc

    def _verify(self, graph: gs.Graph, template: onnx.ModelProto, record: PassRecord, provenance: dict[str, str],
                inferred: InferredShapes) -> onnx.ModelProto:
        """Export and verify the graph with the shapes it declares (inference derives the rest
        afresh: an inferred shape a pass made stale cannot conflict), blaming ``record``'s pass."""
        start = time.perf_counter()
        inferred.forget()
        model = _export_verified(graph, template, record.name, provenance)
        record.verify_seconds += time.perf_counter() - start
        return model

    def _run_one(self, p: Pass, graph: gs.Graph, defaults: dict[str, gs.Constant], provenance: dict[str, str]
                 ) -> tuple[PassRecord, gs.Graph, IOAdapter]:
        ctx = PassContext(pass_name=p.name, opset=graph.opset, graph=graph, data=self.data, defaults=defaults)
        before_order = [id(n) for n in graph.nodes]
        before_ids = set(before_order)
        before_names = {n.name for n in graph.nodes if n.name}
        ops_before = Counter(n.op for n in graph.nodes)
        fingerprint = None if p.reports_modified else graph_fingerprint(graph)
        interface = _interface(graph)
        start = time.perf_counter()
        try:
            result = p.run(graph, ctx)
        except CgsurgError:
            raise
        except Exception as exc:
            raise PassFailed(p.name, f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(result, PassResult):
            raise PassFailed(p.name, f"run() returned {type(result).__name__}, not a PassResult")
        modified = result.modified
        if result.graph is not None or result.rewrites or ctx.touched:
            modified = True
        elif modified is None:  # the pass did not say: look, rather than trust "0 rewrites"
            modified = fingerprint is None or graph_fingerprint(graph) != fingerprint
        record = PassRecord(name=p.name, spec=str(p), exact=p.exact, rewrites=result.rewrites,
                            reasons=list(dict.fromkeys(result.reasons)), modified=bool(modified), seconds=0.0,
                            verify_seconds=0.0, nodes_before=len(before_order), nodes_after=len(before_order),
                            op_delta={})
        adapter = result.adapter or IDENTITY
        if not modified:  # nothing to clean, sort or verify: the graph stands as it was
            record.seconds = time.perf_counter() - start
            return record, graph, adapter
        if result.graph is not None:
            graph = result.graph
        _check_interface(p, interface, _interface(graph), removable=adapter.removed_inputs)
        if _has_bodies(graph) or graph.functions:
            # A body may read outer tensors that a walk of this graph cannot see: onnx-graphsurgeon.
            graph.cleanup(remove_unused_graph_inputs=False)
            if not _is_sorted(graph):
                _toposort(graph, p.name)
        else:  # the same, in time linear in the graph (its versions are quadratic on shared weights)
            _drop_dead_nodes(graph)
            _sort_depth_first(graph, p.name)

        # A node is the pass's own if it is new and does not carry an old node's name (a pass
        # that replaces the whole graph, like opset conversion, keeps the names of what it kept).
        def is_new(node: gs.Node) -> bool:
            return id(node) not in before_ids and not (node.name and node.name in before_names)

        used = {n.name for n in graph.nodes if not is_new(n)}
        for node in graph.nodes:
            if is_new(node):
                _ensure_name(node, p.name, used)
                provenance[node.name] = f"{PROVENANCE_PREFIX}{p.name}"
        for node in ctx.touched:
            if not node.name:
                _ensure_name(node, p.name, used)
            provenance.setdefault(node.name, f"{PROVENANCE_PREFIX}{p.name} (modified)")
        _own_renamed_weights(graph)  # before any export, a pass's own included
        ops_after = Counter(n.op for n in graph.nodes)
        record.op_delta = {op: ops_after[op] - ops_before[op] for op in sorted(set(ops_before) | set(ops_after))
                           if ops_after[op] != ops_before[op]}
        record.nodes_after = len(graph.nodes)
        record.seconds = time.perf_counter() - start
        return record, graph, adapter


def _has_bodies(graph: gs.Graph) -> bool:
    """Whether some node has an If/Loop/Scan body."""
    return any(isinstance(v, gs.Graph) for node in graph.nodes for v in node.attrs.values())


class _Unattributed(Exception):
    """A failure with verification deferred, not yet pinned on a pass (the cause is chained)."""


Interface = tuple[list[tuple[str, Any, int | None]], list[tuple[str, Any, int | None]]]


def _interface(graph: gs.Graph) -> Interface:
    """Name, element type and rank of each graph input (weights aside) and output."""
    def describe(tensors: Sequence[gs.Tensor]) -> list[tuple[str, Any, int | None]]:
        return [(t.name, None if t.dtype is None else np.dtype(t.dtype) if not isinstance(t.dtype, int) else t.dtype,
                 None if t.shape is None else len(t.shape)) for t in tensors]

    return describe([t for t in graph.inputs if not isinstance(t, gs.Constant)]), describe(graph.outputs)


def _check_interface(p: Pass, before: Interface, after: Interface, removable: Sequence[str] = ()) -> None:
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


def _drop_dead_nodes(graph: gs.Graph) -> None:
    """What onnx-graphsurgeon's cleanup does to a graph without subgraphs or functions: remove
    the producers of graph inputs and every node that feeds no graph output, all at once. Its
    cleanup removes a dead node from each input's consumer list one by one, comparing nodes by
    value: with a weight shared by n nodes (one ``pads`` initializer for every Pad) that is
    quadratic. Here consumer lists are filtered by identity in one go."""
    for tensor in graph.inputs:
        if tensor.inputs:
            tensor.inputs.clear()
    live: set[int] = set()
    seen: set[int] = set()
    stack = list(graph.outputs)
    while stack:  # walk back from the outputs through producers (the order may not be sorted yet)
        tensor = stack.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        for producer in tensor.inputs:
            if id(producer) not in live:
                live.add(id(producer))
                stack.extend(producer.inputs)
    dead = [n for n in graph.nodes if id(n) not in live]
    if not dead:
        return
    dead_ids = {id(n) for n in dead}
    touched = {id(t): t for node in dead for t in list(node.inputs) + list(node.outputs)}
    for tensor in touched.values():  # plain list methods: no per-element synchronisation
        kept_consumers = [n for n in tensor.outputs if id(n) not in dead_ids]
        kept_producers = [n for n in tensor.inputs if id(n) not in dead_ids]
        list.clear(tensor.outputs)
        list.extend(tensor.outputs, kept_consumers)
        list.clear(tensor.inputs)
        list.extend(tensor.inputs, kept_producers)
    for node in dead:
        list.clear(node.inputs)
        list.clear(node.outputs)
    graph.nodes = [n for n in graph.nodes if id(n) not in dead_ids]


def _sort_depth_first(graph: gs.Graph, pass_name: str) -> None:
    """Sort the nodes topologically, each after its producers, keeping the current order where
    it already is one (a sorted graph stays as it is; a node a pass appended moves up to just
    before its first consumer). Linear; onnx-graphsurgeon's sort is not on long chains."""
    producer = {id(t): node for node in graph.nodes for t in node.outputs}
    state: dict[int, int] = {}  # 1: on the stack, 2: placed
    order: list[gs.Node] = []
    for root in graph.nodes:
        if id(root) in state:
            continue
        state[id(root)] = 1
        stack = [(root, iter(root.inputs))]
        while stack:
            node, pending = stack[-1]
            for tensor in pending:
                source = producer.get(id(tensor))
                if source is None or state.get(id(source)) == 2:
                    continue
                if state.get(id(source)) == 1:
                    _toposort(graph, pass_name)  # a cycle: onnx-graphsurgeon fails, and names it
                    return
                state[id(source)] = 1
                stack.append((source, iter(source.inputs)))
                break
            else:
                stack.pop()
                state[id(node)] = 2
                order.append(node)
    graph.nodes = order


def _ensure_name(node: gs.Node, pass_name: str, used: set[str]) -> None:
    if not node.name or node.name in used:
        base = f"{pass_name}/{node.op}"
        k = 0
        while f"{base}_{k}" in used:
            k += 1
        node.name = f"{base}_{k}"
    used.add(node.name)


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


def _is_sorted(graph: gs.Graph) -> bool:
    """Whether every node comes after the producers of its inputs (one pass, no sorting)."""
    produced: set[int] = set()
    for node in graph.nodes:
        if any(attr_is_graph for attr_is_graph in (isinstance(v, gs.Graph) for v in node.attrs.values())):
            return False  # subgraphs: leave the ordering to onnx-graphsurgeon
        for tensor in node.inputs:
            if tensor.inputs and id(tensor) not in produced:
                return False
        produced.update(id(t) for t in node.outputs)
    return True


def _toposort(graph: gs.Graph, pass_name: str) -> None:
    try:
        graph.toposort()
    except Exception:
        import networkx as nx

        cycle = nx.find_cycle(_node_digraph(graph))
        names = " -> ".join(a for a, _ in cycle)
        raise PassFailed(pass_name, f"the graph has a cycle: {names}") from None


def _node_digraph(graph: gs.Graph):
    import networkx as nx  # only on this error path: it costs a tenth of start-up

    g = nx.DiGraph()
    for node in graph.nodes:
        for out in node.outputs:
            for consumer in out.outputs:
                g.add_edge(node.name or node.op, consumer.name or consumer.op)
    return g


def _export_verified(graph: gs.Graph, template: onnx.ModelProto, pass_name: str,
                     provenance: dict[str, str]) -> onnx.ModelProto:
    """Export, carry over model-level fields, tag provenance, infer shapes strictly, check
    (renamed weights have their own protos already: ``_run_one`` sees to it after each pass)."""
    try:
        model = gs.export_onnx(graph, do_type_check=True, ir_version=template.ir_version)
    except Exception as exc:
        raise PassFailed(pass_name, f"cannot export the graph: {exc}") from exc
    if graph.opset != default_opset(template):
        model.ir_version = max(template.ir_version, _min_ir_version(graph.opset))
    _keep_initializers_as_inputs(model, template)
    model.producer_name = template.producer_name
    model.producer_version = template.producer_version
    model.model_version = template.model_version
    model.doc_string = template.doc_string
    del model.metadata_props[:]
    model.metadata_props.extend(template.metadata_props)
    for node in model.graph.node:
        if node.name in provenance:
            node.doc_string = provenance[node.name]
    _drop_outer_value_info(model.graph)
    try:  # strict shape inference and the checker, on the model without its weights
        inferred = onnx.shape_inference.infer_shapes(weightless(model), check_type=True, strict_mode=True,
                                                     data_prop=True)
        onnx.checker.check_model(inferred)
    except Exception as exc:
        message = str(exc).strip().splitlines()
        reason = message[0] if message else type(exc).__name__
        raise PassFailed(pass_name, f"the rewritten model is invalid: {reason}") from None
    del model.graph.value_info[:]
    model.graph.value_info.extend(_in_node_order(inferred.graph.value_info, model.graph))
    for output, typed in zip(model.graph.output, inferred.graph.output):
        output.type.CopyFrom(typed.type)
    return model


def _in_node_order(infos: Sequence[onnx.ValueInfoProto], graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Value infos in the order the nodes produce their tensors. Inference lists the declared
    ones first: without this, the order would depend on which shapes were declared when."""
    rank = {name: k for k, node in enumerate(graph.node) for name in node.output}
    return sorted(infos, key=lambda info: rank.get(info.name, len(rank)))


def _drop_outer_value_info(graph: onnx.GraphProto) -> None:
    """onnx-graphsurgeon writes the types of outer tensors that an If/Loop body reads into the
    body's value_info, whenever they are known: drop them (the outer graph declares them), so
    that what is written does not depend on which shapes were known when."""
    for node in graph.node:
        for attr in node.attribute:
            for body in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                local = {o for n in body.node for o in n.output} | {i.name for i in body.input}
                kept = _in_node_order([v for v in body.value_info if v.name in local], body)
                del body.value_info[:]
                body.value_info.extend(kept)
                _drop_outer_value_info(body)


def _own_renamed_weights(graph: gs.Graph) -> None:
    """onnx-graphsurgeon keeps the caller's TensorProto of each imported weight and, on export,
    writes the weight's current name into it: a pass that renames a weight (folding inlines an
    If branch) would rename it in the caller's model too. A renamed weight gets its own copy."""
    from onnx_graphsurgeon.ir.tensor import LazyValues

    def visit(g: gs.Graph) -> None:
        for node in g.nodes:
            for tensor in node.inputs:
                values = getattr(tensor, "_values", None)
                if isinstance(values, LazyValues) and values.tensor.name != tensor.name:
                    proto = onnx.TensorProto()
                    proto.CopyFrom(values.tensor)
                    proto.name = tensor.name
                    tensor._values = LazyValues(proto)
            for attr in node.attrs.values():
                if isinstance(attr, gs.Graph):
                    visit(attr)

    visit(graph)


def _overridable(model: onnx.ModelProto) -> set[str]:
    """The initializers a caller may override: from IR 4 on, those also listed as graph inputs
    (ONNX Runtime reads them so). Before IR 4 every initializer had to be listed, and listing
    says nothing: they are constants."""
    if model.ir_version < 4:
        return set()
    return {i.name for i in model.graph.input} & {t.name for t in model.graph.initializer}


def _overridable_as_variables(graph: gs.Graph, model: onnx.ModelProto) -> dict[str, gs.Constant]:
    """To the passes, an overridable initializer is a variable input, not a constant to fold,
    consume or quantise (a caller feeding their own pads would get the old ones baked in);
    ``_keep_initializers_as_inputs`` gives it back its default value on export. Returns the
    default values (constants, loaded when read), for passes that run the model (calibration)."""
    names = _overridable(model)
    if not names:
        return {}
    # onnx-graphsurgeon imports them as constants and drops them from the inputs.
    variables: dict[str, gs.Variable] = {}
    for tensor in model.graph.input:
        if tensor.name in names:
            typed = tensor.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                    for d in typed.shape.dim] if typed.HasField("shape") else None
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.type.tensor_type.elem_type)
            variables[tensor.name] = gs.Variable(tensor.name, dtype=dtype, shape=dims)
    order = [i.name for i in model.graph.input]
    kept = {t.name: t for t in graph.inputs}
    graph.inputs = [kept[name] if name in kept else variables[name]
                    for name in order if name in kept or name in variables]
    defaults: dict[str, gs.Constant] = {}  # values load lazily: old big exports list every weight
    for g in [graph, *graph.subgraphs(recursive=True)]:  # subgraphs read outer tensors directly
        for node in g.nodes:
            for k, tensor in enumerate(node.inputs):
                if isinstance(tensor, gs.Constant) and tensor.name in variables:
                    defaults.setdefault(tensor.name, tensor)
                    node.inputs[k] = variables[tensor.name]
    return defaults


def _keep_initializers_as_inputs(model: onnx.ModelProto, template: onnx.ModelProto) -> None:
    """IR < 4 requires every initializer to be a graph input, and older exports list some as
    inputs on purpose (overridable weights, which the passes saw as variables): put back what
    onnx-graphsurgeon drops, overridable ones with their original default value."""
    template_inits = {t.name for t in template.graph.initializer}
    listed = {i.name for i in template.graph.input if i.name in template_inits}
    every = model.ir_version < 4
    if not listed and not every:
        return
    present = {i.name for i in model.graph.input}
    for tensor in model.graph.initializer:
        if tensor.name not in present and (every or tensor.name in listed):
            model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
    defaults = _overridable(template) & present - {t.name for t in model.graph.initializer}
    for tensor in template.graph.initializer:
        if tensor.name in defaults:
            model.graph.initializer.append(tensor)  # a copy (protobuf); external data keeps its location
    # In the original's order (weights a pass made unused are gone: listing them would turn
    # them into inputs a caller must feed).
    rank = {i.name: k for k, i in enumerate(template.graph.input)}
    ordered = [_copied(i) for i in sorted(model.graph.input, key=lambda i: rank.get(i.name, len(rank)))]
    del model.graph.input[:]
    model.graph.input.extend(ordered)


def _copied(info: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(info)
    return out


def _min_ir_version(opset: int) -> int:
    """The lowest IR version that can carry ``opset`` of the default domain."""
    irs = [ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset]
    return min(irs, default=onnx.IR_VERSION)
