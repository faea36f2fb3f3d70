"""Regression tests for the pass defects the differential fuzzer found (issue 10), one minimal
pattern each: the rewrite happens (or is refused with a reason), the interface keeps its
names, the model passes the full checker, and the outputs agree in ONNX Runtime and
``onnx.reference`` (exact passes at atol 0 or 1e-5, lossy ones within their own bound)."""

from __future__ import annotations

import numpy as np
import onnx

from graphsurgeon_cg.testing import assert_numerically_equal, model_from_text, run_pass

HEADER = '<ir_version: 8, opset_import: ["" : 13]>'


def _interface(model: onnx.ModelProto, types: bool = True) -> tuple:
    inits = {t.name for t in model.graph.initializer}

    def describe(values):
        return [(v.name, v.type.tensor_type.elem_type if types else None) for v in values if v.name not in inits]

    return describe(model.graph.input), describe(model.graph.output)


def _valid(original: onnx.ModelProto, rewritten: onnx.ModelProto, types: bool = True) -> None:
    """Same interface (names, and element types unless the pass changes them), full check."""
    assert _interface(rewritten, types) == _interface(original, types)
    onnx.checker.check_model(rewritten, full_check=True)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _dims(value: onnx.ValueInfoProto) -> list | None:
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]


# --- reflect2slice: a reflect Pad of zeros is a no-op --------------------------------------------

def test_reflect2slice_zero_pads_feeding_the_output_become_an_identity():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x) => (float[1,2,4,4] y) <int64[8] pads = {{0,0,0,0,0,0,0,0}}>
        {{ y = Pad<mode="reflect">(x, pads) }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert any("all pads are zero" in r for r in record.reasons)
    assert _ops(new) == ["Identity"]
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


def test_reflect2slice_zero_pads_inside_the_graph_are_bypassed():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x) => (float[1,2,4,4] y, float[1,2,4,4] z) <int64[8] pads = {{0,0,0,0,0,0,0,0}}>
        {{ p = Pad<mode="reflect">(x, pads)  y = Relu(p)  z = Neg(p) }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert sorted(_ops(new)) == ["Neg", "Relu"]
    assert all(list(n.input) == ["x"] for n in new.graph.node)
    _valid(model, new)
    assert_numerically_equal(model, new, atol=0)


def test_reflect2slice_zero_pads_read_inside_an_if_are_bypassed():
    model = model_from_text(f"""{HEADER}
        g (float[1,2,4,4] x, bool c) => (float[1,2,4,4] y) <int64[8] pads = {{0,0,0,0,0,0,0,0}}> {{
          p = Pad<mode="reflect">(x, pads)
          y = If(c) <then_branch = g1 () => (float[1,2,4,4] z1) {{ z1 = Relu(p) }},
                     else_branch = g2 () => (float[1,2,4,4] z2) {{ z2 = Neg(p) }}>
        }}""")
    new, record = run_pass(model, "reflect2slice")
    assert record.rewrites == 1
    assert _ops(new) == ["If"]
    _valid(model, new)
    for cond in (True, False):
        feeds = [{"x": np.random.default_rng(0).standard_normal((1, 2, 4, 4)).astype(np.float32),
                  "c": np.array(cond)}]
        assert_numerically_equal(model, new, feeds, atol=0)
