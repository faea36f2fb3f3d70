"""The one metric set: the vendor's per-pixel cosine exactly as torch computes it for images,
robust where it is degenerate, one PSNR definition everywhere, NaN never passing a gate."""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from graphsurgeon_cg.check.metrics import compare_outputs, flat_cosine, json_safe, meets, pixel_cosine, psnr, score
from graphsurgeon_cg.cli import cli
from graphsurgeon_cg.stages.evaluate import evaluate_dirs


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_pixel_cosine_is_torch_cosine_similarity_on_images():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (2, 3, 16, 16))
    b = a + 0.2 * rng.standard_normal(a.shape)
    b[0, :, 0, 0] = 1e-9  # a near-zero pixel: torch's eps clamp applies
    expected = float(torch.mean(torch.cosine_similarity(torch.tensor(a), torch.tensor(b))))
    assert math.isclose(pixel_cosine(a, b), expected, rel_tol=1e-12)


def test_identical_tensors_score_exactly_one_even_when_tiny():
    tiny = np.full((1, 3, 4, 4), 1e-6)
    assert pixel_cosine(tiny, tiny) == 1.0
    assert flat_cosine(tiny, tiny) == 1.0
    zero = np.zeros((1, 3, 2, 2))
    assert pixel_cosine(zero, zero) == 1.0
    assert flat_cosine(zero, zero) == 1.0
    assert flat_cosine(zero, np.ones_like(zero)) == 0.0


def test_one_channel_outputs_have_no_pixel_cosine_and_are_judged_flat():
    rng = np.random.default_rng(1)
    ref = rng.uniform(0, 1e-4, (1, 1, 8, 8))
    m = score("map", ref[0], (ref * 1.5)[0])
    assert m.pixel_cos is None
    assert m.judged_by == "cos"
    assert m.judged_cos == pytest.approx(1.0)


def test_cosines_are_clamped_and_nan_is_nan():
    a = np.array([1e308, 1e308])
    assert -1.0 <= flat_cosine(a, a * (1 + 1e-16)) <= 1.0
    nan = np.array([1.0, np.nan])
    assert math.isnan(flat_cosine(nan, nan))
    assert not meets(float("nan"), 0.5)
    assert not meets(None, 0.5)
    assert meets(0.5, 0.5)


def test_one_psnr_definition_with_the_reference_range():
    rng = np.random.default_rng(2)
    ref = rng.uniform(-1, 1, (3, 8, 8))
    new = ref + 0.01
    expected = 10 * math.log10(float(np.ptp(ref)) ** 2 / 1e-4)
    assert psnr(ref, new) == pytest.approx(expected)
    assert score("x", ref, new).psnr_db == pytest.approx(expected)
    check = compare_outputs([{"y": ref[None]}], [{"y": new[None]}])
    assert check.outputs[0].psnr_db == pytest.approx(expected)
    assert psnr(ref, ref) is None


def test_json_safe_turns_nan_into_null():
    text = json.dumps(json_safe({"a": float("nan"), "b": [float("inf"), 1.0]}), allow_nan=False)
    assert json.loads(text) == {"a": None, "b": [None, 1.0]}


def _tiny_probability_map(path):
    """A third-party-style detector head: Conv -> Sigmoid with a large negative bias, so the
    one-channel output is a probability map of values below 1e-4."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.01, (1, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.array([-12.0], np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["logits"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["logits"], ["prob"])]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 1, 16, 16])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_diff_of_a_model_with_itself_on_a_near_zero_one_channel_output(tmp_path):
    model = _tiny_probability_map(tmp_path / "det.onnx")
    result = invoke("diff", model, model, "--json", "--min-cos", "0.999")
    assert result.exit_code == 0, result.output + result.stderr
    out = json.loads(result.output)["outputs"][0]
    assert out["cos"] == 1.0
    assert out["pixel_cos"] is None
    assert out["judged_by"] == "cos"
    applied = invoke("apply", model, "-o", tmp_path / "o.onnx", "--passes", "fold-constants")
    assert applied.exit_code == 0, applied.stderr


def test_all_zero_output_folders_score_one(tmp_path):
    for name in ("ref", "out"):
        (tmp_path / name).mkdir()
        np.save(tmp_path / name / "a.npy", np.zeros((3, 8, 8), np.float32))
    result = evaluate_dirs(tmp_path / "ref", tmp_path / "out")
    assert result.summary["pixel_cos"]["mean"] == 1.0
    assert result.summary["cos"]["mean"] == 1.0


def test_nan_outputs_fail_the_eval_gate_and_json_stays_valid(tmp_path):
    for name in ("ref", "out"):
        (tmp_path / name).mkdir()
    np.save(tmp_path / "ref" / "a.npy", np.ones((3, 8, 8), np.float32))
    np.save(tmp_path / "out" / "a.npy", np.full((3, 8, 8), np.nan, np.float32))
    gated = invoke("eval", tmp_path / "ref", tmp_path / "out", "--min-cos", "0.5")
    assert gated.exit_code == 3
    assert gated.stderr.startswith("cgsurg: error: mean pixel_cos")
    as_json = invoke("eval", tmp_path / "ref", tmp_path / "out", "--json")
    assert as_json.exit_code == 0
    data = json.loads(as_json.output)
    assert data["images"][0]["pixel_cos"] is None
