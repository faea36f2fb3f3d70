import numpy as np

from models import OPSET11, folded, image_feeds, ort_run, run_pass


def test_upgrade_to_17_and_21_is_exact():
    model = folded(OPSET11)
    for version in (13, 17, 21):
        new, record = run_pass(model, f"opset(version={version})")
        assert record.rewrites == 1
        assert [o.version for o in new.opset_import if o.domain in ("", "ai.onnx")] == [version]
        feeds = image_feeds()
        np.testing.assert_array_equal(ort_run(model, feeds)[0], ort_run(new, feeds)[0])


def test_same_version_is_a_noop():
    _, record = run_pass(folded(OPSET11), "opset(version=11)")
    assert record.rewrites == 0
    assert not record.modified
    assert "already at opset 11" in record.reasons[0]
