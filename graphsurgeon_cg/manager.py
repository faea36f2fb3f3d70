"""The pass manager: parse a pipeline, run each pass, clean up, verify, record, compare.

For every pass: run it on an onnx-graphsurgeon graph, remove dead nodes and sort
topologically, export, infer shapes strictly and run the ONNX checker, tag the nodes it
created or touched with provenance, and record rewrites, time, node counts and the op-type
histogram delta. A pass that raises or leaves an invalid model stops the pipeline with an
error naming it. With checking on (the default), the original and rewritten models are run in
ONNX Runtime on the same inputs and must agree within the pipeline's bound; on a breach the
pass that caused it is named.
"""

from __future__ import annotations

import time
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import onnx
import onnx_graphsurgeon as gs

from .errors import CgsurgError, NumericCheckFailed, PassFailed
from .modelio import default_opset, weightless
from .numeric import (EXACT, Bound, Comparison, check_shape_names_of, compare_outputs, file_feeds, input_shape, make_session,
                      random_feeds, run_session)
from .pipeline import build_pipeline
from .registry import Pass, PassContext

PROVENANCE_PREFIX = "cgsurg:"


@dataclass
class PassRecord:
    name: str
    spec: str
    exact: bool
    rewrites: int
    reasons: list[str]
    seconds: float
    verify_seconds: float
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    check: Comparison | None = None

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["check"] = self.check.as_dict() if self.check else None
        return d


@dataclass
class PipelineResult:
    model: onnx.ModelProto
    pipeline: str
    records: list[PassRecord]
    bound: Bound
    check: Comparison | None = None
    report_dir: Path | None = None

    @property
    def rewrites(self) -> int:
        return sum(r.rewrites for r in self.records)

    def as_dict(self) -> dict:
        return {"pipeline": self.pipeline, "bound": self.bound.describe(),
                "passes": [r.as_dict() for r in self.records],
                "check": self.check.as_dict() if self.check else None}


@dataclass
class CheckSettings:
    """Inputs for the numeric check: real ones from ``inputs_dir``, or seeded random ones."""

    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    inputs_dir: str | None = None
    seed: int = 0


