"""Float16 as a float16 engine computes it, on the CPU.

ONNX Runtime's CPU provider has few float16 kernels: it wraps float16 ops in Casts to float32
and drops the Casts between them, so a float16 model run there neither rounds between ops nor
overflows (164,000 stays 164,000). A float16 engine (Ascend's cube units, TensorRT ``--fp16``)
stores every activation in float16. The simulator computes as such an engine does:

- every tensor that the model types float16 is rounded to float16 after the op that makes it
  (round to nearest even; past 65,504 it becomes inf, as ONNX's Cast defines);
- subnormals are kept (IEEE gradual underflow, as ONNX Runtime's Cast and TensorRT's tensor
  cores do; an engine that flushes them to zero differs by less than 6e-8 per value);
- each op computes in float32 on its float16-rounded inputs and weights: float32 accumulation
  inside Conv/MatMul as cube/tensor cores do it, one rounding per op for the rest.

It runs a float32 copy of the model in which the op that makes each float16 tensor is followed
by a ``Cast(float16) -> Cast(float32)`` pair, in ONNX Runtime with graph optimisations off
(ORT keeps such pairs even with them on: a float32 -> float16 -> float32 round trip is lossy,
tests/test_fp16sim.py checks that 70,000 becomes inf). Against ``onnx.reference`` run in
float16 it agrees exactly for Add/Sub/Mul/Div/Relu (float32 has enough bits that rounding twice
equals rounding once); its Conv accumulates in float16 and differs by a few float16 ulps.
Ops whose output a float16 input already makes float16-exact (Reshape, Concat, MaxPool, ...)
get no pair: rounding there changes nothing. Subgraphs (If, Loop) are not simulated.

A float32 model is simulated as the engine would compile it by ``as_float16`` (onnxruntime's
float16 converter, every op in float16 unless kept in float32 by type or by node name).
``bfloat16`` simulates an engine that computes in bfloat16 (OpenVINO on CPUs with native bf16):
the same, with each tensor rounded to bfloat16 instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..core.errors import InputError
from ..core.float16 import FLOAT, HALF
from ..core.services import TensorLoss

# Their output is float16-exact when their inputs are: a rounding pair after them is a no-op.
EXACT_OPS = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Concat",
                       "Gather", "Split", "Pad", "Relu", "MaxPool", "Expand", "Tile", "DepthToSpace",
                       "SpaceToDepth", "Cast"})
SUFFIX = "__fp16sim"
SIMULATED = "float16 simulated: every float16 tensor rounded to float16 after its op"


def has_float16(model: onnx.ModelProto) -> bool:
    """Whether the model computes or stores anything in float16 (weights, a Cast, its I/O)."""
    graph = model.graph
    return (any(t.data_type == HALF for t in graph.initializer)
            or any(v.type.tensor_type.elem_type == HALF for v in [*graph.input, *graph.output, *graph.value_info])
            or any(n.op_type == "Cast" and any(a.name == "to" and a.i == HALF for a in n.attribute)
                   for n in graph.node))


def simulable(model: onnx.ModelProto) -> bool:
    """Whether the checker runs ``model`` through the simulator: it has float16 and no If/Loop
    body (bodies are not simulated; such a model runs as ONNX Runtime computes it, and the
    verdict does not say "simulated")."""
    bodies = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                 for n in model.graph.node for a in n.attribute)
    return has_float16(model) and not bodies


@dataclass
class Simulation:
    """The float32 copy that computes as a float16 engine, and the float16 tensors it rounds
    (by their names in the model, which the copy keeps)."""

    model: onnx.ModelProto
    rounded: list[str]
    tensors: list[str]  # every float16 tensor a node makes, rounded or exact
    producers: dict[str, onnx.NodeProto]

    def exposing(self, names: Sequence[str]) -> onnx.ModelProto:
        """The copy with the rounded tensors ``names`` as extra outputs (their float32 value)."""
        exposed = onnx.ModelProto()
        exposed.CopyFrom(self.model)
        have = {o.name for o in exposed.graph.output}
        exposed.graph.output.extend(onnx.helper.make_tensor_value_info(n, FLOAT, None) for n in names if n not in have)
        return exposed


def simulate(model: onnx.ModelProto, rounding: str = "float16") -> Simulation:
    """The float32 copy of ``model`` (one with float16 tensors, e.g. ``as_float16``'s) that
    rounds each of them to ``rounding`` (float16, or bfloat16 for bf16 engines) after its op."""
    if rounding not in ("float16", "bfloat16"):
        raise InputError(f"unknown simulated precision '{rounding}': expected float16 or bfloat16")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # the checker's own exception types vary by onnx release
        raise InputError(f"cannot simulate float16: onnx cannot infer the model's types ({exc})") from None
    graph = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output, *graph.value_info]}
    types.update((t.name, t.data_type) for t in graph.initializer)
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    g = copy.graph
    del g.value_info[:]  # the types change; ORT infers them again
    for tensor in g.initializer:
        if tensor.data_type == HALF:  # float16 weights are float32-exact
            tensor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name))
    outputs = {o.name for o in g.output if o.type.tensor_type.elem_type == HALF}
    inputs = {i.name for i in g.input if i.type.tensor_type.elem_type == HALF}
    renamed = {n: n + SUFFIX for n in outputs | inputs}  # float32 inside, float16 at the interface
    for tensor in g.initializer:  # a weight that is also an output: the Cast below gives the output
        if tensor.name in renamed:
            tensor.name = renamed[tensor.name]
    nodes: list[onnx.NodeProto] = []
    for name in inputs:
        nodes.append(onnx.helper.make_node("Cast", [name], [renamed[name]], to=FLOAT, name=name + SUFFIX + "_in"))
    rounded, producers = [], {}
    round_to = {"float16": HALF, "bfloat16": TensorProto.BFLOAT16}[rounding]
    for node in g.node:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        _to_float32(new)
        new.input[:] = [renamed.get(n, n) for n in new.input]
        pairs = []
        for k, out in enumerate(node.output):
            if not out or types.get(out) != HALF:
                continue
            producers[out] = node
            final = renamed.get(out, out)
            if node.op_type in EXACT_OPS and rounding == "float16":
                new.output[k] = final
                continue
            rounded.append(out)
            raw, half = out + SUFFIX + "_f32", out + SUFFIX + "_h"
            new.output[k] = raw
            pairs += [onnx.helper.make_node("Cast", [raw], [half], to=round_to, name=half),
                      onnx.helper.make_node("Cast", [half], [final], to=FLOAT, name=final + "_back")]
        nodes += [new, *pairs]
    for name in outputs - inputs:  # an input that is also an output is given back as it came
        nodes.append(onnx.helper.make_node("Cast", [renamed[name]], [name], to=HALF, name=name + SUFFIX + "_out"))
    del g.node[:]
    g.node.extend(nodes)
    return Simulation(copy, rounded, list(producers), producers)


def _to_float32(node: onnx.NodeProto) -> None:
    """A node of the float16 model as its float32 copy computes it: casts to float16 become
    casts to float32 (the rounding pair after them does the rounding), float16 constants float32."""
    for attr in node.attribute:
        if attr.name in ("to", "dtype") and attr.type == onnx.AttributeProto.INT and attr.i == HALF:
            attr.i = FLOAT
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == HALF:
            attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name))


def run_simulated(model: onnx.ModelProto, feeds: Sequence[dict], rounding: str = "float16") -> list[dict]:
    """Outputs by name for each feed, computed as a float16 (or bfloat16) engine computes ``model``."""
    from .session import make_session, run_session

    return run_session(make_session(simulate(model, rounding).model), list(feeds))


def tensor_losses(reference: onnx.ModelProto, half: onnx.ModelProto, feeds: Sequence[dict],
                  rounding: str = "float16", chunk: int = 16) -> list[TensorLoss]:
    """Each float16 tensor of ``half`` (the float16 form of the float32 ``reference``) against
    its float32 value in ``reference``, in the model's order. Tensors are fetched ``chunk`` at a
    time (one run per chunk and feed) so a large model's activations need not all fit at once."""
    from .session import make_session

    sim = simulate(half, rounding)
    names = [n for n in sim.tensors if n in _value_names(reference)]
    ref_model = onnx.ModelProto()
    ref_model.CopyFrom(reference)
    have = {o.name for o in ref_model.graph.output}
    ref_model.graph.output.extend(onnx.helper.make_tensor_value_info(n, FLOAT, None) for n in names if n not in have)
    ref_sess, sim_sess = make_session(ref_model), make_session(sim.exposing(names))
    stats = {n: np.zeros(4) for n in names}  # dot, |ref|^2, |sim|^2, |sim - ref|^2
    peaks = dict.fromkeys(names, 0.0)
    for start in range(0, len(names), chunk):
        part = names[start:start + chunk]
        for feed in feeds:
            for name, r, s in zip(part, _run(ref_sess, feed, part), _run(sim_sess, feed, part)):
                r, s = np.asarray(r, np.float64).ravel(), np.asarray(s, np.float64).ravel()
                peaks[name] = max(peaks[name], float(np.abs(r).max()) if r.size else 0.0)
                with np.errstate(invalid="ignore", over="ignore"):
                    stats[name] += [r @ s, r @ r, s @ s, ((s - r) ** 2).sum()]
    losses = {}
    for name in names:
        dot, rr, ss, dd = stats[name]
        finite = np.isfinite(stats[name]).all()
        cos = float(dot / np.sqrt(rr * ss)) if finite and rr > 0 and ss > 0 else (1.0 if finite and rr == ss else 0.0)
        error = float(np.sqrt(dd / rr)) if finite and rr > 0 else (0.0 if finite and dd == 0 else float("inf"))
        node = sim.producers[name]
        losses[name] = TensorLoss(name, node.name, node.op_type, peaks[name], cos, error)
    for loss in losses.values():
        before = max((losses[i].error for i in _rounded_inputs(sim, loss.tensor) if i in losses), default=0.0)
        loss.added = (loss.error - before) if np.isfinite(loss.error) else (0.0 if before == float("inf") else 1.0)
    return list(losses.values())


def overflowing(model: onnx.ModelProto, feeds: Sequence[dict]) -> list[str]:
    """The float16 tensors of ``model`` where inf or NaN first appears in the simulation (their
    producer's inputs are finite): what overflowed."""
    from .session import make_session

    sim = simulate(model)
    session = make_session(sim.exposing(sim.rounded))
    bad: set[str] = set()
    for feed in feeds:
        for name, value in zip(sim.rounded, _run(session, feed, sim.rounded)):
            if not np.isfinite(np.asarray(value, np.float64)).all():
                bad.add(name)
    return [n for n in sim.rounded if n in bad and not any(i in bad for i in _rounded_inputs(sim, n))]


def _rounded_inputs(sim: Simulation, name: str) -> set[str]:
    """The rounded tensors that feed ``name``'s producer, looked for through the ops that need
    no rounding (a Relu between two Convs)."""
    rounded, found, todo, seen = set(sim.rounded), set(), list(sim.producers[name].input), set()
    while todo:
        tensor = todo.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        if tensor in rounded:
            found.add(tensor)
        elif tensor in sim.producers:
            todo.extend(sim.producers[tensor].input)
    return found


def _run(session, feed: dict, names: list[str]) -> list:
    from .session import run_feed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_feed(session, feed, names)


def _value_names(model: onnx.ModelProto) -> set[str]:
    return {o for n in model.graph.node for o in n.output}
