import json
import re

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import InputError, build_pipeline, parse_pipeline
from graphsurgeon_cg.stages.dataset import Sample, write_info
from graphsurgeon_cg.targets.rules import static_shape_spec
from graphsurgeon_cg.testing import canonical_graph, model_from_text
from thirdparty import model_path

from models import float_input, invoke, make_model, ops, ort_run, run_pass

# x[N,3,H,W] flattened per sample through a Shape -> Gather -> Unsqueeze -> Concat -> Reshape chain.
FLATTEN = """<ir_version: 8, opset_import: ["" : 13]>
g (float[N,3,H,W] x) => (float[N,?] y) <int64[1] zero = {0}, int64[1] minus = {-1}> {
  s = Shape (x)  n = Gather <axis = 0> (s, zero)  c = Concat <axis = 0> (n, minus)  y = Reshape (x, c)
}"""


def add_weight() -> onnx.ModelProto:
    """x[N,3,H,W] + a weight of fixed size: the input only takes H = W = 4."""
    weight = onnx.numpy_helper.from_array(np.zeros((1, 3, 4, 4), np.float32), "w")
    return make_model([onnx.helper.make_node("Add", ["x", "w"], ["y"])], [float_input("x", ["N", 3, "H", "W"])],
                      [float_input("y", ["N", 3, "H", "W"])], [weight])


def _dims(info: onnx.ValueInfoProto) -> list:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in info.type.tensor_type.shape.dim]


def _dynamic(model: onnx.ModelProto) -> list:
    return [(i.name, _dims(i)) for i in [*model.graph.input, *model.graph.output]
            if not all(isinstance(d, int) and d > 0 for d in _dims(i))]


def test_fixes_every_axis_and_folds_the_shape_chain():
    model = model_from_text(FLATTEN)
    new, record = run_pass(model, "static-shape(shapes=x:2x3x4x5)")
    assert record.rewrites == 1 and record.modified
    assert _dims(new.graph.input[0]) == [2, 3, 4, 5]
    assert _dims(new.graph.output[0]) == [2, 60]
    assert ops(new)["Shape"] == 0 and set(ops(new)) == {"Reshape"}
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)}
    np.testing.assert_array_equal(ort_run(model, feed)[0], ort_run(new, feed)[0])


def test_question_mark_keeps_an_axis():
    new, _ = run_pass(model_from_text(FLATTEN), "static-shape(shapes=x:?,3,4,5)")
    assert _dims(new.graph.input[0]) == ["N", 3, 4, 5]
    assert ops(new)["Shape"] == 1  # the batch still comes from the input at run time
    assert _dims(new.graph.output[0])[0] == "N"


def test_idempotent_and_round_trips():
    once, _ = run_pass(model_from_text(FLATTEN), "static-shape(shapes=x:2x3x4x5)")
    _, again = run_pass(once, "static-shape(shapes=x:2x3x4x5)")
    assert again.rewrites == 0 and not again.modified
    assert "already has shape [2,3,4,5]" in again.reasons[0]
    [p] = build_pipeline("static-shape(shapes=[x:2,3,4,5,y:?,7])")
    assert p.shapes == ("x:2", "3", "4", "5", "y:?", "7")
    assert str(p) == "static-shape(shapes=[x:2,3,4,5,y:?,7])"
    assert build_pipeline(parse_pipeline(str(p)))[0].shapes == p.shapes
    assert str(static_shape_spec({"x": [2, 3, 4, 5], "y": ["N", 7]})) == str(p)
    same, _ = run_pass(model_from_text(FLATTEN), "static-shape(shapes=x:2,3,4,5)")
    assert canonical_graph(same) == canonical_graph(once)


@pytest.mark.parametrize("spec, message", [
    ("static-shape(shapes=y:1x3x4x4)", "no graph input named 'y' (inputs: x)"),
    ("static-shape(shapes=x:1,3,4)", "input 'x' has 4 axes [N,3,H,W]; 'x:1,3,4' gives 3"),
    ("static-shape(shapes=x:1x4x4x4)", "input 'x' has axis 1 fixed at 3; 'x:1x4x4x4' gives 4"),
    ("static-shape(shapes=x:1,3,5,5)", "the graph does not take shapes x:1,3,5,5"),
    ("static-shape", "give shapes=NAME:D1,D2,..."),
])
def test_refuses_shapes_the_model_cannot_take(spec, message):
    with pytest.raises(InputError, match=re.escape("static-shape: " + message)):
        run_pass(add_weight(), spec)


@pytest.mark.parametrize("value", ["x:1,0,4", "x:1xHx4", "1,3", "[x:1,3,x:1,3]", "x:"])
def test_refuses_bad_syntax_before_any_graph(value):
    with pytest.raises(InputError, match="static-shape: option 'shapes'"):
        build_pipeline(f"static-shape(shapes={value})")


def test_third_party_text_detector_becomes_static_and_bit_exact():
    model = onnx.load(str(model_path("det")))
    assert _dynamic(model)
    new, record = run_pass(model, "static-shape(shapes=x:1,3,640,640)")
    assert _dynamic(new) == []
    assert _dims(new.graph.output[0]) == [1, 1, 640, 640]
    feed = {"x": np.random.default_rng(0).uniform(-1, 1, (1, 3, 640, 640)).astype(np.float32)}
    np.testing.assert_array_equal(ort_run(model, feed)[0], ort_run(new, feed)[0])


