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

import gc
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import onnx
import onnx_graphsurgeon as gs

from .analysis import Analysis, AnalysisManager, Shapes, inferred
from .base import IDENTITY, IOAdapter, Pass, PassContext, PassResult
from .bounds import EXACT, Bound
from .cleanup import clean_and_sort, has_bodies, tag_provenance
from .errors import CgsurgError, InputError, PassFailed
from .fastpath import run_fast
from .graphutil import graph_fingerprint
from .instruments import Failure, Instrument, Instruments, PipelineRun
from .interface import check_interface, interface_of
from .records import PassRecord, PipelineResult
from .registry import PipelineLike, build_pipeline
from .roundtrip import carry_over, export_graph, overridable_as_variables, own_renamed_weights
from .services import PassServices
from .shapes import InferredShapes
from .verifier import DEFAULT_VERIFIER, Verifier

__all__ = ["PassManager", "PassRecord", "PipelineResult", "VERIFY_MODES"]

gs.logger.G_LOGGER.severity = gs.logger.G_LOGGER.ERROR  # its warnings would precede our one-line errors


VERIFY_MODES = ("auto", "each", "end")


def changed_bound(passes: Sequence[Pass], records: Sequence[PassRecord]) -> Bound:
    """The bound of a run: the lossy passes that changed the graph add theirs to ``EXACT``;
    a pass that changed nothing (``resize-nearest`` on a model with no Resize) adds nothing."""
    return Bound.chain([EXACT] + [p.bound() for p, r in zip(passes, records) if not p.exact and r.modified])


