"""prep's normalisation, resize modes, layout and channel order, against what torchvision and
the YOLO exporters do (reproduced from their documented formulas: torchvision is not installed)."""

import json

import numpy as np
import pytest
from PIL import Image

from models import invoke


@pytest.fixture
def photo(tmp_path):
    """One 40 x 60 (height x width) picture: left half red-ish, right half blue-ish, with noise."""
    src = tmp_path / "photos"
    src.mkdir()
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    pixels[:, :30, 0], pixels[:, 30:, 2] = 250, 240
    Image.fromarray(pixels).save(src / "p.png")
    return src


def _prep(photo, out, *options):
    result = invoke("prep", photo, "-o", out, *options)
    assert result.exit_code == 0, result.stderr
    return np.load(out / "p.npy")


def test_mean_std_equals_torchvision_normalize(tmp_path, photo):
    torch = pytest.importorskip("torch")
    got = _prep(photo, tmp_path / "o", "--size", "24,32", "--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225")
    resized = np.asarray(Image.open(photo / "p.png").convert("RGB").resize((32, 24), Image.BICUBIC))
    # ToTensor, then Normalize as torchvision documents it: (tensor - mean[:, None, None]) / std[:, None, None]
    tensor = torch.from_numpy(resized.transpose(2, 0, 1) / 255)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    expected = ((tensor - mean[:, None, None]) / std[:, None, None]).numpy()
    assert got.dtype == np.float32 and got.shape == (3, 24, 32)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    imagenet = _prep(photo, tmp_path / "preset", "--size", "24,32", "--norm", "imagenet")
    np.testing.assert_array_equal(imagenet, got)
    recorded = json.loads((tmp_path / "o" / "prep.json").read_text())
    assert recorded["mean"] == [0.485, 0.456, 0.406] and recorded["size"] == [24, 32]


def test_norm_presets_are_the_old_ranges_bit_for_bit(tmp_path, photo):
    cyclegan = _prep(photo, tmp_path / "c", "--size", 16, "--norm", "cyclegan")
    default = _prep(photo, tmp_path / "d", "--size", 16)
    unit = _prep(photo, tmp_path / "u", "--size", 16, "--norm", "unit")
    np.testing.assert_array_equal(cyclegan, default)
    result = invoke("prep", photo, "-o", tmp_path / "r", "--size", 16, "--range", "0..1")
    assert result.exit_code == 0 and "--range is deprecated" in result.stderr and "--norm unit" in result.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "p.npy"), unit)
    resized = np.asarray(Image.open(photo / "p.png").convert("RGB").resize((16, 16), Image.BICUBIC), np.float32)
    np.testing.assert_array_equal(default, resized.transpose(2, 0, 1) / np.float32(127.5) - np.float32(1))


def test_letterbox_keeps_the_aspect_and_pads_evenly_with_the_fill(tmp_path, photo):
    got = _prep(photo, tmp_path / "o", "--size", 30, "--resize", "letterbox", "--dtype", "uint8", "--fill", 7)
    # 60 x 40 scaled by 0.5 -> 30 x 20 pixels, centred: 5 rows of fill above and below
    assert got.shape == (3, 30, 30)
    assert (got[:, :5] == 7).all() and (got[:, 25:] == 7).all()
    inner = np.asarray(Image.open(photo / "p.png").convert("RGB").resize((30, 20), Image.BICUBIC)).transpose(2, 0, 1)
    np.testing.assert_array_equal(got[:, 5:25], inner)
    default_fill = _prep(photo, tmp_path / "d", "--size", 30, "--resize", "letterbox", "--norm", "unit")
    np.testing.assert_allclose(default_fill[:, 0, 0], [114 / 255] * 3, rtol=1e-6)


def test_center_crop_covers_then_cuts_the_centre(tmp_path, photo):
    got = _prep(photo, tmp_path / "o", "--size", 20, "--resize", "center-crop", "--dtype", "uint8")
    # torchvision Resize(20) + CenterCrop(20): shorter side 40 -> 20 (30 x 20), crop columns 5..25
    scaled = np.asarray(Image.open(photo / "p.png").convert("RGB").resize((30, 20), Image.BICUBIC))
    np.testing.assert_array_equal(got, scaled[:, 5:25].transpose(2, 0, 1))


def test_keep_aspect_scales_the_shorter_side_only(tmp_path, photo):
    got = _prep(photo, tmp_path / "o", "--size", 20, "--resize", "keep-aspect", "--dtype", "uint8")
    assert got.shape == (3, 20, 30)


def test_nhwc_and_bgr(tmp_path, photo):
    nchw = _prep(photo, tmp_path / "a", "--size", 8, "--norm", "imagenet")
    nhwc_bgr = _prep(photo, tmp_path / "b", "--size", 8, "--norm", "imagenet", "--layout", "nhwc", "--bgr")
    assert nhwc_bgr.shape == (8, 8, 3)
    np.testing.assert_array_equal(nhwc_bgr, nchw[::-1].transpose(1, 2, 0))
    assert nhwc_bgr[:, :4, 2].mean() > nhwc_bgr[:, :4, 0].mean()  # the red left half is in the last channel


@pytest.mark.parametrize("options, message", [
    (("--mean", "0.5,0.5,0.5"), "--mean and --std together"),
    (("--mean", "0.5,0.5", "--std", "1,1,1"), "3 comma-separated numbers"),
    (("--mean", "0,0,0", "--std", "1,0,1"), "std must not be 0"),
    (("--norm", "imagenet", "--dtype", "uint8"), "uint8 samples are not normalised"),
    (("--fill", "3"), "--resize letterbox"),
    (("--size", "0,4"), "positive integers"),
    (("--norm", "unit", "--range", "0..1"), "not both"),
])
def test_bad_prep_options_are_one_line_and_leave_nothing(tmp_path, photo, options, message):
    result = invoke("prep", photo, "-o", tmp_path / "o", *options)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
