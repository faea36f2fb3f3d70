"""static-shape: fix the axes of graph inputs to given sizes and propagate them. Exact.

A detector exported with dynamic height and width (``x[N,3,H,W]``) cannot go to a compiler
that wants every axis but the batch fixed (ATC, cgsurg's trtexec command), and its ``Shape``
chains stay in the graph. ``shapes=x:1,3,640,640`` (several inputs: ``shapes=[x:1,3,640,640,
y:1,4]``, a token with ``:`` starts the next input; trtexec's ``x:1x3x640x640`` reads the
same; ``?`` keeps an axis as declared: ``x:?,3,640,640`` fixes H and W only) declares those
sizes, then alternates strict shape inference (with data propagation, so the values of
``Shape``/``Gather``/``Concat`` chains reach the ``Reshape`` and ``Resize`` they feed) and
``fold-constants`` until nothing more folds: the chains the fixed sizes make constant become
initializers, and the outputs get the shapes inference derives (what inference cannot derive
keeps its declared shape).

Exact: the model computes the same values at the fixed shape (folding evaluates the chains with
ONNX Runtime); it only refuses other shapes. Refused (exit 2): a name that is no graph input,
an item of the wrong rank, a static axis given another size, and sizes the graph cannot take
(strict inference finds a conflict, e.g. a height that does not divide by the network's stride).
"""

from __future__ import annotations

import re

import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Option, Pass, PassContext, PassResult, register_pass
from graphsurgeon_cg.core.modelio import weightless

from .fold_constants import FoldConstants

_DIMS = re.compile(r"(\d+|\?)([x,](\d+|\?))*")
MAX_ROUNDS = 8  # each round folds one more link of a Shape -> Reshape -> Shape chain; real ones need 2 or 3


def shape_items(items: tuple) -> list[str]:
    """The option's tokens grouped per input: ``('x:1', '3', '64', '64')`` (how the pipeline
    reads ``x:1,3,64,64``) -> ``['x:1,3,64,64']``. A token with ``:`` starts an input."""
    groups: list[str] = []
    for item in items:
        if ":" in item or not groups:
            groups.append(item)
        else:
            groups[-1] += "," + item
    return groups


def parse_shape_item(item: str) -> tuple[str, list[int | None]] | None:
    """``NAME:D1,D2,...`` (or ``NAME:D1xD2x...``) -> (NAME, sizes, None for ``?``), or None when
    it is not that form. NAME is what precedes the last ``:`` (input names may contain ``:``)."""
    name, sep, dims = item.rpartition(":")
    if not sep or not name or not _DIMS.fullmatch(dims):
        return None
    sizes = [None if d == "?" else int(d) for d in re.split("[x,]", dims)]
    if any(d == 0 for d in sizes):
        return None
    return name, sizes


def _syntax(items: tuple) -> str | None:
    groups = shape_items(items)
    for item in groups:
        if parse_shape_item(item) is None:
            return f"takes NAME:D1,D2,... items (positive sizes, ? to keep an axis), got {item!r}"
    names = [parse_shape_item(i)[0] for i in groups]  # type: ignore[index]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    return f"names input '{duplicate}' twice" if duplicate else None


def _text(dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


@register_pass
class StaticShape(Pass):
    name = "static-shape"
    summary = "Fix input axes to given sizes (x:1,3,640,640), infer shapes, fold what they make constant (exact)"
    exact = True
    reports_modified = True
    shapes = Option(tuple, (), "NAME:D1,D2,... per input (a list for several), ? keeps an axis as declared",
                    check=_syntax)

    def needs_shapes(self, graph: gs.Graph) -> bool:
        return False  # it infers shapes itself, from the sizes it sets

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        if not self.shapes:
            raise self.refuse("give shapes=NAME:D1,D2,... (e.g. shapes=x:1,3,640,640)")
        inputs = {t.name: t for t in graph.inputs if isinstance(t, gs.Variable)}
        fixed, reasons = [], []
        for item in shape_items(self.shapes):
            name, sizes = parse_shape_item(item)  # type: ignore[misc]
            if name not in inputs:
                raise self.refuse(f"no graph input named '{name}' (inputs: {', '.join(inputs) or 'none'})")
            tensor = inputs[name]
            declared = tensor.shape
            if declared is not None and len(declared) != len(sizes):
                raise self.refuse(f"input '{name}' has {len(declared)} axes {_text(declared)}; "
                                  f"'{item}' gives {len(sizes)}")
            new = []
            for axis, size in enumerate(sizes):
                old = declared[axis] if declared is not None else None
                if size is None:
                    if declared is None:
                        raise self.refuse(f"input '{name}' declares no shape: '?' cannot keep axis {axis}")
                    new.append(old)
                elif isinstance(old, int) and old > 0 and old != size:
                    raise self.refuse(f"input '{name}' has axis {axis} fixed at {old}; '{item}' gives {size}")
                else:
                    new.append(size)
            if declared is not None and list(declared) == new:
                reasons.append(f"input '{name}' already has shape {_text(new)}")
                continue
            tensor.shape = new
            fixed.append(name)
        if not fixed:
            return PassResult(0, reasons, modified=False)
        folded = self._propagate(graph, ctx)
        if folded:
            reasons.append(f"folded {folded} constant node(s) into initializers")
        return PassResult(len(fixed), reasons, modified=True)

    def _propagate(self, graph: gs.Graph, ctx: PassContext) -> int:
        """Infer and fold until no node folds; the number of nodes folded."""
        folded = 0
        fold = FoldConstants()
        for _ in range(MAX_ROUNDS):
            self._infer(graph)
            result = fold.run(graph, ctx)
            folded += result.rewrites
            if not result.rewrites:
                break
        return folded

    def _infer(self, graph: gs.Graph) -> None:
        """Give every tensor the type and shape strict inference derives from the graph as it is.
        Inference merges them with the declared ones: a size it derives replaces a symbol."""
        try:
            model = gs.export_onnx(graph)
            inferred = onnx.shape_inference.infer_shapes(weightless(model), check_type=True, strict_mode=True,
                                                         data_prop=True)
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            raise self.refuse(f"the graph does not take shapes {' '.join(shape_items(self.shapes))}: "
                              f"{lines[0] if lines else type(exc).__name__}") from None
        tensors = graph.tensors()
        for info in [*inferred.graph.value_info, *inferred.graph.output]:
            tensor = tensors.get(info.name)
            if not isinstance(tensor, gs.Variable) or not info.type.HasField("tensor_type"):
                continue
            typed = info.type.tensor_type
            if tensor.dtype is None and typed.elem_type:
                tensor.dtype = onnx.helper.tensor_dtype_to_np_dtype(typed.elem_type)
            if typed.HasField("shape"):
                # Symbols inference makes up (unk__N) are renumbered by every run: not declared.
                tensor.shape = [d.dim_value if d.HasField("dim_value") else
                                None if d.dim_param.startswith("unk__") else (d.dim_param or None)
                                for d in typed.shape.dim]
