import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from graphsurgeon_cg import (
    NumericCheckFailed,
    Pass,
    PassFailed,
    PassManager,
    PassResult,
    apply,
    load_model,
    register_pass,
)
from graphsurgeon_cg.check import CheckSettings, NumericChecker

from models import BILINEAR, FIXTURE_PADS, OPSET11, folded, image_feeds, ops, ort_run, pad_extent


@register_pass
class Raises(Pass):
    name = "test-raises"
    summary = "Always raises"
    exact = True

    def run(self, graph, ctx):
        raise RuntimeError("kaput")


@register_pass
class Invalid(Pass):
    name = "test-invalid"
    summary = "Adds a node of an operator that does not exist"
    exact = True

    def run(self, graph, ctx):
        out = graph.outputs[0]
        name, out.name = out.name, ctx.fresh_name("before_bogus")  # the interface keeps its name
        bogus = gs.Variable(name, dtype=out.dtype, shape=out.shape)
        graph.nodes.append(gs.Node("NoSuchOperator", inputs=[out], outputs=[bogus]))
        graph.outputs[0] = bogus
        return PassResult(1)


@register_pass
class SigmoidForTanh(Pass):
    name = "test-sigmoid-for-tanh"
    summary = "Claims to be exact but replaces Tanh with Sigmoid"
    exact = True

    def run(self, graph, ctx):
        count = 0
        for node in graph.nodes:
            if node.op == "Tanh":
                node.op = "Sigmoid"
                ctx.mark(node)
                count += 1
        return PassResult(count)


def checked(pipeline: str, settings: CheckSettings | None = None, each_pass: bool = False) -> PassManager:
    """A pass manager with the numeric check (the old default of ``PassManager``)."""
    return PassManager(pipeline, instruments=[NumericChecker(settings, each_pass=each_pass)])


def test_records_and_provenance():
    original = load_model(BILINEAR)
    result = checked("fold-constants,reflect2slice,resize-nearest(min_cos=0.5)").run(original)
    fold, slice_, resize = result.records
    assert all(r.modified for r in result.records)
    # fold-constants: every Constant and pads subgraph folded away, fewer nodes
    assert fold.nodes_before == len(original.graph.node)
    assert fold.nodes_after < fold.nodes_before
    assert fold.rewrites == fold.nodes_before - fold.nodes_after
    assert fold.op_delta["Constant"] == -ops(original)["Constant"]
    assert fold.op_delta["ConstantOfShape"] == -ops(original)["ConstantOfShape"]
    assert not {"Constant", "ConstantOfShape"} & set(ops(result.model))
    # records chain: each pass starts from the node count the previous one left
    assert slice_.nodes_before == fold.nodes_after
    assert resize.nodes_before == slice_.nodes_after
    # reflect2slice: every reflect Pad -> one reversed Slice per padded side, one Concat per padded axis
    axes, sides = pad_extent(folded(BILINEAR))
    assert slice_.rewrites == FIXTURE_PADS
    assert slice_.op_delta == {"Concat": axes, "Pad": -FIXTURE_PADS, "Slice": sides}
    assert "Pad" not in ops(result.model)
    # resize-nearest changes attributes only
    assert resize.op_delta == {}
    assert resize.nodes_after == resize.nodes_before
    assert all(r.seconds >= 0 for r in result.records)
    docs = {n.op_type: n.doc_string for n in result.model.graph.node if n.doc_string}
    assert docs["Slice"] == "cgsurg:reflect2slice"
    assert docs["Concat"] == "cgsurg:reflect2slice"
    assert docs["Resize"] == "cgsurg:resize-nearest (modified)"
    assert not any(n.doc_string for n in result.model.graph.node if n.op_type == "Conv")
    assert result.check.ok
    assert result.check.outputs[0].pixel_cos < 1.0


def test_a_pass_that_raises_is_named():
    with pytest.raises(PassFailed, match="pass 'test-raises' failed: RuntimeError: kaput"):
        PassManager("fold-constants,test-raises").run(load_model(OPSET11))


