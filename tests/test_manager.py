import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from conftest import BILINEAR, OPSET11, image_feeds, ort_run
from graphsurgeon_cg import (CheckSettings, NumericCheckFailed, Pass, PassFailed, PassManager, PassResult,
                             apply, load_model, register_pass)


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
        bogus = gs.Variable(ctx.fresh_name("bogus"), dtype=np.float32)
        graph.nodes.append(gs.Node("NoSuchOperator", inputs=[out], outputs=[bogus]))
        graph.outputs.append(bogus)
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


def test_records_and_provenance():
    result = PassManager("fold-constants,reflect2slice,resize-nearest(min_cos=0.5)").run(load_model(BILINEAR))
    fold, slice_, resize = result.records
    assert fold.nodes_before == 149 and fold.nodes_after == 37 and fold.op_delta["Constant"] == -70
    assert slice_.op_delta == {"Concat": 12, "Pad": -6, "Slice": 24}
    assert all(r.seconds >= 0 for r in result.records)
    docs = {n.op_type: n.doc_string for n in result.model.graph.node if n.doc_string}
    assert docs["Slice"] == "cgsurg:reflect2slice" and docs["Concat"] == "cgsurg:reflect2slice"
    assert docs["Resize"] == "cgsurg:resize-nearest (modified)"
    assert not any(n.doc_string for n in result.model.graph.node if n.op_type == "Conv")
    assert result.check.ok and result.check.outputs[0].pixel_cos < 1.0


def test_a_pass_that_raises_is_named():
    with pytest.raises(PassFailed, match="pass 'test-raises' failed: RuntimeError: kaput"):
        PassManager("fold-constants,test-raises", check=None).run(load_model(OPSET11))


def test_an_invalid_model_is_caught_and_nothing_written(tmp_path):
    out = tmp_path / "out.onnx"
    with pytest.raises(PassFailed, match="test-invalid.*invalid"):
        apply(OPSET11, out, "fold-constants,test-invalid")
    assert not out.exists()


def test_a_wrong_exact_pass_fails_the_check_with_exit_code_3(tmp_path):
    out = tmp_path / "out.onnx"
    with pytest.raises(NumericCheckFailed) as info:
        apply(OPSET11, out, "fold-constants,test-sigmoid-for-tanh,reflect2slice")
    assert info.value.pass_name == "test-sigmoid-for-tanh" and info.value.exit_code == 3
    assert not out.exists()


def test_check_each_stops_at_the_culprit_and_records_checks():
    manager = PassManager("fold-constants,reflect2const,reflect2slice", check_each=True)
    with pytest.raises(NumericCheckFailed, match="after pass 'reflect2const'"):
        manager.run(load_model(OPSET11))
    result = PassManager("fold-constants,reflect2const(min_cos=0.7),pad-conv-fusion", check_each=True).run(load_model(OPSET11))
    cos = [r.check.outputs[0].pixel_cos for r in result.records]
    assert cos[0] == 1.0 and cos[1] < 0.9 and cos[2] == 1.0


def test_static_batch_is_checked_at_its_batch_and_input_shape_is_honoured():
    result = PassManager("fold-constants,static-batch(batch=3)").run(load_model(OPSET11))
    assert result.check.ok
    result = PassManager("fold-constants", check=CheckSettings(shapes={"img_sat_maps": (2, 3, 64, 64)})).run(load_model(OPSET11))
    assert result.check.samples == 1 and result.check.ok


def test_check_on_real_images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / f"img{i}.png")
    np.save(tmp_path / "sample.npy", rng.uniform(-1, 1, (3, 64, 64)).astype(np.float32))
    result = PassManager("fold-constants,reflect2slice", check=CheckSettings(inputs_dir=str(tmp_path))).run(load_model(OPSET11))
    assert result.check.samples == 3 and result.check.outputs[0].max_abs == 0.0


def test_exact_pipeline_output_matches_original_in_ort():
    model = load_model(OPSET11)
    result = PassManager("fold-constants,reflect2slice,pad-conv-fusion,static-batch(batch=2)").run(model)
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
        PassManager("fold-constants,test-cycle", check=None).run(load_model(OPSET11))
