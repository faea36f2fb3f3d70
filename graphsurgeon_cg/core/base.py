"""What a pass is: the ``Pass`` base class, its context and result, I/O adapters, and a
small rule base for node-local rewrites.

The contract a pass author can rely on (and that ``graphsurgeon_cg.testing.check_pass_contract``
checks): a pass has a registered ``name``, a one-line ``summary``, declares whether it is
``exact`` and, if not, its ``bound()``; its options are typed ``Option`` attributes validated
when the pipeline is built; ``run`` edits the onnx-graphsurgeon graph in place (or returns a
replacement graph) and returns a ``PassResult`` saying how many rewrites it made, whether it
modified the graph, and why candidates were left alone. A pass holds no state between calls:
how a pass changes the model's inputs and outputs is declared in one way, an ``IOAdapter``
(``declare_io`` before the run, the result's ``adapter`` for the run). Passes never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import onnx_graphsurgeon as gs

from .analysis import A, Analysis, AnalysisManager, Shapes
from .bounds import EXACT, Bound
from .cleanup import unused_name
from .errors import InputError
from .options import Option
from .pipeline import PassSpec

if TYPE_CHECKING:
    import onnx

    from .services import PassServices


@dataclass(frozen=True, kw_only=True)
class IOAdapter:
    """How a pass changes what the model takes or gives, so that the numeric check and the
    report compare like with like: the one declaration of I/O changes. The identity by default.

    A pass declares it twice at most: before the run, from its options and the original model
    (``Pass.declare_io``: what the checker must know before any pass runs), and for the run
    itself (``PassResult.adapter``: what it converted on this graph; when a run gives none, the
    declared one stands). Optional parts:

    ``removed_inputs``: graph inputs the pass bound to constants and took out of the interface
    (``freeze-inputs``); the manager lets exactly these go, and ``feeds`` drops them.
    ``pinned``: the values those inputs are bound to, by name: every stage of a run is fed them,
    so the stages before the pass are compared at the point where the pass froze the model.
    ``grid``: ``(mean, scale)`` when the pass makes the model take 8-bit images normalised as
    ``(u - mean) / scale`` (``preproc-fold``): random check inputs are drawn from that grid.
    Subclasses add conversions: ``feeds`` (inputs before the pass -> after) and ``outputs``
    (outputs after the pass -> the units before it)."""

    removed_inputs: tuple[str, ...] = ()
    pinned: dict[str, np.ndarray] = field(default_factory=dict, compare=False, hash=False)
    grid: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def feeds(self, feed: dict) -> dict:
        """Inputs of the model before the pass -> the equivalent inputs after it."""
        if not self.removed_inputs:
            return feed
        return {k: v for k, v in feed.items() if k not in self.removed_inputs}

    def outputs(self, outputs: dict) -> dict:
        """Outputs of the model after the pass -> the units of the model before it."""
        return outputs


IDENTITY = IOAdapter()


@dataclass
class PassResult:
    """``rewrites``: how many matches were rewritten. ``reasons``: why candidates were left
    alone (the answer to "why didn't my pass fire?"). ``modified``: whether the graph changed;
    when left ``None`` the manager compares a structural fingerprint of the graph before and
    after, so an in-place edit reported as 0 rewrites is still seen. ``graph``: a replacement
    graph, for passes that cannot work in place. ``adapter``: how inputs/outputs changed in
    this run (None: as ``Pass.declare_io`` declared, else unchanged).
    ``preserved``: analyses (``Shapes``) that still describe the graph after this run's
    changes, besides the pass's ``preserves``."""

    rewrites: int = 0
    reasons: list[str] = field(default_factory=list)
    modified: bool | None = None
    graph: gs.Graph | None = None
    adapter: IOAdapter | None = None
    preserved: tuple[type[Analysis], ...] = ()