def test_an_invalid_model_is_caught_and_nothing_written(tmp_path):
    out = tmp_path / "out.onnx"
    with pytest.raises(PassFailed, match="test-invalid.*invalid"):
        apply(OPSET11, out, "fold-constants,test-invalid")
    assert not out.exists()


def test_a_wrong_exact_pass_fails_the_check_with_exit_code_3(tmp_path):
    out = tmp_path / "out.onnx"
    with pytest.raises(NumericCheckFailed) as info:
        apply(OPSET11, out, "fold-constants,test-sigmoid-for-tanh,reflect2slice")
    assert info.value.pass_name == "test-sigmoid-for-tanh"
    assert info.value.exit_code == 3
    assert not out.exists()


def test_check_each_stops_at_the_culprit_and_records_checks():
    manager = checked("fold-constants,reflect2const,reflect2slice", each_pass=True)
    with pytest.raises(NumericCheckFailed, match="after pass 'reflect2const'"):
        manager.run(load_model(OPSET11))
    manager = checked("fold-constants,reflect2const(min_cos=0.7),pad-conv-fusion", each_pass=True)
    result = manager.run(load_model(OPSET11))
    cos = [r.check.outputs[0].pixel_cos for r in result.records]
    assert cos[0] == 1.0
    assert cos[1] < 0.9
    assert cos[2] == 1.0


def test_without_the_checker_nothing_is_checked():
    pipeline = "fold-constants,reflect2const(min_cos=0.99)"
    with pytest.raises(NumericCheckFailed):
        checked(pipeline).run(load_model(OPSET11))
    result = PassManager(pipeline).run(load_model(OPSET11))  # no instruments: the same breach goes unchecked
    assert result.check is None
    assert all(r.check is None for r in result.records)


def test_static_batch_is_checked_at_its_batch_and_input_shape_is_honoured():
    result = checked("fold-constants,static-batch(batch=3)").run(load_model(OPSET11))
    assert result.check.ok
    result = checked("fold-constants", CheckSettings(shapes={"img_sat_maps": (2, 3, 64, 64)})).run(load_model(OPSET11))
    assert result.check.samples == 1
    assert result.check.ok


def test_check_on_real_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    np.save(tmp_path / "sample.npy", rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32))
    result = checked("fold-constants,reflect2slice", CheckSettings(inputs_dir=str(tmp_path))).run(load_model(OPSET11))
    assert result.check.samples == 3
    assert result.check.outputs[0].max_abs == 0.0


def test_exact_pipeline_output_matches_original_in_ort():
    model = load_model(OPSET11)
    result = checked("fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=2)").run(model)
    assert result.check.ok
    feeds = image_feeds(batch=2)
    np.testing.assert_array_equal(ort_run(model, feeds)[0], ort_run(result.model, feeds)[0])
    onnx.checker.check_model(result.model, full_check=True)


@register_pass
class MakesCycle(Pass):
    name = "test-cycle"
    summary = "Feeds the last Relu's output back into the first Relu"
    exact = True

    def run(self, graph, ctx):
        relus = [n for n in graph.nodes if n.op == "Relu"]
        relus[0].inputs[0] = relus[-1].outputs[0]
        return PassResult(1)


def test_a_cycle_is_reported_with_its_nodes():
    with pytest.raises(PassFailed, match="pass 'test-cycle' failed: the graph has a cycle: .*Relu"):
        PassManager("fold-constants,test-cycle").run(load_model(OPSET11))


def test_a_run_pauses_the_collector_and_gives_it_back():
    import gc

    from graphsurgeon_cg import Instrument

    seen = []

    class Collector(Instrument):
        def after_pass(self, run, index, p, record):
            seen.append(gc.isenabled())

    assert gc.isenabled()
    PassManager("reflect2slice", instruments=[Collector()]).run(load_model(OPSET11))
    assert seen == [False] and gc.isenabled()
    with pytest.raises(PassFailed):  # a failing run gives it back too
        PassManager("test-raises").run(load_model(OPSET11))
    assert gc.isenabled()
