"""Images in and out, as the reference preprocessing and the vendor scripts treat them.

In: open, EXIF orientation applied, RGB (gray and RGBA converted, as CycleGAN's own loader
does with ``convert('RGB')``), resize (bicubic by default), ``x / 127.5 - 1`` in [-1, 1], CHW
(or the CHW bytes with ``dtype="uint8"``). Out: a CHW array in [-1, 1] (or uint8) as a picture.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
RESAMPLE = ("bicubic", "bilinear", "lanczos", "nearest", "box", "hamming")
VALUE_RANGES = ("-1..1", "0..1")  # the reference's Normalize(0.5, 0.5), or ToTensor alone


def load_image(path: Path, size: int | tuple[int, int], resample: str = "bicubic",
               dtype: str = "float32", value_range: str = "-1..1") -> tuple[np.ndarray, int, int]:
    """One image as a CHW array (float32 in [-1, 1], or in [0, 1] with ``value_range="0..1"``,
    or uint8) resized to ``size`` (square, or (width, height)), and its original width and height."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, EXIF oddities
        with Image.open(path) as opened:
            img: Image.Image = ImageOps.exif_transpose(opened)
            width, height = img.size
            target = (size, size) if isinstance(size, int) else (size[0], size[1])
            img = img.convert("RGB").resize(target, getattr(Image.Resampling, resample.upper()))
    arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    if dtype == "uint8":
        return np.ascontiguousarray(arr), width, height
    if value_range == "0..1":
        return arr.astype(np.float32) / np.float32(255.0), width, height
    return (arr.astype(np.float32) / np.float32(127.5) - np.float32(1.0)), width, height


def display_range(chw: np.ndarray) -> tuple[float, float]:
    """The value range a float image is shown in: [0, 1] when its values lie there (sigmoid
    outputs, inputs scaled to 0..1), else [-1, 1] (tanh outputs, the reference normalisation)."""
    arr = np.asarray(chw)
    if arr.dtype != np.uint8 and arr.size and np.isfinite(arr).all() and arr.min() >= 0 and arr.max() <= 1:
        return (0.0, 1.0)
    return (-1.0, 1.0)


def to_image(chw: np.ndarray, value_range: tuple[float, float] = (-1.0, 1.0)):
    """A CHW array (uint8, or float in ``value_range``, [-1, 1] like generator outputs by
    default; HWC uint8 too) as a PIL image, or None when it is not image-shaped."""
    from PIL import Image

    arr = np.asarray(chw)
    if arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[0] not in (1, 3) and arr.shape[2] in (1, 3):
        arr = arr.transpose(2, 0, 1)  # HWC bytes from a postproc-fold(layout=nhwc) model
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        return None
    if arr.dtype != np.uint8:
        low, high = value_range
        scaled = (np.nan_to_num(arr.astype(np.float32)) - low) * (255.0 / (high - low))
        arr = np.clip(scaled, 0, 255).round().astype(np.uint8)
    hwc = arr.transpose(1, 2, 0)
    return Image.fromarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc)


def save_png(chw: np.ndarray, path: Path) -> None:
    image = to_image(chw)
    if image is not None:  # not an image: the .npy is the output
        image.save(path)