class PassManager:
    def __init__(self, pipeline: str | Sequence, check: CheckSettings | None = CheckSettings(),
                 check_each: bool = False, instruments: Sequence = (), data: str | None = None):
        """``instruments``: objects with ``after_pass(pass, record, model)``, called after every
        pass with the verified model (reporting and measuring live there, not in passes)."""
        self.passes: list[Pass] = build_pipeline(pipeline)
        self.instruments = list(instruments)
        self.data = data
        self.check = check
        self.check_each = check_each and check is not None
        # Exact passes add nothing to the bound; lossy ones add their own.
        self.bound = Bound.chain([EXACT] + [p.bound for p in self.passes if not p.exact])

    @property
    def pipeline(self) -> str:
        return ",".join(str(p) for p in self.passes)

    def run(self, model: onnx.ModelProto) -> PipelineResult:
        checker = _Checker(model, self.check, self.passes) if self.check is not None else None
        stages = [model]
        provenance: dict[str, str] = {}
        records = []
        graph = gs.import_onnx(model)
        for index, p in enumerate(self.passes):
            record, graph, current = self._run_one(p, graph, model, stages[-1], provenance)
            stages.append(current)
            if self.check_each:
                record.check = checker.compare(stages, index, index + 1, p.bound)
            for instrument in self.instruments:
                instrument.after_pass(p, record, current)
            if record.check is not None:
                if not record.check.ok:
                    raise NumericCheckFailed(f"numeric check failed after pass '{p.name}': "
                                             f"{record.check.violations[0]}", p.name)
            records.append(record)
            if index + 1 < len(self.passes):
                _apply_inferred_shapes(graph, current)  # the next pass sees inferred shapes
        result = PipelineResult(model=stages[-1], pipeline=self.pipeline, records=records, bound=self.bound)
        if checker is not None:
            result.check = checker.compare(stages, 0, len(stages) - 1, self.bound)
            if not result.check.ok:
                raise self._culprit(checker, stages, result.check)
        return result

    def _run_one(self, p: Pass, graph: gs.Graph, template: onnx.ModelProto, previous: onnx.ModelProto,
                 provenance: dict[str, str]) -> tuple[PassRecord, gs.Graph, onnx.ModelProto]:
        ctx = PassContext(pass_name=p.name, opset=graph.opset, graph=graph, data=self.data)
        before_order = [id(n) for n in graph.nodes]
        before_ids = set(before_order)
        before_names = {n.name for n in graph.nodes if n.name}
        ops_before = Counter(n.op for n in graph.nodes)
        start = time.perf_counter()
        try:
            result = p.run(graph, ctx)
        except CgsurgError:
            raise
        except Exception as exc:
            raise PassFailed(p.name, f"{type(exc).__name__}: {exc}") from exc
        record = PassRecord(name=p.name, spec=str(p), exact=p.exact, rewrites=result.rewrites,
                            reasons=list(dict.fromkeys(result.reasons)), seconds=0.0, verify_seconds=0.0,
                            nodes_before=len(before_order), nodes_after=len(before_order), op_delta={})
        unchanged = (result.graph is None and not result.rewrites and not ctx.touched
                     and [id(n) for n in graph.nodes] == before_order)
        if unchanged:  # nothing to clean, sort or verify again: the previous model stands
            record.seconds = time.perf_counter() - start
            return record, graph, previous
        if result.graph is not None:
            graph = result.graph
        graph.cleanup(remove_unused_graph_inputs=False)
        if not _is_sorted(graph):
            _toposort(graph, p.name)
        record.seconds = time.perf_counter() - start

        start = time.perf_counter()
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
        model = _export_verified(graph, template, p.name, provenance)
        record.verify_seconds = time.perf_counter() - start
        ops_after = Counter(n.op_type for n in model.graph.node)
        record.op_delta = {op: ops_after[op] - ops_before[op] for op in sorted(set(ops_before) | set(ops_after))
                           if ops_after[op] != ops_before[op]}
        record.nodes_after = len(model.graph.node)
        return record, graph, model

    def _culprit(self, checker: "_Checker", stages: list, total: Comparison) -> NumericCheckFailed:
        """The pipeline breached its bound: find the first pass that breaches its own."""
        for index, p in enumerate(self.passes):
            step = checker.compare(stages, index, index + 1, p.bound)
            if not step.ok:
                return NumericCheckFailed(f"numeric check failed after pass '{p.name}': {step.violations[0]}", p.name)
        lossy = [p.name for p in self.passes if not p.exact] or [p.name for p in self.passes]
        return NumericCheckFailed(f"numeric check failed for the pipeline (passes {', '.join(lossy)} together): "
                                  f"{total.violations[0]}", lossy[-1])


class _Checker:
    """Runs the pipeline's stages on one set of inputs, caching each stage's outputs.

    Inputs are made for the original model: seeded random ones (their batch follows a static
    batch of the stage being checked, so ``static-batch(batch=4)`` is checked at batch 4) or
    real ones from ``inputs_dir``. Each pass translates inputs forward and outputs back
    (``adapt_feeds``/``adapt_outputs``), so a pass that makes the model take uint8 images is
    compared in the original model's units.
    """

    def __init__(self, original: onnx.ModelProto, settings: CheckSettings, passes: Sequence[Pass]):
        self.settings = settings
        self.passes = list(passes)
        self.feeds: list = []
        self._feed_shapes: dict | None = None
        self._outputs: dict[int, list] = {}
        self.original_inputs = make_session(original).get_inputs()
        check_shape_names_of(self.original_inputs, settings.shapes)  # fail before any pass runs
        self._prepare(None, original)

    def _prepare(self, static_batch: int | None, original: onnx.ModelProto | None = None) -> None:
        if self.settings.inputs_dir:
            if not self.feeds:
                self.feeds = file_feeds(make_session(original), self.settings.inputs_dir)
            return
        shapes = {i.name: input_shape(i, self.settings.shapes) for i in self.original_inputs}
        if static_batch:
            shapes = {name: (static_batch, *shape[1:]) for name, shape in shapes.items()}
        if shapes != self._feed_shapes:
            grid = next((g for g in (p.feed_grid() for p in self.passes) if g is not None), None)
            self.feeds = random_feeds(self.original_inputs, shapes, self.settings.seed, grid=grid)
            self._feed_shapes = shapes
            self._outputs.clear()

    def outputs(self, stages: list, k: int) -> list:
        """Outputs of stage ``k`` (the model after ``k`` passes), in that stage's own units."""
        if k not in self._outputs:
            feeds = self.feeds
            for p in self.passes[:k]:
                feeds = [p.adapt_feeds(f) for f in feeds]
            self._outputs[k] = run_session(make_session(stages[k]), feeds)
        return self._outputs[k]

    def compare(self, stages: list, i: int, j: int, bound: Bound) -> Comparison:
        """Stage ``j`` against stage ``i`` (i < j), in stage ``i``'s units."""
        self._prepare(_static_batch(stages[j]))
        new = self.outputs(stages, j)
        for p in reversed(self.passes[i:j]):
            new = [p.adapt_outputs(o) for o in new]
        return compare_outputs(self.outputs(stages, i), new, bound)


