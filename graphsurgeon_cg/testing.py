"""Testing helpers for pass authors (cgsurg's own tests use them too).

- ``model_from_text``: a small model from ONNX text (``onnx.parser``), checked.
- ``run_pass``: apply a pipeline without the numeric check; returns the model and the last record.
- ``assert_numerically_equal``: run two models on the same seeded inputs in ONNX Runtime (graph
  optimisations off) and in ``onnx.reference`` and compare within ``atol``/``rtol``; the
  message states the max difference, i.e. the tolerance that would have passed.
- ``assert_graph_equal``: structural golden comparison (FileCheck in spirit): ops, wiring,
  attributes, initializer values, interface; node and internal tensor names are ignored.
- ``check_pass_contract``: what every pass owes its users, checked on a model where it fires.

    from graphsurgeon_cg.testing import check_pass_contract, model_from_text
    check_pass_contract("my-pass", model_from_text(MY_GRAPH))
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .check.checker import CheckSettings, NumericChecker
from .check.feeds import random_feeds
from .check.session import make_session, run_session
from .core.base import Pass
from .core.bounds import EXACT, Bound
from .core.manager import PassManager
from .core.pipeline import PassSpec
from .core.records import PassRecord
from .core.registry import build_pipeline
from .services import OrtServices

__all__ = ["model_from_text", "run_pass", "random_inputs", "assert_numerically_equal", "canonical_graph",
           "assert_graph_equal", "check_pass_contract"]


def model_from_text(text: str) -> onnx.ModelProto:
    """Parse ONNX text (``<ir_version: 8, opset_import: ["" : 13]> g (float[1,3,8,8] x) => ...``)
    and run the full checker on it."""
    model = onnx.parser.parse_model(text)
    onnx.checker.check_model(model, full_check=True)
    return model


def run_pass(model: onnx.ModelProto, pipeline: str | Sequence[PassSpec | Pass],
             data: str | None = None) -> tuple[onnx.ModelProto, PassRecord]:
    """Apply ``pipeline`` without the numeric check (the test checks numbers itself)."""
    result = PassManager(pipeline, data=data, services=OrtServices()).run(model)
    return result.model, result.records[-1]


def random_inputs(model: onnx.ModelProto, seed: int = 0, samples: int = 1,
                  shapes: Mapping[str, Sequence[int]] | None = None) -> list[dict]:
    return random_feeds(make_session(model), shapes, seed, samples)


def assert_numerically_equal(expected: onnx.ModelProto, actual: onnx.ModelProto, feeds: list[dict] | None = None,
                             atol: float = 0.0, rtol: float = 0.0, reference: bool = True) -> None:
    """Both models agree on ``feeds`` (default: seeded random) within ``|a - e| <= atol + rtol*|e|``,
    in ONNX Runtime and, with ``reference``, in ``onnx.reference.ReferenceEvaluator`` too."""
    feeds = feeds if feeds is not None else random_inputs(expected)
    runners = [("onnxruntime", lambda m, f: run_session(make_session(m), [f])[0])]
    if reference:
        from onnx.reference import ReferenceEvaluator

        def evaluate(model: onnx.ModelProto, feed: dict) -> dict:
            names = [o.name for o in model.graph.output]
            return dict(zip(names, ReferenceEvaluator(model).run(None, feed)))

        runners.append(("onnx.reference", evaluate))
    for runtime, run in runners:
        for feed in feeds:
            want, got = run(expected, feed), run(actual, feed)
            assert list(want) == list(got), f"{runtime}: outputs {list(want)} vs {list(got)}"
            for name in want:
                e = np.asarray(want[name], np.float64)
                a = np.asarray(got[name], np.float64)
                assert e.shape == a.shape, f"{runtime}: output '{name}' shape {e.shape} vs {a.shape}"
                diff = np.abs(a - e)
                ok = np.all(diff <= atol + rtol * np.abs(e)) and np.array_equal(np.isnan(a), np.isnan(e))
                assert ok, (f"{runtime}: output '{name}' differs by up to {np.nanmax(diff):.3g} "
                            f"(atol {atol:g}, rtol {rtol:g}; atol={np.nanmax(diff):.3g} would pass)")


# --- structural comparison ------------------------------------------------------------------

def canonical_graph(model: onnx.ModelProto, values: bool = True) -> str:
    """The model's main graph as text with node names dropped and internal tensors renamed in
    order of first appearance (inputs and outputs keep their names: they are the interface)."""
    g = model.graph
    names: dict[str, str] = {"": ""}
    for v in list(g.input) + list(g.output):
        names[v.name] = v.name
    inits = {t.name: t for t in g.initializer}

    def name(tensor: str) -> str:
        if tensor not in names:
            names[tensor] = f"{'c' if tensor in inits else 't'}{len(names)}"
        return names[tensor]

    def tensor_text(t: onnx.TensorProto) -> str:
        arr = numpy_helper.to_array(t)
        text = f"{arr.dtype}{list(arr.shape)}"
        if values:
            text += " = " + np.array2string(arr.ravel(), precision=6, threshold=64, separator=",").replace("\n", "")
        return text

    def value_info(v: onnx.ValueInfoProto) -> str:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        return f"{v.name}: {onnx.TensorProto.DataType.Name(tt.elem_type)}{dims if tt.HasField('shape') else ''}"

    def attr_text(a: onnx.AttributeProto) -> str:
        value = helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            return f"{a.name}={tensor_text(value)}"
        if isinstance(value, bytes):
            return f"{a.name}={value.decode()}"
        if isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        return f"{a.name}={value}"

    opsets = ",".join(f"{o.domain or 'ai.onnx'}:{o.version}"
                      for o in sorted(model.opset_import, key=lambda o: o.domain))
    lines = [f"opset {opsets}", "inputs " + ", ".join(value_info(v) for v in g.input if v.name not in inits)]
    for node in g.node:
        attrs = ", ".join(attr_text(a) for a in sorted(node.attribute, key=lambda a: a.name))
        ins = ", ".join(name(i) for i in node.input)
        outs = ", ".join(name(o) for o in node.output)
        domain = f"{node.domain}." if node.domain else ""
        lines.append(f"{outs} = {domain}{node.op_type}({ins})" + (f" {{{attrs}}}" if attrs else ""))
    for tensor_name, canonical in names.items():
        if tensor_name in inits:
            lines.append(f"{canonical} := {tensor_text(inits[tensor_name])}")
    lines.append("outputs " + ", ".join(value_info(v) for v in g.output))
    return "\n".join(lines)


def assert_graph_equal(actual: onnx.ModelProto, expected: onnx.ModelProto | str, values: bool = True) -> None:
    """``actual`` has the structure of ``expected`` (a model or ONNX text); the message shows
    both canonical forms. ``values=False`` ignores initializer values (e.g. calibrated scales)."""
    if isinstance(expected, str):
        expected = onnx.parser.parse_model(expected)
    got, want = canonical_graph(actual, values), canonical_graph(expected, values)
    assert got == want, f"graphs differ\n--- expected\n{want}\n--- actual\n{got}"


# --- the pass contract ------------------------------------------------------------------------

def check_pass_contract(p: str | PassSpec | Pass, model: onnx.ModelProto, data: str | None = None,
                        shapes: Mapping[str, Sequence[int]] | None = None) -> PassRecord:
    """Check what every pass owes its users, on ``model`` (one where the pass fires):

    - it declares a one-line summary, ``exact``, and a ``bound()``; a lossy pass bounds itself;
    - every option has help text and its default converts;
    - it fires and its output stays within its own declared bound (numeric check in ORT);
    - it is stateless: its attributes are unchanged by a run, and a second run of the same
      instance on the same input gives the same graph;
    - it is idempotent: run on its own output it rewrites nothing, says the graph is unchanged
      and gives a reason ("why didn't it fire?").

    Returns the record of the first run; raises ``AssertionError`` naming the broken rule.
    """
    [instance] = build_pipeline([p] if isinstance(p, (PassSpec, Pass)) else p)
    cls = type(instance)
    label = f"pass '{cls.name}'"
    assert cls.summary and "\n" not in cls.summary, f"{label}: summary must be one non-empty line"
    assert isinstance(cls.exact, bool), f"{label}: exact must be True or False"
    bound = instance.bound()
    assert isinstance(bound, Bound), f"{label}: bound() must return a Bound"
    if cls.exact:
        assert bound == EXACT, f"{label}: an exact pass keeps the EXACT bound, not {bound.describe()}"
    else:
        assert bound.describe() != "unbounded", f"{label}: a lossy pass must declare how far it moves outputs"
    for key, option in cls.options.items():
        assert option.help, f"{label}: option '{key}' has no help text"
        option.convert(cls.name, option.default)
    state = copy.deepcopy(vars(instance))

    checker = NumericChecker(CheckSettings(shapes=dict(shapes or {})))
    first = PassManager([instance], instruments=[checker], data=data, services=OrtServices()).run(model)
    record = first.records[0]
    assert record.rewrites > 0, f"{label}: did not fire on the contract model: {record.reasons}"
    assert vars(instance) == state, f"{label}: the pass kept state between calls ({sorted(vars(instance))})"

    again = PassManager([instance], data=data, services=OrtServices()).run(model)
    assert canonical_graph(again.model) == canonical_graph(first.model), \
        f"{label}: a second run of the same instance on the same input gave a different graph"

    second = PassManager([instance], data=data, services=OrtServices()).run(first.model).records[0]
    assert second.rewrites == 0, f"{label}: not idempotent: a second application rewrote {second.rewrites} more"
    assert not second.modified, f"{label}: a second application modified the graph"
    assert second.reasons, f"{label}: rewrote nothing but gave no reason"
    return record
