import numpy as np

from models import OPSET11, folded, image_feeds, ort_run, run_pass


def _dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value_info.type.tensor_type.shape.dim]


def test_batch_becomes_static_and_shapes_are_reinferred():
    model = folded(OPSET11)
    new, record = run_pass(model, "static-batch(batch=4)")
    assert record.rewrites == 1
    assert _dims(new.graph.input[0]) == [4, 3, 64, 64]
    assert _dims(new.graph.output[0]) == [4, 3, 64, 64]
    assert all(_dims(v)[0] == 4 for v in new.graph.value_info if _dims(v))
    feeds = image_feeds(batch=4)
    np.testing.assert_array_equal(ort_run(model, feeds)[0], ort_run(new, feeds)[0])


def test_idempotent_and_refuses_other_static_batch():
    once, _ = run_pass(folded(OPSET11), "static-batch(batch=2)")
    _, same = run_pass(once, "static-batch(batch=2)")
    assert same.rewrites == 0
    _, other = run_pass(once, "static-batch(batch=3)")
    assert other.rewrites == 0
    assert not other.modified
    assert "already has static batch 2" in other.reasons[0]
