"""The rules targets are built from. Each is a class whose parameters are one compiler
release's facts (see the targets' modules for the releases and sources); a rule only reads
the model and yields findings, each with the pass that fixes it when there is one."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import onnx

from ..core.pipeline import PassSpec
from ..core.presets import FOLD
from .base import ERROR, WARNING, Finding, Rule
from .graph import LintGraph

FOLD_FIX = str(FOLD)  # the pass a finding names when folding fixes it


@dataclass
class Verdict:
    """What a target says about one attribute value: severity, why, and the fixing pass."""

    severity: str
    reason: str
    fix: str | None = None


class OpsetRange(Rule):
    """The default-domain opset must lie in [low, high]; up to ``soft_high`` only a warning
    (a later release of the same line documents more)."""

    id = "opset"

    def __init__(self, low: int, high: int, release: str, soft_high: int | None = None, above: str | None = None):
        """``above``: a model above ``high`` is only a warning, for this reason."""
        self.low, self.high, self.release, self.soft_high, self.above = low, high, release, soft_high, above
        self.summary = f"ONNX opset {low}-{high} ({release})"

    @property
    def preset_pass(self) -> str:
        """The opset pass that brings a model into the range this rule accepts without error (up
        to ``soft_high``; no upper bound when above ``high`` is only a warning); a no-op inside it."""
        high = None if self.above else self.soft_high or self.high
        return f"opset(min={self.low},max={high})" if high else f"opset(min={self.low})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        v = graph.opset
        if self.low <= v <= self.high:
            return
        fix = f"opset(version={min(max(v, self.low), self.high)})"
        if self.high < v <= (self.soft_high or 0):
            yield self.finding(WARNING, f"opset {v} is above {self.high}, the last documented by {self.release} "
                               f"(later releases accept up to {self.soft_high})", fix=fix)
        elif v > self.high and self.above:
            yield self.finding(WARNING, f"opset {v} is above {self.high} ({self.release}): {self.above}", fix=fix)
        else:
            yield self.finding(ERROR, f"opset {v} is outside {self.low}-{self.high} ({self.release})", fix=fix)


def read_op_list(filename: str) -> tuple[dict[str, int], set[str], str]:
    """A data file: ``Op [since-opset]`` per line for supported ops, ``!Op`` for ops the source
    marks unsupported, ``#`` comments: the first ones, up to ``Format:``, name the source."""
    supported: dict[str, int] = {}
    refused: set[str] = set()
    header: list[str] = []
    in_header = True
    for raw in resources.files(__package__).joinpath("data", filename).read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            text = line.lstrip("# ")
            in_header = in_header and not text.startswith("Format:")
            header += [text] if in_header else []
            continue
        if not line:
            continue
        if line.startswith("!"):
            refused.add(line[1:].strip())
            continue
        name, *since = line.split()
        supported[name] = int(since[0]) if since else 1
    return supported, refused, " ".join(header).removeprefix("Source: ")


class OperatorList(Rule):
    """Every node's operator is in the target's list at the model's opset. An operator the list
    marks unsupported is an error; one it does not mention is a warning (lists lag releases)."""

    id = "ops"

    def __init__(self, filename: str, release: str):
        self.supported, self.refused, self.source = read_op_list(filename)
        self.release = release
        origin = self.source.split(" (")[0].split(",")[0]
        self.summary = f"operators listed for {release} (targets/data/{filename}, from {origin})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        for node in graph.nodes:
            op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            since = self.supported.get(op)
            if op in self.refused:
                yield self.finding(ERROR, f"{op} is not supported by {self.release}", node)
            elif since is None:
                yield self.finding(WARNING, f"{op} is not in cgsurg's operator list for {self.release}: "
                                   "the compiler may refuse it", node)
            elif graph.opset < since:
                yield self.finding(ERROR, f"{op} is supported by {self.release} from opset {since}", node,
                                   fix=f"opset(version={since})")