def _static_batch(model: onnx.ModelProto) -> int | None:
    """The first input's static batch size, or None when it is dynamic."""
    initializers = {t.name for t in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name not in initializers:
            dims = inp.type.tensor_type.shape.dim
            return dims[0].dim_value if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0 else None
    return None


def _ensure_name(node: gs.Node, pass_name: str, used: set[str]) -> None:
    if not node.name or node.name in used:
        base = f"{pass_name}/{node.op}"
        k = 0
        while f"{base}_{k}" in used:
            k += 1
        node.name = f"{base}_{k}"
    used.add(node.name)


def _apply_inferred_shapes(graph: gs.Graph, model: onnx.ModelProto) -> None:
    """Carry shape inference's results from the verified model back to the tensors that lack
    them (cheaper than importing the model again, which dominates on large graphs)."""
    missing = {name: t for name, t in graph.tensors().items()
               if isinstance(t, gs.Variable) and (t.shape is None or t.dtype is None)}
    if not missing:
        return
    for info in list(model.graph.value_info) + list(model.graph.output):
        tensor = missing.get(info.name)
        if tensor is None or not info.type.HasField("tensor_type"):
            continue
        tt = info.type.tensor_type
        if tt.elem_type:
            tensor.dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if tt.HasField("shape"):
            tensor.shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]


def _is_sorted(graph: gs.Graph) -> bool:
    """Whether every node comes after the producers of its inputs (one pass, no sorting)."""
    produced = set()
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
    """Export, carry over model-level fields, tag provenance, infer shapes strictly, check."""
    try:
        model = gs.export_onnx(graph, do_type_check=True, ir_version=template.ir_version)
    except Exception as exc:
        raise PassFailed(pass_name, f"cannot export the graph: {exc}") from exc
    if graph.opset != default_opset(template):
        model.ir_version = max(template.ir_version, _min_ir_version(graph.opset))
    model.producer_name = template.producer_name
    model.producer_version = template.producer_version
    model.model_version = template.model_version
    model.doc_string = template.doc_string
    del model.metadata_props[:]
    model.metadata_props.extend(template.metadata_props)
    for node in model.graph.node:
        if node.name in provenance:
            node.doc_string = provenance[node.name]
    try:  # strict shape inference and the checker, on the model without its weights
        inferred = onnx.shape_inference.infer_shapes(weightless(model), check_type=True, strict_mode=True,
                                                     data_prop=True)
        onnx.checker.check_model(inferred)
    except Exception as exc:
        message = str(exc).strip().splitlines()
        raise PassFailed(pass_name, f"the rewritten model is invalid: {message[0] if message else type(exc).__name__}") from None
    del model.graph.value_info[:]
    model.graph.value_info.extend(inferred.graph.value_info)
    for output, typed in zip(model.graph.output, inferred.graph.output):
        output.type.CopyFrom(typed.type)
    return model


def _min_ir_version(opset: int) -> int:
    """The lowest IR version that can carry ``opset`` of the default domain."""
    irs = [ir for _release, ir, ai_onnx, *_ in onnx.helper.VERSION_TABLE if ai_onnx >= opset]
    return min(irs, default=onnx.IR_VERSION)