@dataclass
class PassContext:
    """What a pass may know about the run besides the graph, and two helpers."""

    pass_name: str
    opset: int
    graph: gs.Graph
    data: str | None = None  # an info file of preprocessed samples, e.g. for calibration
    # Default values of the inputs a caller may override (initializers listed as graph inputs,
    # IR >= 4): in the graph they are variables; a pass that runs the model feeds these.
    defaults: dict[str, gs.Constant] = field(default_factory=dict)
    # Samples, a runtime and the vendor metric, for passes that calibrate or search (int8):
    # given by whoever built the pass manager; None when it was built without them.
    services: PassServices | None = None
    # The run's analyses (given by the pass manager; made from ``graph`` when first asked otherwise).
    analyses: AnalysisManager | None = None
    touched: list[gs.Node] = field(default_factory=list)
    _names: set[str] | None = None
    _constants: dict = field(default_factory=dict)
    # The whole model: a rule sets ``graph`` to the If/Loop body it rewrites, and a fresh name
    # must be new to every scope (a body's new initializer would shadow an outer tensor).
    root: gs.Graph = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.graph

    def analysis(self, kind: type[A]) -> A:
        """An analysis of the graph as the pass received it (computed now unless cached)."""
        if self.analyses is None:
            self.analyses = AnalysisManager.of_graph(self.root)
        return self.analyses.get(kind)

    @property
    def shapes(self) -> Shapes:
        """Element type and shape of every tensor, bodies included, from strict shape inference."""
        return self.analysis(Shapes)

    def need_services(self, owner: Pass) -> PassServices:
        """The run's services, or a clear refusal naming the pass that needs them."""
        if self.services is None:
            raise owner.refuse("needs samples and a runtime: run it through graphsurgeon_cg.api.apply, or give "
                               "PassManager(services=graphsurgeon_cg.services.OrtServices())")
        return self.services

    def mark(self, node: gs.Node) -> None:
        """Record a node the pass modified in place, for provenance."""
        self.touched.append(node)

    def constant(self, base: str, values: Any, dtype: Any = None) -> gs.Constant:
        """An initializer holding ``values``, shared by every use of the same base, dtype and
        values within this pass (a rewrite of 20k Pads needs a handful of distinct Slice
        operands, not 160k initializers). Treat it as read-only."""
        array = np.asarray(values, dtype=dtype)
        key = (base, array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = gs.Constant(self.fresh_name(base), array)
        return self._constants[key]

    def fresh_name(self, base: str) -> str:
        """A tensor or node name not used anywhere in the graph yet."""
        if self._names is None:  # one O(N) scan per pass, not per call
            self._names = set()
            for g in [self.root, *self.root.subgraphs(recursive=True)]:
                self._names.update(g.tensors())
                self._names.update(n.name for n in g.nodes)
        return unused_name(base, self._names)


class Pass:
    """Base class of a graph rewrite. Subclasses set ``name``, ``summary``, ``exact``, declare
    options as ``Option`` attributes, and implement ``run`` (lossy ones also ``bound``)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    exact: ClassVar[bool]
    # Whether the pass may change the element types of graph inputs/outputs (fp16out,
    # preproc-fold). Names, count and rank of the interface never change (but for inputs a pass
    # binds to constants and lists in its adapter's ``removed_inputs``); the manager checks.
    changes_io_dtypes: ClassVar[bool] = False
    # Whether ``run`` always sets ``PassResult.modified``. Then the manager skips the structural
    # fingerprint before the pass (it costs a walk over the whole graph); a result that leaves
    # ``modified`` unset anyway counts as modified.
    reports_modified: ClassVar[bool] = False
    # Analyses that still describe the graph after any change this pass makes (MLIR's
    # markAnalysesPreserved): the manager keeps them cached instead of computing them afresh.
    # Declare only what holds for every run: each tensor keeps its type and shape, and any new
    # one is a constant (``PassResult.preserved`` says it for one run).
    preserves: ClassVar[tuple[type[Analysis], ...]] = ()
    options: ClassVar[dict[str, Option]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[str, Option] = {}
        for klass in reversed(cls.__mro__):
            found.update({k: v for k, v in vars(klass).items() if isinstance(v, Option)})
        cls.options = found

    def __init__(self, **values: Any):
        unknown = sorted(set(values) - set(self.options))
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise InputError(f"{self.name}: unknown option '{unknown[0]}' (valid options: {valid})")
        converted = {key: opt.default for key, opt in self.options.items()}
        for key, raw in values.items():
            converted[key] = self.options[key].convert(self.name, raw)
        self.__dict__["_option_values"] = converted

    def bound(self) -> Bound:
        """How far this pass may move the outputs. Exact passes keep ``EXACT``."""
        return EXACT

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    def needs_shapes(self, graph: gs.Graph) -> bool:
        """Whether ``run`` on ``graph`` reads types or shapes that only shape inference supplies
        (``tensor.shape``/``dtype`` the model does not declare). The pass manager lends a pass
        that says yes the ``Shapes`` analysis of the graph as it is (the original's too; computed
        when not cached), on the tensors that lack them, and takes them back after; a pass that
        says no sees only what the model declares and earlier passes set. A pass that reads
        ``ctx.shapes`` instead should say yes too: the analysis is then ready before it runs.
        Either way the result does not depend on whether verification was deferred. Say no
        only when the answer cannot change what the pass does."""
        return True

    def declare_io(self, model: onnx.ModelProto) -> IOAdapter | None:
        """How this pass, with its options, will change the interface of ``model`` (the run's
        original), as far as it is known before any pass runs: the inputs it binds and their
        values (``freeze-inputs``), the grid of the images it makes the model take
        (``preproc-fold``). None: nothing to declare (see ``IOAdapter``)."""
        return None

    def refuse(self, message: str) -> InputError:
        """An error for options that do not fit this graph (exit code 2, names the pass)."""
        return InputError(f"{self.name}: {message}")

    def option_values(self) -> dict[str, Any]:
        return dict(self.__dict__["_option_values"])

    def changed_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.option_values().items() if v != self.options[k].default}

    def __str__(self) -> str:
        return str(PassSpec.from_values(self.name, self.changed_options()))

    def __repr__(self) -> str:
        return f"<pass {self}>"


# --- node-local rewrite rules ---------------------------------------------------------------

@dataclass
class Match:
    """A node a rule will rewrite, with whatever the rewrite needs (``info``)."""

    node: gs.Node
    info: Any = None


@dataclass(frozen=True)
class NoMatch:
    """A candidate node the rule refuses, and why (reported as "why not")."""

    reason: str


class NodeRewritePass(Pass):
    """A pass made of one node-local rule: for every node whose op is in ``op_types``,
    ``match`` returns None (not a candidate), ``NoMatch(reason)`` or a ``Match``, and
    ``rewrite`` edits the graph for that match (returning an optional note for the user)."""

    op_types: ClassVar[tuple[str, ...]]
    nothing_found: ClassVar[str] = "no candidate node"
    reports_modified = True

    def match(self, node: gs.Node, ctx: PassContext) -> Match | NoMatch | None:
        raise NotImplementedError

    def rewrite(self, match: Match, ctx: PassContext) -> str | None:
        raise NotImplementedError

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        rewrites, reasons = 0, []
        for subgraph, node in nodes_with_graphs(graph):
            if node.op not in self.op_types:
                continue
            ctx.graph = subgraph  # new nodes go where the matched node lives (If/Loop bodies too)
            found = self.match(node, ctx)
            if found is None:
                continue
            if isinstance(found, NoMatch):
                reasons.append(f"{node.name or node.op}: {found.reason}")
                continue
            note = self.rewrite(found, ctx)
            if note:
                reasons.append(f"{node.name or node.op}: {note}")
            rewrites += 1
        ctx.graph = graph
        if not rewrites and not reasons:
            reasons.append(self.nothing_found)
        return PassResult(rewrites, reasons, modified=rewrites > 0)


def nodes_with_graphs(graph: gs.Graph) -> list[tuple[gs.Graph, gs.Node]]:
    """(graph, node) for every node, those of If/Loop/Scan bodies included (a snapshot)."""
    found = []
    for node in list(graph.nodes):
        found.append((graph, node))
        for value in node.attrs.values():
            if isinstance(value, gs.Graph):
                found.extend(nodes_with_graphs(value))
    return found