class PadModes(Rule):
    """Pad: modes the target refuses or runs slowly, a non-zero constant value, axes it cannot pad."""

    id = "pad-mode"

    def __init__(self, modes: Mapping[str, Verdict], nonzero_value: Verdict | None = None,
                 last_two_axes_only: Verdict | None = None, release: str = ""):
        self.modes, self.nonzero_value, self.last_two = dict(modes), nonzero_value, last_two_axes_only
        bad = ", ".join(f"{m} ({v.severity})" for m, v in self.modes.items()) or "none"
        self.summary = f"Pad modes flagged: {bad}" + ("; constant value must be 0" if nonzero_value else "") + (
            "; only the last two axes" if last_two_axes_only else "") + (f" ({release})" if release else "")

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        for node in graph.nodes:
            if node.op_type != "Pad":
                continue
            mode = graph.attr(node, "mode", "constant")
            verdict = self.modes.get(mode)
            if verdict is not None:
                yield self.finding(verdict.severity, f"{mode} Pad: {verdict.reason}", node, verdict.fix)
            if mode == "constant" and self.nonzero_value is not None:
                value = graph.attr(node, "value") if graph.opset < 11 else graph.const(graph.input(node, 2))
                if value is not None and np.any(np.asarray(value, dtype=np.float64) != 0):
                    v = self.nonzero_value
                    yield self.finding(v.severity, f"constant Pad with value {float(np.asarray(value).ravel()[0]):g}: "
                                       f"{v.reason}", node, v.fix)
            pads = _pads(graph, node)
            if self.last_two is not None and pads is not None:
                rank = len(pads) // 2
                if any(pads[i] or pads[i + rank] for i in range(max(rank - 2, 0))):
                    yield self.finding(self.last_two.severity, f"Pad on an axis before the last two: "
                                       f"{self.last_two.reason}", node, self.last_two.fix)


def _pads(graph: LintGraph, node: onnx.NodeProto) -> list[int] | None:
    """Pad's [begins..., ends...] over all axes, or None when not constant."""
    if graph.opset < 11:
        pads = graph.attr(node, "pads")
        return list(pads) if pads is not None else None
    value = graph.const(graph.input(node, 1))
    if value is None:
        return None
    pads = [int(p) for p in value.ravel()]
    axes_name = graph.input(node, 3)
    if axes_name is None:
        return pads
    axes, shape = graph.const(axes_name), graph.shapes.get(node.input[0])
    if axes is None or shape is None:
        return None
    rank, full = len(shape), [0] * (2 * len(shape))
    for i, axis in enumerate(int(a) % rank for a in axes.ravel()):
        full[axis], full[axis + rank] = pads[i], pads[i + axes.size]
    return full


class ReflectPadSize(Rule):
    """A reflect Pad needs pad <= axis size - 1: wider is invalid ONNX, and ONNX Runtime returned
    zeros or garbage for it (onnxruntime issues 8265, 16401, 23878) until a 2026 fix made it
    refuse. Every target treats it as an error."""

    id = "reflect-pad-size"
    summary = "reflect Pad narrower than its axis (wider is invalid ONNX; ORT returned garbage)"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        for node in graph.nodes:
            if node.op_type != "Pad" or graph.attr(node, "mode", "constant") != "reflect":
                continue
            pads = _pads(graph, node)
            if pads is None:
                continue
            rank = len(pads) // 2
            for axis in range(rank):
                size = graph.static_size(node.input[0], axis)
                widest = max(pads[axis], pads[axis + rank])
                if size is not None and widest >= size:
                    yield self.finding(ERROR, f"reflect pad {widest} on axis {axis} of size {size} is invalid ONNX "
                                       f"(at most {size - 1}); ONNX Runtime computes garbage for it", node)
                    break


class ConstantOperands(Rule):
    """Operands the compiler must see as constants (fold the exporter's subgraphs first)."""

    id = "constant-operands"

    def __init__(self, operands: Mapping[str, Sequence[tuple[int, str]]], severity: str, release: str):
        self.operands, self.severity = dict(operands), severity
        listed = "; ".join(f"{op} {', '.join(n for _, n in items)}" for op, items in self.operands.items())
        self.summary = f"constant operands: {listed} ({release})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        for node in graph.nodes:
            for index, label in self.operands.get(node.op_type, ()):
                name = graph.input(node, index)
                if name is not None and not graph.is_constant(name):
                    yield self.finding(self.severity, f"{node.op_type} {label} are computed in the graph, "
                                       "not constants", node, FOLD_FIX)


@dataclass
class ResizeFacts:
    """What one release accepts in Resize/Upsample; a value missing from a mapping is accepted."""

    release: str
    modes: dict[str, Verdict] = field(default_factory=dict)
    coordinate_modes: dict[str, Verdict] = field(default_factory=dict)
    nearest_modes: dict[str, Verdict] = field(default_factory=dict)
    antialias: Verdict | None = None
    axes: Verdict | None = None
    aspect_policy: Verdict | None = None  # keep_aspect_ratio_policy other than stretch
    five_d: Verdict | None = None  # 5-D input other than linear with align_corners/pytorch_half_pixel


