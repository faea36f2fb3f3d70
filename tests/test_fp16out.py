import numpy as np
import onnx
import pytest

from graphsurgeon_cg import InputError

from models import OPSET11, folded, image_feeds, ort_run, run_pass


def test_outputs_become_float16_with_the_same_names_within_rounding():
    model = folded(OPSET11)
    new, record = run_pass(model, "fp16out")
    assert record.rewrites == 1
    assert record.op_delta == {"Cast": 1}
    out = new.graph.output[0]
    assert out.name == "maps"
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    feeds = image_feeds()
    ref, half = ort_run(model, feeds)[0], ort_run(new, feeds)[0]
    assert half.dtype == np.float16
    diff = np.abs(ref.astype(np.float64) - half.astype(np.float64))
    assert diff.max() > 0  # lossy: really rounded
    assert np.all(diff <= 2.0**-24 + 2.0**-11 * np.abs(ref))  # the declared bound


def test_idempotent_and_chooses_outputs():
    once, _ = run_pass(folded(OPSET11), "fp16out(outputs=[maps])")
    _, again = run_pass(once, "fp16out")
    assert again.rewrites == 0
    assert not again.modified
    assert "not float32" in again.reasons[0]


def test_unknown_output_name_is_refused_naming_the_pass():
    # an option that does not fit the graph is the user's input error (exit code 2), not a failed pass
    with pytest.raises(InputError, match="fp16out: no graph output named nope") as info:
        run_pass(folded(OPSET11), "fp16out(outputs=[nope])")
    assert info.value.exit_code == 2