class PassManager:
    def __init__(self, pipeline: PipelineLike, instruments: Sequence[Instrument] = (),
                 data: str | None = None, verify: str = "auto", services: PassServices | None = None,
                 verifier: Verifier = DEFAULT_VERIFIER):
        """``pipeline``: a pipeline string or specs/passes (all checked here, before any work).
        ``instruments``: observers such as ``check.NumericChecker`` and ``report.AccuracyReport``.
        ``data``: an info file of samples that passes may use (int8 calibration).
        ``services``: samples, a runtime and the vendor metric for passes that calibrate.
        ``verify``: ``each`` exports and verifies the model after every pass that changed it;
        ``end`` only before a pass that reads inferred shapes (``Pass.needs_shapes``) and at
        the end, and replays pass by pass on failure to name the culprit: the same result,
        without one export, shape inference and checker run per pass (graphs with If/Loop
        bodies are still verified after every pass); ``auto`` (the default) is ``each`` when
        an instrument needs the model after every pass, else ``end``.
        ``verifier``: what checks each exported model (``core.verifier``; e.g. ``StrictVerifier()``)."""
        if verify not in VERIFY_MODES:
            raise InputError(f"verify must be one of {', '.join(VERIFY_MODES)}, not '{verify}'")
        self.passes: list[Pass] = build_pipeline(pipeline)
        self.instruments = Instruments(instruments)
        self.data = data
        self.services = services
        self.verify = verify
        self.verifier = verifier
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
        with collector_paused():
            return self._run(model, run)

    def _run(self, model: onnx.ModelProto, run: PipelineRun) -> PipelineResult:
        try:
            self.instruments.call("before_pipeline", run)
            try:
                # The protobuf fast path, where it gives the same model (core.fastpath).
                if not run_fast(self.passes, self.instruments, self.verifies_each_pass, model, run, self.verifier):
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
        defaults = overridable_as_variables(graph, model)
        # With If/Loop bodies, what inference finds depends on the shapes declared so far (an
        # inlined branch loses its declared output shape): verify after every pass there.
        each = each or has_bodies(graph)
        provenance: dict[str, str] = {}
        verified = model  # the last verified model
        types: onnx.ModelProto | None = None  # ``verified`` as strict inference types it, once asked
        dirty = False  # whether the graph changed since ``verified``
        in_pass = False

        def as_it_is() -> onnx.ModelProto:
            """The graph as it is, typed by strict inference: what analyses are computed from."""
            nonlocal verified, types, dirty
            if dirty:  # only with deferred verification
                if in_pass:  # the pass may have edited the graph already: a checkpoint before it is lost
                    raise _Unattributed()
                verified, types = self._verify(graph, model, run.records[-1], provenance, lent)
                run.stages[-1] = verified
                dirty = False
            if types is None:
                types = inferred(verified)
            return types

        analyses = AnalysisManager(as_it_is)
        # Passes read shapes from the graph's tensors: the Shapes analysis is lent to the tensors
        # that lack them before a pass that reads them, and taken back as soon as the graph
        # changes, before a pass that does not read them and before every export, so that each
        # pass sees the same graph in either mode and nothing lent is written.
        lent = InferredShapes()
        latest = [graph]  # the graph a failing pass left (a replacement graph included), for run.failure
        for index, p in enumerate(self.passes):
            call("before_pass", run, index, p)
            try:
                if p.needs_shapes(graph):
                    lent.lend(graph, analyses.get(Shapes))
                else:
                    lent.forget()
                in_pass = True
                record, graph, adapter, preserved = self._run_one(p, graph, defaults, provenance, analyses, latest,
                                                                  run.declared[index])
                in_pass = False
                if record.modified:
                    lent.forget()
                    analyses.invalidate(preserved)
                    dirty = True
                    if each:
                        verified, types = self._verify(graph, model, record, provenance, lent)
                        dirty = False
            except CgsurgError as exc:
                if not each:
                    raise _Unattributed() from exc
                lent.forget()
                run.failure = Failure(index, p, exc, partial(_unchecked, latest[0], model, p.name, dict(provenance)))
                call("after_pass_failed", run, index, p, exc)
                raise
            run.stages.append(None if dirty else verified)
            run.adapters.append(adapter)
            run.records.append(record)
            call("after_pass", run, index, p, record)
        if dirty:
            try:
                run.stages[-1] = self._verify(graph, model, run.records[-1], provenance, lent)[0]
            except CgsurgError as exc:
                raise _Unattributed() from exc

    def _verify(self, graph: gs.Graph, template: onnx.ModelProto, record: PassRecord, provenance: dict[str, str],
                lent: InferredShapes) -> tuple[onnx.ModelProto, onnx.ModelProto]:
        """Export and verify the graph with the shapes it declares (inference derives the rest
        afresh: an inferred shape a pass made stale cannot conflict), blaming ``record``'s pass;
        the model, and the model as strict inference typed it."""
        start = time.perf_counter()
        lent.forget()
        verified = self.verifier.export(graph, template, record.name, provenance)
        record.verify_seconds += time.perf_counter() - start
        return verified

    def _run_one(self, p: Pass, graph: gs.Graph, defaults: dict[str, gs.Constant], provenance: dict[str, str],
                 analyses: AnalysisManager, latest: list[gs.Graph], declared: IOAdapter = IDENTITY
                 ) -> tuple[PassRecord, gs.Graph, IOAdapter, tuple[type[Analysis], ...]]:
        ctx = PassContext(pass_name=p.name, opset=graph.opset, graph=graph, data=self.data, defaults=defaults,
                          services=self.services, analyses=analyses)
        before_order = [id(n) for n in graph.nodes]
        before_ids = set(before_order)
        before_names = {n.name for n in graph.nodes if n.name}
        ops_before = Counter(n.op for n in graph.nodes)
        fingerprint = None if p.reports_modified else graph_fingerprint(graph)
        interface = interface_of(graph)
        start = time.perf_counter()
        try:
            result = p.run(graph, ctx)
        except (CgsurgError, _Unattributed):
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
        adapter = result.adapter or declared
        preserved = (*p.preserves, *result.preserved)
        if not modified:  # nothing to clean, sort or verify: the graph stands as it was
            record.seconds = time.perf_counter() - start
            return record, graph, adapter, preserved
        if result.graph is not None:
            graph = latest[0] = result.graph
        check_interface(p, interface, interface_of(graph), removable=adapter.removed_inputs)
        clean_and_sort(graph, p.name)

        # A node is the pass's own if it is new and does not carry an old node's name (a pass
        # that replaces the whole graph, like opset conversion, keeps the names of what it kept).
        def is_new(node: gs.Node) -> bool:
            return id(node) not in before_ids and not (node.name and node.name in before_names)

        tag_provenance(graph.nodes, is_new, ctx.touched, p.name, provenance, lambda n: n.op)
        own_renamed_weights(graph)  # before any export, a pass's own included
        ops_after = Counter(n.op for n in graph.nodes)
        record.op_delta = {op: ops_after[op] - ops_before[op] for op in sorted(set(ops_before) | set(ops_after))
                           if ops_after[op] != ops_before[op]}
        record.nodes_after = len(graph.nodes)
        record.seconds = time.perf_counter() - start
        return record, graph, adapter, preserved


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic collector off for the block: it would walk the hundreds of thousands of
    node objects a large graph makes again and again while they are built (issue 19: 27.8 s ->
    19.1 s at 100k nodes), and a run makes no reference cycles worth collecting before it ends."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _unchecked(graph: gs.Graph, template: onnx.ModelProto, pass_name: str,
               provenance: dict[str, str]) -> onnx.ModelProto:
    """The graph a pass failed on, exported as it is, unverified (``Failure.model``)."""
    model = export_graph(graph, template, pass_name)
    carry_over(model, template, provenance)
    return model


class _Unattributed(Exception):
    """A failure with verification deferred, not yet pinned on a pass (the cause is chained),
    or a pass that asked for an analysis mid-run when the graph had changed since the last
    verification (its ``needs_shapes`` said no): the replay verifies pass by pass."""

