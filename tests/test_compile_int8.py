"""compile --int8: NNCF int8 for OpenVINO, with layers kept float through its ignored scope."""

import pytest

pytest.importorskip("openvino", reason="the [openvino] extra is not installed")
pytest.importorskip("nncf", reason="the [openvino] extra (NNCF) is not installed")

from models import OPSET11, invoke  # noqa: E402


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    infos = {}
    for split, names in (("calib", ("chelsea", "coffee", "rocket")), ("eval", ("astronaut", "camera"))):
        src = root / split
        src.mkdir()
        for name in names:
            Image.fromarray(getattr(data, name)()).convert("RGB").save(src / f"{name}.png")
        assert invoke("prep", src, "-o", root / f"{split}_prep", "--size", 64).exit_code == 0
        infos[split] = root / f"{split}_prep" / f"{split}.info"
    return infos


def _int8_ops(xml):
    text = xml.read_text()
    return text.count('type="FakeQuantize"') + text.count('type="FakeConvert"')


@pytest.mark.parametrize("keep, quantised_fewer", [("first-last,ConvTranspose", True), ("", False)])
def test_compile_int8_quantises_and_keeps_what_it_is_asked_to(photos, tmp_path, keep, quantised_fewer):
    out = tmp_path / "ov"
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", out, "--int8", "--data", photos["calib"],
                    "--keep-float", keep)
    assert result.exit_code == 0, result.output
    assert "int8 (NNCF)" in result.output
    fake = _int8_ops(out / "model.xml")
    assert fake > 0
    evaluated = invoke("eval", "--ref", OPSET11, "--model", out / "model.xml", "--backend", "openvino",
                       "--data", photos["eval"], "--json")
    import json

    cos = json.loads(evaluated.stdout)["summary"]["pixel_cos"]["mean"]
    assert 0.8 < cos < 0.99999  # lossy, and not broken
    full = tmp_path / "full"
    if quantised_fewer:
        old = invoke("compile", OPSET11, "--target", "openvino", "-o", full, "--int8", photos["calib"],
                     "--keep-float", "")  # the older spelling: still works, with a warning
        assert old.exit_code == 0 and "--int8 CALIB.info is deprecated" in old.stderr
        assert fake < _int8_ops(full / "model.xml")


def test_compile_int8_refuses_an_unknown_layer_and_writes_nothing(photos, tmp_path):
    out = tmp_path / "ov"
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", out, "--int8", "--data", photos["calib"],
                    "--keep-float", "nope")
    assert result.exit_code == 2 and "keep-float 'nope' is none of first-last" in result.output
    assert not out.exists()


def test_compile_int8_without_data_is_one_line(tmp_path):
    result = invoke("compile", OPSET11, "--target", "openvino", "-o", tmp_path / "ov", "--int8")
    assert result.exit_code == 2 and "give --data INFO" in result.stderr
    assert not (tmp_path / "ov").exists()
