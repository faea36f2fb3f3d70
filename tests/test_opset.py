import numpy as np
import onnx
import pytest

from models import OPSET11, OPSET17, folded, image_feeds, ort_run, run_pass


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


def test_a_range_converts_only_a_model_outside_it():
    model = folded(OPSET11)
    _, inside = run_pass(model, "opset(min=9,max=13)")
    assert inside.rewrites == 0 and not inside.modified
    assert "at opset 11, within 9-13" in inside.reasons[0]
    raised, record = run_pass(model, "opset(min=12)")
    assert record.rewrites == 1 and raised.opset_import[0].version == 12
    lowered, record = run_pass(onnx.load(OPSET17), "opset(max=13)")
    assert record.rewrites == 1 and lowered.opset_import[0].version == 13
    feeds = image_feeds()
    np.testing.assert_array_equal(ort_run(onnx.load(OPSET17), feeds)[0], ort_run(lowered, feeds)[0])


def test_range_options_print_back_and_bad_ranges_are_input_errors():
    from graphsurgeon_cg import InputError
    from graphsurgeon_cg.core.manager import PassManager

    assert str(PassManager("opset(min=9,max=13)").passes[0]) == "opset(min=9,max=13)"
    for text, message in [("opset(version=11,max=13)", "give version=N or min/max, not both"),
                          ("opset(min=13,max=9)", "min=13 is above max=9"),
                          ("opset(max=5)", "opsets below 7 cannot be converted to")]:
        with pytest.raises(InputError, match=message):
            PassManager(text)
