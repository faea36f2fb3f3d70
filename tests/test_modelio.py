import hashlib
import os

import numpy as np
import onnx
import pytest

from graphsurgeon_cg import InputError, apply, load_model, save_model

from models import OPSET11, image_feeds, ort_run


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "text", "truncated"])
def test_bad_model_files_give_one_line_errors(tmp_path, kind):
    path = tmp_path / "model.onnx"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "truncated":
        path.write_bytes(OPSET11.read_bytes()[:100_000])
    with pytest.raises(InputError) as info:
        load_model(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path):
    model = load_model(OPSET11)
    out = save_model(model, tmp_path / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    assert onnx.load(str(out)) == model


def test_external_data_round_trip(tmp_path):
    model = load_model(OPSET11)
    out = save_model(model, tmp_path / "ext.onnx", external_data=True)
    assert (tmp_path / "ext.onnx.data").stat().st_size > 100_000
    assert out.stat().st_size < 50_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ext.onnx", "ext.onnx.data"]
    again = load_model(out)
    feeds = image_feeds()
    np.testing.assert_array_equal(ort_run(load_model(OPSET11), feeds)[0], ort_run(again, feeds)[0])


def test_apply_keeps_external_data_models_working(tmp_path):
    src = save_model(load_model(OPSET11), tmp_path / "src.onnx", external_data=True)
    out = tmp_path / "out.onnx"
    apply(src, out, "fold-constants,reflect2slice")
    assert ort_run(load_model(out), image_feeds())[0].shape == (2, 3, 64, 64)


def test_input_never_modified_and_output_equal_to_input_refused(tmp_path):
    src = tmp_path / "in.onnx"
    src.write_bytes(OPSET11.read_bytes())
    before = _digest(src)
    apply(src, tmp_path / "out.onnx", "fold-constants")
    assert _digest(src) == before
    with pytest.raises(InputError, match=r"is the input file; .*in.place"):  # says how to allow it
        apply(src, src, "fold-constants")
    assert _digest(src) == before
    apply(src, src, "fold-constants", in_place=True)
    assert _digest(src) != before
    assert len(load_model(src).graph.node) < len(load_model(OPSET11).graph.node)  # folded in place


def test_unwritable_or_missing_output_directory(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        apply(OPSET11, tmp_path / "no" / "out.onnx", "fold-constants")
    with pytest.raises(InputError, match="not writable"):
        apply(OPSET11, "/sys/out.onnx", "fold-constants")  # read-only even for root
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InputError, match="not writable"):
            apply(OPSET11, locked / "out.onnx", "fold-constants")


def test_saving_with_external_data_leaves_the_model_in_memory_intact(tmp_path):
    model = load_model(OPSET11)
    save_model(model, tmp_path / "ext.onnx", external_data=True)
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
    assert sum(len(t.raw_data) for t in model.graph.initializer) > 100_000


def test_a_long_one_dimensional_weight_is_not_read_as_shape_data_by_inference(tmp_path):
    """Shape inference with data propagation reads a one-dimensional tensor feeding a Gather as
    shape data, one protobuf dimension per element: 3.4 GB for a 49M-element table. The
    verification skeleton gives such a weight a symbolic length; the model itself keeps its
    size, and apply reads and writes it unchanged."""
    from onnx import TensorProto, helper, numpy_helper

    from graphsurgeon_cg.core.modelio import LONG_VECTOR, weightless

    table = numpy_helper.from_array(np.arange(LONG_VECTOR + 5, dtype=np.float32), "table")
    graph = helper.make_graph([helper.make_node("Gather", ["table", "idx"], ["rows"])], "g",
                              [helper.make_tensor_value_info("idx", TensorProto.INT64, [2])],
                              [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [2])], [table])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    skeleton = weightless(model)
    (declared,) = [i for i in skeleton.graph.input if i.name == "table"]
    assert declared.type.tensor_type.shape.dim[0].dim_param  # a symbol, not LONG_VECTOR + 5 dims of data
    inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=True, data_prop=True)
    assert [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim] == [2]
    onnx.save(model, tmp_path / "m.onnx")
    apply(tmp_path / "m.onnx", tmp_path / "o.onnx", "fold-constants,pad-conv-fusion")
    written = onnx.load(str(tmp_path / "o.onnx"))
    assert list(written.graph.initializer[0].dims) == [LONG_VECTOR + 5]


@pytest.mark.parametrize("suffix", [".json", ".textproto", ".onnx"])
def test_save_model_writes_the_format_the_extension_names(tmp_path, suffix):
    model = load_model(OPSET11)
    path = save_model(model, tmp_path / f"m{suffix}")
    assert onnx.load(str(path)).graph.node[0].op_type == model.graph.node[0].op_type
    assert load_model(path).SerializeToString() == model.SerializeToString()
