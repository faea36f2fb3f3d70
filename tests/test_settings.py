"""api.apply takes a few settings objects, each what one option group of `cgsurg apply` parses
to; the older keywords still work for one release, with a DeprecationWarning."""

import json
import warnings

import pytest

from graphsurgeon_cg import CheckSettings, InputError, NumericCheckFailed
from graphsurgeon_cg.api import InputSettings, ReportSettings, TargetSettings, apply

from models import OPSET11, prepped_photos

PIPELINE = "fold-constants,reflect2slice"


@pytest.fixture(scope="module")
def info(tmp_path_factory):
    return prepped_photos(tmp_path_factory.mktemp("settings"), seed=1, prefix="s")


def test_settings_objects_drive_check_and_report(tmp_path, info):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new form warns about nothing
        result = apply(OPSET11, tmp_path / "o.onnx", PIPELINE, check=CheckSettings(min_cos=0.999, each_pass=True),
                       inputs=InputSettings(data=info, samples=2), report=ReportSettings(tmp_path / "rep"))
    assert result.check.inputs == f"2 samples of {info}" and result.check.bar == "the bar given, min_cos"
    assert all(r.check is not None for r in result.records)  # each_pass: every pass checked
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["inputs"]["kind"] == "info" and report["inputs"]["samples"] == 2  # the run's inputs


def test_old_keywords_warn_and_mean_the_same(tmp_path, info):
    with pytest.warns(DeprecationWarning, match=r"apply\(data=, samples=, check_each=\) is deprecated"):
        old = apply(OPSET11, tmp_path / "a.onnx", PIPELINE, data=info, samples=2, check_each=True)
    new = apply(OPSET11, tmp_path / "b.onnx", PIPELINE, inputs=InputSettings(data=info, samples=2),
                check=CheckSettings(each_pass=True))
    assert old.check.as_dict() == new.check.as_dict()
    assert [r.check is not None for r in old.records] == [r.check is not None for r in new.records] == [True, True]


def test_target_by_settings_or_name(tmp_path):
    lossy = apply(OPSET11, tmp_path / "l.onnx", None, check=False, target=TargetSettings("ascend", lossy=True))
    assert "reflect2const" in lossy.pipeline
    assert "reflect2const" not in apply(OPSET11, tmp_path / "e.onnx", None, check=False, target="ascend").pipeline
    with pytest.raises(InputError, match="lossy needs a target"):
        apply(OPSET11, tmp_path / "x.onnx", PIPELINE, target=TargetSettings(lossy=True))


def test_check_bar_and_mistakes(tmp_path):
    with pytest.raises(NumericCheckFailed):
        apply(OPSET11, tmp_path / "o.onnx", "fold-constants,reflect2const", check=CheckSettings(min_cos=0.9999999))
    assert not (tmp_path / "o.onnx").exists()
    with pytest.raises(InputError, match="inputs=InputSettings"):
        apply(OPSET11, tmp_path / "o.onnx", PIPELINE, check=CheckSettings(seed=3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'chek'"):
        apply(OPSET11, tmp_path / "o.onnx", PIPELINE, chek=False)
    with pytest.raises(TypeError, match="not both"), pytest.warns(DeprecationWarning):
        apply(OPSET11, tmp_path / "o.onnx", PIPELINE, seed=1, inputs=InputSettings())