class ResizeAttributes(Rule):
    id = "resize"

    def __init__(self, facts: ResizeFacts):
        self.facts = facts
        flagged = [*facts.modes, *facts.coordinate_modes, *facts.nearest_modes]
        self.summary = f"Resize modes ({', '.join(flagged) or 'all accepted'}) and attributes ({facts.release})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        f = self.facts
        for node in graph.nodes:
            if node.op_type not in ("Resize", "Upsample"):
                continue
            mode = graph.attr(node, "mode", "nearest")
            coord = graph.attr(node, "coordinate_transformation_mode", "half_pixel" if node.op_type == "Resize"
                               and graph.opset >= 11 else "asymmetric")
            # Upsample and Resize-10 have no nearest_mode: they round down
            nearest = graph.attr(node, "nearest_mode", "round_prefer_floor" if node.op_type == "Resize"
                                 and graph.opset >= 11 else "floor")
            checks: list[tuple[Verdict | None, str]] = [
                (f.modes.get(mode), f"mode {mode}"),
                (f.coordinate_modes.get(coord), f"coordinate_transformation_mode {coord}"),
                (f.nearest_modes.get(nearest) if mode == "nearest" else None, f"nearest_mode {nearest}"),
                (f.antialias if graph.attr(node, "antialias", 0) else None, "antialias"),
                (f.axes if graph.attr(node, "axes") is not None else None, "axes"),
                (f.aspect_policy if graph.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch" else None,
                 f"keep_aspect_ratio_policy {graph.attr(node, 'keep_aspect_ratio_policy')}"),
            ]
            shape = graph.shapes.get(node.input[0])
            if shape is not None and len(shape) == 5 and not (
                    mode == "linear" and coord in ("align_corners", "pytorch_half_pixel")):
                checks.append((f.five_d, "5-D input"))
            for verdict, what in checks:
                if verdict is not None:
                    yield self.finding(verdict.severity, f"{node.op_type} {what}: {verdict.reason}", node, verdict.fix)


@dataclass
class ConvTransposeFacts:
    release: str
    kernel_shape_required: Verdict | None = None
    same_auto_pad: Verdict | None = None
    dilation: Verdict | None = None
    spatial_ranks: tuple[int, ...] = (2,)
    other_rank: Verdict | None = None  # spatial rank not in spatial_ranks
    weights_not_constant: Verdict | None = None


class ConvTransposeAttributes(Rule):
    id = "conv-transpose"

    def __init__(self, facts: ConvTransposeFacts):
        self.facts = facts
        self.summary = f"ConvTranspose kernel_shape, auto_pad, dilation, rank ({facts.release})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        f = self.facts
        for node in graph.nodes:
            if node.op_type != "ConvTranspose":
                continue
            weight = graph.shapes.get(node.input[1])
            spatial = len(weight) - 2 if weight else None
            checks: list[tuple[Verdict | None, bool, str]] = [
                (f.kernel_shape_required, graph.attr(node, "kernel_shape") is None, "no kernel_shape attribute"),
                (f.same_auto_pad, str(graph.attr(node, "auto_pad", "NOTSET")).startswith("SAME"),
                 f"auto_pad {graph.attr(node, 'auto_pad')}"),
                (f.dilation, any(d != 1 for d in graph.attr(node, "dilations", []) or []),
                 f"dilations {graph.attr(node, 'dilations')}"),
                (f.other_rank, spatial is not None and spatial not in f.spatial_ranks, f"{spatial}-D"),
                (f.weights_not_constant, not graph.is_constant(node.input[1]), "weights are not an initializer"),
            ]
            for verdict, fires, what in checks:
                if verdict is not None and fires:
                    yield self.finding(verdict.severity, f"ConvTranspose {what}: {verdict.reason}", node, verdict.fix)


def static_shape_spec(shapes: Mapping[str, Sequence]) -> str:
    """``static-shape(shapes=...)`` for ``{name: dims}`` (``--input-shape`` as a pass), printed as
    the pipeline grammar reads it back; a dim that is no positive int is ``?`` (kept as declared)."""
    tokens: list[str] = []
    for name, dims in shapes.items():
        sizes = [str(d) if isinstance(d, int) and d > 0 else "?" for d in dims]
        tokens += [f"{name}:{sizes[0]}", *sizes[1:]]
    return str(PassSpec("static-shape", (("shapes", tuple(tokens)),)))