def test_third_party_classifier_loses_its_shape_chain():
    model = onnx.load(str(model_path("orientation")))
    new, _ = run_pass(model, "static-shape(shapes=x:1,3,224,224)")
    assert ops(model)["Shape"] == 1 and ops(new)["Shape"] == 0
    assert _dynamic(new) == []
    feed = {"x": np.random.default_rng(0).uniform(-1, 1, (1, 3, 224, 224)).astype(np.float32)}
    np.testing.assert_array_equal(ort_run(model, feed)[0], ort_run(new, feed)[0])


# --- --input-shape on the command line, on the third-party detector (H, W: multiples of 32) -----

def test_apply_target_with_input_shape_compiles_the_detector_at_that_size(tmp_path):
    det = model_path("det")
    out = tmp_path / "det.onnx"
    refused = invoke("apply", det, "-o", out, "--target", "tensorrt")
    assert refused.exit_code == 2 and not out.exists()
    assert "give them with --input-shape x:1,3,H,W" in refused.output
    result = invoke("apply", det, "-o", out, "--target", "tensorrt", "--input-shape", "x:1,3,64,64")
    assert result.exit_code == 0, result.output
    assert "static-shape(shapes=[x:1,3,64,64])" in result.output and "no errors or warnings" in result.output
    written = onnx.load(str(out))
    assert _dynamic(written) == [] and _dims(written.graph.output[0]) == [1, 1, 64, 64]
    assert "--saveEngine=det.plan" in (tmp_path / "det.trtexec.sh").read_text()


def test_lint_agrees_with_apply_and_lints_the_fixed_model():
    det = model_path("det")
    before = invoke("lint", det, "--target", "ascend")  # ATC varies the batch only: an error
    assert before.exit_code == 5 and "static-shape(shapes=x:?,3,H,W)" in before.output
    profiled = invoke("lint", det, "--target", "tensorrt")  # trtexec profiles every axis: a warning
    assert profiled.exit_code == 4 and "static-shape(shapes=x:?,3,H,W)" in profiled.output
    after = invoke("lint", det, "--target", "tensorrt", "--input-shape", "x:1,3,64,64")
    assert after.exit_code == 0, after.output
    assert invoke("lint", det, "--target", "ascend", "--input-shape", "x:1,3,64,64", "--json").output.count(
        "dynamic") == 0


def test_stages_run_a_dynamic_model_at_the_given_shape(tmp_path):
    det = model_path("det")
    missing = invoke("bench", det, "--rounds", "1", "--batches", "1")
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [
        "cgsurg: error: input 'x' has dynamic axes 2 (p2o.DynamicDimension.1), 3 (p2o.DynamicDimension.2); "
        "give them with --input-shape x:1,3,H,W"]
    bench = invoke("bench", det, "--rounds", "1", "--warmup", "0", "--batches", "1", "--input-shape", "x:1,3,64,64")
    assert bench.exit_code == 0, bench.output
    wrong = invoke("bench", det, "--rounds", "1", "--batches", "1", "--input-shape", "x:1,4,64,64")
    assert wrong.exit_code == 2 and "axis 1 size 4; input 'x' has it fixed at 3" in wrong.output
    samples = []
    for i in range(2):
        np.save(tmp_path / f"s{i}.npy", np.random.default_rng(i).uniform(-1, 1, (3, 64, 64)).astype(np.float32))
        samples.append(Sample(i, tmp_path / f"s{i}.npy", 64, 64))
    write_info(tmp_path / "data.info", samples)
    refused = invoke("infer", det, "--data", tmp_path / "data.info", "-o", tmp_path / "out")
    assert refused.exit_code == 2 and "give them with --input-shape x:1,3,H,W" in refused.output
    assert not (tmp_path / "out").exists()
    done = invoke("infer", det, "--data", tmp_path / "data.info", "-o", tmp_path / "out", "--batch", "2",
                  "--input-shape", "x:1,3,64,64")
    assert done.exit_code == 0, done.output
    assert np.load(tmp_path / "out" / "s1.npy").shape == (1, 64, 64)


def test_diff_resizes_a_folder_of_images_to_the_input_shape(tmp_path):
    from PIL import Image

    det = model_path("det")
    pictures = tmp_path / "pictures"
    pictures.mkdir()
    rng = np.random.default_rng(4)
    for i, (h, w) in enumerate(((80, 96), (50, 40))):  # neither at the shape given: resized to it
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(pictures / f"p{i}.png")
    rewritten = tmp_path / "det_rewritten.onnx"
    assert invoke("apply", det, "-o", rewritten, "--passes", "static-shape(shapes=x:?,3,64,64),fold-constants",
                  "--input-shape", "x:1,3,64,64", "--inputs", pictures).exit_code == 0
    missing = invoke("diff", det, rewritten, "--inputs", pictures)
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines()[-1].endswith("give them with --input-shape x:1,3,H,W")
    result = invoke("diff", det, rewritten, "--inputs", pictures, "--input-shape", "x:1,3,64,64", "--json")
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["inputs"].startswith("2 files of ") and compared["outputs"][0]["max_abs"] == 0  # exact
    wrong = invoke("diff", det, rewritten, "--inputs", pictures, "--input-shape", "x:1,3,96,96")
    assert wrong.exit_code != 0 and "Traceback" not in wrong.output
