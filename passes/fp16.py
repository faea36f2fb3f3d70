"""fp16: the whole model in float16, inputs and outputs kept float32. Lossy.

For GPU and NPU targets, where fp16 halves memory traffic and runs on fast units. On ORT CPU
it is slower, not faster: Conv and InstanceNormalization have float32 kernels only, so ORT
wraps fp16 nodes in Casts (use fp16out for the output-bytes saving instead). Converted with
onnxruntime's maintained float16 converter; operators that break or lose accuracy in fp16 on
some runtimes stay float32 (``block``: Resize, Upsample, InstanceNormalization by default).
An output that is also a graph input is set aside while converting (the converter would give
its name a second producer) and put back unchanged: it is the float32 input itself.
Declared bound: ``min_cos`` (default 0.99), checked on the float16 simulation (a float16
engine rounds every tensor: an activation past 65,504 becomes inf).

``keep=[node,...]`` leaves those nodes in float32 (a run of kept nodes stays float32 between
them). ``auto=true`` finds the mix on calibration samples (``data=INFO`` or the run's data),
through the run's float16 simulator: when the whole model in float16 misses ``min_cos``, it
keeps in float32 first every node that makes or reads a tensor past 65,504 (they overflow),
then the nodes that add the most float16 error, the fewest that meet ``min_cos`` (the nodes
ranked by the error each adds, then the shortest head of that ranking that meets the bar,
found by doubling and bisection: a few simulations, not one per node).
"""

from __future__ import annotations

import warnings

import onnx
import onnx_graphsurgeon as gs

from graphsurgeon_cg import Bound, Option, Pass, PassContext, PassResult, at_least, cosine, cosine_bound, register_pass
from graphsurgeon_cg.core.float16 import as_float16
from graphsurgeon_cg.core.graphutil import export_without_aliased_outputs, restore_aliased_outputs
from graphsurgeon_cg.core.services import PassServices


@register_pass
class Fp16(Pass):
    name = "fp16"
    summary = "Whole model in float16 with float32 inputs/outputs (GPU targets; slower on ORT CPU)"
    exact = False
    reports_modified = True
    block = Option(tuple, ("Resize", "Upsample", "InstanceNormalization"), "operator types kept in float32")
    keep = Option(tuple, (), "names of nodes kept in float32")
    auto = Option(bool, False, "keep in float32 the fewest nodes that meet min_cos on calibration samples")
    data = Option(str, "", "info file of calibration samples for auto (default: the run's data)")
    samples = Option(int, 8, "calibration samples taken from the info file", check=at_least(1))
    min_cos = Option(float, 0.99, "cosine the numeric check requires", check=cosine())

    def needs_shapes(self, graph: gs.Graph) -> bool:
        return False  # the conversion retypes the model: float32 types lent from before it would go stale

    def bound(self) -> Bound:
        return cosine_bound(self.min_cos)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        import numpy as np

        constants = [t for t in graph.tensors().values() if isinstance(t, gs.Constant)]
        if any(t.dtype == np.float16 for t in constants):
            return PassResult(0, ["the model already has float16 weights"], modified=False)
        if not any(t.dtype == np.float32 for t in constants):
            return PassResult(0, ["no float32 weights to convert"], modified=False)
        if all(any(o is i for i in graph.inputs) for o in graph.outputs):
            return PassResult(0, ["every output is a graph input: nothing is computed"], modified=False)
        names = {n.name for n in graph.nodes if n.name}
        unknown = [n for n in self.keep if n not in names]
        if unknown:
            raise self.refuse(f"keep names no node: {', '.join(unknown)}")
        for node in graph.nodes if self.keep or self.auto else []:  # the converter keeps nodes by name
            node.name = node.name or ctx.fresh_name(node.op.lower())
        source, aliased = export_without_aliased_outputs(graph)  # else they would get a second producer
        keep, reasons = list(self.keep), list[str]()
        if self.auto:
            info = self.data or ctx.data
            if not info:
                raise self.refuse("auto needs calibration images: fp16(auto=true,data=INFO), or data for the whole "
                                  "run (on the command line apply --data INFO)")
            from .int8 import _Calibration

            services = ctx.need_services(self)
            feeds = _Calibration(info, services.samples(info, self.samples), source, self, ctx.defaults).feeds
            keep, reasons = _Sensitivity(self, source, feeds, services).search(keep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = as_float16(source, self.block, keep)
        converted = gs.import_onnx(model)
        restore_aliased_outputs(converted, aliased)
        rewrites = sum(1 for t in converted.tensors().values() if isinstance(t, gs.Constant) and t.dtype == np.float16)
        if keep:
            reasons.append(f"kept in float32: {', '.join(keep)}")
        return PassResult(rewrites, reasons, graph=converted)


class _Sensitivity:
    """``auto``: the fewest nodes to keep in float32 so that the float16 simulation meets
    ``min_cos`` (the vendor metric against the float32 model, on the calibration samples)."""

    def __init__(self, owner: Fp16, model: onnx.ModelProto, feeds: list, services: PassServices):
        self.owner, self.model, self.feeds, self.services = owner, model, feeds, services
        self.reference = [out[0] for out in services.run(model, feeds)]

    def score(self, keep: list[str]) -> float:
        outputs = self.services.simulate_fp16(as_float16(self.model, self.owner.block, keep), self.feeds)
        return self.services.judged_cos(self.reference, [out[0] for out in outputs])

    def search(self, keep: list[str]) -> tuple[list[str], list[str]]:
        bar = self.owner.min_cos
        current = self.score(keep)
        steps = [f"auto: {current:.4f} on calibration in float16 (simulated) with {len(keep)} node(s) kept"]
        if current >= bar:
            return keep, steps
        losses = self.services.fp16_losses(self.model, as_float16(self.model, self.owner.block, keep), self.feeds)
        readers: dict[str, list[str]] = {}
        for node in self.model.graph.node:
            for name in node.input:
                readers.setdefault(name, []).append(node.name)
        over = [t for t in losses if t.overflow]
        if over:  # the nodes that make or read a value past 65,504: no float16 op can hold it
            region = list(dict.fromkeys(n for t in over for n in [t.node, *readers.get(t.tensor, [])] if n))
            keep = list(dict.fromkeys(keep + region))
            current = self.score(keep)
            peaks = ", ".join(f"'{t.tensor}' {t.peak:,.0f}" for t in over)
            steps.append(f"auto: + {', '.join(region)} (overflow: {peaks} past float16's 65,504) "
                         f"-> {current:.4f}")
            if current >= bar:
                return keep, steps
        ranked = [t.node for t in sorted(losses, key=lambda t: -t.added) if t.added > 0 and t.node not in keep]
        ranked = list(dict.fromkeys(ranked))
        tried: dict[int, float] = {}

        def head(k: int) -> float:
            if k not in tried:
                tried[k] = self.score(keep + ranked[:k])
            return tried[k]

        low, k = 0, 1  # doubling to a head that meets the bar, then bisection below it
        while k < len(ranked) and head(k) < bar:
            low, k = k, 2 * k
        k = min(k, len(ranked))
        if not ranked or head(k) < bar:
            best = head(len(ranked)) if ranked else current
            steps.append(f"auto: no mix reached min_cos {bar} on calibration (best {best:.4f}, "
                         f"{len(keep) + len(ranked)} node(s) kept)")
            return keep + ranked, steps
        while k - low > 1:
            mid = (low + k) // 2
            low, k = (low, mid) if head(mid) >= bar else (mid, k)
        steps.append(f"auto: + {', '.join(ranked[:k])} (the most float16 error added) -> {head(k):.4f}")
        return keep + ranked[:k], steps