def shape_template(name: str, dims: Sequence, batch: str = "1") -> str:
    """``x:1,3,H,W``: how to give an input's shape, its dynamic axes named (H, W for the last
    two of an NCHW image, else D<axis>), a dynamic batch as ``batch``."""
    names = {len(dims) - 2: "H", len(dims) - 1: "W"} if len(dims) == 4 else {}
    sizes = [str(d) if isinstance(d, int) and d > 0 else batch if axis == 0 else names.get(axis, f"D{axis}")
             for axis, d in enumerate(dims)]
    return f"{name}:{','.join(sizes)}"


class DynamicInputDims(Rule):
    """Graph inputs with a dynamic dimension other than the batch (dimension 0); the fix is
    ``static-shape`` (``--input-shape`` on ``apply --target`` and ``lint``)."""

    id = "dynamic-dims"

    def __init__(self, severity: str, reason: str):
        self.severity, self.reason = severity, reason
        self.summary = f"input dimensions other than the batch are static ({reason})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        for inp in graph.inputs:
            dims = graph.shapes.get(inp.name)
            if dims is None:
                yield self.finding(self.severity, f"input '{inp.name}' has no shape: {self.reason}")
                continue
            dynamic = [i for i, d in enumerate(dims) if i > 0 and not (isinstance(d, int) and d > 0)]
            if dynamic:
                given = shape_template(inp.name, dims)
                # The fix keeps a dynamic batch (?): these compilers take one (ATC's --dynamic_batch_size).
                fix = f"static-shape(shapes={shape_template(inp.name, dims, batch='?')})"
                yield self.finding(self.severity, f"input '{inp.name}' has dynamic axes {dynamic} "
                                   f"(shape {_fmt(dims, graph.batch_symbols)}): {self.reason}; give them with "
                                   f"--input-shape {given}", fix=fix)


class SymbolicShapes(Rule):
    """Tensors inside the graph whose shape shape inference cannot make static (beyond the
    input's batch): computed shapes the compiler would have to evaluate at run time. Reported
    where they start (a node whose data inputs are static), not at every tensor downstream."""

    id = "symbolic-shapes"

    def __init__(self, severity: str, reason: str):
        self.severity, self.reason = severity, reason
        self.summary = f"static shapes inside the graph, batch aside ({reason})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        dynamic = [n for n in graph.nodes if n.op_type != "Constant" and n.output and not graph.is_static(n.output[0])]
        for node in dynamic:
            data = [i for i in node.input if i and not graph.is_constant(i)]
            if all(graph.is_static(i) for i in data):
                dims = graph.shapes.get(node.output[0])
                shape = "of unknown rank" if dims is None else _fmt(dims, graph.batch_symbols)
                yield self.finding(self.severity, f"output shape {shape} ({len(dynamic)} tensors not static in all): "
                                   f"{self.reason}", node, FOLD_FIX)


class DataTypes(Rule):
    """Tensor types the target lacks: float64 anywhere, int64 at the graph's inputs and outputs."""

    id = "dtypes"

    def __init__(self, release: str, float64: Verdict | None = None, int64_io: Verdict | None = None):
        self.float64, self.int64_io = float64, int64_io
        flagged = [n for n, v in (("float64", float64), ("int64 I/O", int64_io)) if v]
        self.summary = f"data types ({', '.join(flagged) or 'none flagged'}; {release})"

    def check(self, graph: LintGraph) -> Iterator[Finding]:
        if self.int64_io is not None:
            for info in [*graph.inputs, *graph.outputs]:
                if graph.dtypes.get(info.name) == onnx.TensorProto.INT64:
                    v = self.int64_io
                    yield self.finding(v.severity, f"graph I/O '{info.name}' is int64: {v.reason}", fix=v.fix)
        if self.float64 is not None:
            producers = {out: node for node in graph.nodes for out in node.output}
            for name, dtype in graph.dtypes.items():
                if dtype == onnx.TensorProto.DOUBLE:
                    node = producers.get(name)
                    v = self.float64
                    yield self.finding(v.severity, f"tensor '{name}' is float64: {v.reason}", node, v.fix)


def _fmt(dims: Sequence, symbols: set | frozenset = frozenset()) -> str:
    """``[batch,3,?,?]``: sizes, the batch's symbol, ``?`` for anything else unknown."""
    return "[" + ",".join(str(d) if isinstance(d, int) or d in symbols else "?" for d in dims) + "]"
