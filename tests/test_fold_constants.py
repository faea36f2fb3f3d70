import onnx

from models import ALL_FIXTURES, FIXTURE_PADS, OPSET11, image_feeds, max_abs, ops, ort_run, run_pass

PADS_SUBGRAPH_OPS = {"ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Constant"}


def test_pads_subgraphs_become_initializers():
    model = onnx.load(str(OPSET11))
    assert ops(model)["Pad"] == FIXTURE_PADS
    assert ops(model)["ConstantOfShape"] == FIXTURE_PADS  # the exporter's pads subgraphs are there, one per Pad
    new, record = run_pass(model, "fold-constants")
    assert not PADS_SUBGRAPH_OPS & set(ops(new))
    inits = {i.name for i in new.graph.initializer}
    pads = [n for n in new.graph.node if n.op_type == "Pad"]
    assert len(pads) == FIXTURE_PADS
    assert all(p.input[1] in inits for p in pads)
    assert record.rewrites == record.nodes_before - record.nodes_after > 0
    assert record.op_delta["ConstantOfShape"] == -ops(model)["ConstantOfShape"]  # every pads subgraph gone


def test_outputs_identical_on_every_fixture():
    for path in ALL_FIXTURES:
        model = onnx.load(str(path))
        new, _ = run_pass(model, "fold-constants")
        feeds = image_feeds()
        assert max_abs(ort_run(model, feeds), ort_run(new, feeds)) <= 1e-6, path.name


def test_idempotent_and_reports_why():
    once, _ = run_pass(onnx.load(str(OPSET11)), "fold-constants")
    twice, record = run_pass(once, "fold-constants")
    assert record.rewrites == 0
    assert record.reasons == ["no constant or dead subgraph found"]
    assert len(twice.graph.node) == len(once.graph.node)
