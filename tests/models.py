"""Shared test helpers: the fixture models, small hand-built models, image feeds, ORT runs and the
in-process CLI. A plain module (``from models import ...``; pytest puts tests/ on ``sys.path``):
conftest.py keeps only fixtures. Running a pipeline without the numeric check is
``graphsurgeon_cg.testing.run_pass``, re-exported here for convenience."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from graphsurgeon_cg.check.session import make_session
from graphsurgeon_cg.testing import run_pass

FIXTURES = Path(__file__).parent / "fixtures"
OPSET11 = FIXTURES / "cyclegan_tiny_opset11.onnx"
OPSET17 = FIXTURES / "cyclegan_tiny_opset17.onnx"
BILINEAR = FIXTURES / "cyclegan_tiny_bilinear_opset11.onnx"
ALL_FIXTURES = [OPSET11, OPSET17, BILINEAR]
# The fixture generators' architecture (tests/fixtures/build_fixtures.py: ResNet, 2 residual blocks):
# a reflect Pad before the stem conv, two in each residual block, one before the last conv.
FIXTURE_PADS = 6

__all__ = ["FIXTURES", "OPSET11", "OPSET17", "BILINEAR", "ALL_FIXTURES", "FIXTURE_PADS", "ort_run", "image_feeds",
           "run_pass", "ops", "max_abs", "folded", "pad_extent", "make_model", "float_input", "int64_init", "pad_model",
           "overflow_model",
           "invoke"]


def ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    """Outputs of ``model`` in ORT CPU with graph optimisations disabled (cgsurg's one session factory)."""
    return make_session(model).run(None, feeds)


def image_feeds(batch: int = 2, seed: int = 1, size: int = 64) -> dict:
    rng = np.random.default_rng(seed)
    return {"img_sat_maps": rng.uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)}


def ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def max_abs(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) for x, y in zip(a, b))


def folded(path: Path) -> onnx.ModelProto:
    """A fixture with its pads subgraphs folded, as most passes expect."""
    return run_pass(onnx.load(str(path)), "fold-constants")[0]


def pad_extent(model: onnx.ModelProto) -> tuple[int, int]:
    """Over the model's Pad nodes (pads given as initializers): how many axes are padded and how
    many sides (begin or end of an axis) get a non-zero pad."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    axes = sides = 0
    for node in model.graph.node:
        if node.op_type == "Pad":
            pads = inits[node.input[1]].reshape(2, -1)  # begins, ends
            axes += int(np.count_nonzero(pads.any(axis=0)))
            sides += int(np.count_nonzero(pads))
    return axes, sides


def make_model(nodes, inputs, outputs, initializers=(), opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 17 else 10
    onnx.checker.check_model(model, full_check=True)
    return model


def float_input(name: str, shape) -> onnx.ValueInfoProto:
    """A float tensor; an int ``shape`` means that rank with unknown dims (for outputs)."""
    if isinstance(shape, int):
        shape = [f"{name}_d{i}" for i in range(shape)]
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def int64_init(name: str, values) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def pad_model(shape, pads, mode: str = "reflect", opset: int = 13, axes=None,
              value: float | None = None) -> onnx.ModelProto:
    """x -> Pad(mode) -> y, with pads (and axes from opset 18) as initializers."""
    inits = [int64_init("pads", pads)]
    inputs = ["x", "pads"]
    if value is not None or axes is not None:
        inputs.append("value" if value is not None else "")
        if value is not None:
            inits.append(onnx.numpy_helper.from_array(np.asarray(value, dtype=np.float32), "value"))
    if axes is not None:
        inputs.append("axes")
        inits.append(int64_init("axes", axes))
    node = helper.make_node("Pad", inputs, ["y"], mode=mode, name="pad")
    return make_model([node], [float_input("x", list(shape))], [float_input("y", len(shape))], inits, opset)


def prepped_photos(root: Path, seed: int, prefix: str, count: int = 3, size: int = 64) -> Path:
    """``count`` seeded random size x size photos in root/imgs, prepared by ``cgsurg prep`` into
    root/prep: the info file."""
    from PIL import Image

    src = root / "imgs"
    src.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.uniform(0, 255, (size, size, 3)).astype(np.uint8)).save(src / f"{prefix}{i}.png")
    assert invoke("prep", src, "-o", root / "prep", "--size", size).exit_code == 0
    return root / "prep" / "imgs.info"


def invoke(*args):
    """The cgsurg CLI in-process (click's runner), arguments stringified."""
    from click.testing import CliRunner

    from graphsurgeon_cg.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def overflow_model(peak: float = 164_000.0, seed: int = 0) -> onnx.ModelProto:
    """A 7-node conv net (conv1, relu1, conv2, relu2, conv3, relu3, conv4) whose middle
    activation (``big``, conv2's output, then relu2's) reaches about ``peak`` on inputs in
    [-1, 1]: past float16's 65,504 when ``peak`` is. conv3 scales it back down."""
    rng = np.random.default_rng(seed)

    def weight(name, out, inp, scale):  # positive, about 1 / fan-in: activations stay near 1
        values = rng.uniform(0.5, 1.0, (out, inp, 3, 3)) * scale / (0.75 * 9 * inp)
        return onnx.numpy_helper.from_array(values.astype(np.float32), name)

    def conv(x, w, y):
        name = y.replace("t_", "").replace("big", "conv2")
        return helper.make_node("Conv", [x, w], [y], pads=[1, 1, 1, 1], name=name)

    feeds = {"x": rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)}  # as the check's random inputs
    # conv3 and conv4 divide by 100 each: their weights stay normal float16 numbers (>= 6.1e-5)
    inits = [weight("w1", 8, 3, 1.0), weight("w2", 8, 8, 1.0), weight("w3", 8, 8, 0.01), weight("w4", 3, 8, 0.01)]
    nodes = [conv("x", "w1", "t_conv1"), helper.make_node("Relu", ["t_conv1"], ["r1"], name="relu1"),
             conv("r1", "w2", "big"), helper.make_node("Relu", ["big"], ["r2"], name="relu2"),
             conv("r2", "w3", "t_conv3"), helper.make_node("Relu", ["t_conv3"], ["r3"], name="relu3"),
             conv("r3", "w4", "y")]
    model = make_model(nodes, [float_input("x", ["N", 3, 16, 16])], [float_input("y", 4)], inits)
    big = make_session(_exposing(model, "big")).run(["big"], feeds)[0]
    scale = peak / float(np.abs(big).max())  # conv2's weights scaled so that ones reach the peak
    inits[1] = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(inits[1]) * np.float32(scale), "w2")
    return make_model(nodes, [float_input("x", ["N", 3, 16, 16])], [float_input("y", 4)], inits)


def _exposing(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return copy
