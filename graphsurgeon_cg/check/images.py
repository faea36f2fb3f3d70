"""Images in and out, as the reference preprocessing and the vendor scripts treat them.

In (``Preprocess``, what ``prep`` does to each image): open, EXIF orientation applied, RGB
(gray and RGBA converted, as CycleGAN's own loader does with ``convert('RGB')``), resize
(``squash``, ``keep-aspect``, ``letterbox`` or ``center-crop``; bicubic by default), then
torchvision's ``ToTensor`` + ``Normalize(mean, std)``: ``(x / 255 - mean) / std`` per channel
(default mean = std = 0.5: ``x / 127.5 - 1`` in [-1, 1]), CHW or HWC, RGB or BGR (or the bytes
with ``dtype="uint8"``). Out: a CHW array in [-1, 1] (or uint8) as a picture.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
RESAMPLE = ("bicubic", "bilinear", "lanczos", "nearest", "box", "hamming")
VALUE_RANGES = ("-1..1", "0..1")  # the reference's Normalize(0.5, 0.5), or ToTensor alone
RESIZE_MODES = ("squash", "keep-aspect", "letterbox", "center-crop")
LAYOUTS = ("nchw", "nhwc")
NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {  # name -> (mean, std), on the 0..1 scale
    "cyclegan": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # Normalize(0.5, 0.5): [-1, 1], the --range -1..1
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision's classification models
    "unit": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),  # ToTensor alone: [0, 1], the --range 0..1
}
RANGE_NORMS = {"-1..1": "cyclegan", "0..1": "unit"}
LETTERBOX_FILL = 114  # the grey YOLO exporters (ultralytics, YOLOX) pad with, on the 0..255 scale


@dataclass(frozen=True)
class Preprocess:
    """What ``prep`` does to each image (recorded beside the info file as ``prep.json``).

    ``size``: (height, width) of the result. ``resize``: ``squash`` stretches to it (the
    aspect ratio is lost); ``letterbox`` scales the image to fit inside it, aspect kept, and pads
    the rest evenly on both sides with ``fill`` (0..255, on every channel, before normalising);
    ``center-crop`` scales it to cover it, aspect kept, and cuts the centre out (torchvision's
    ``Resize(min(size))`` + ``CenterCrop(size)`` for a square size); ``keep-aspect`` scales the
    shorter side to ``min(size)`` (torchvision's ``Resize(int)``) and neither pads nor crops, so
    samples differ in size: for models with dynamic height and width, run one at a time.
    ``mean``/``std``: per channel, R, G, B order, on the 0..1 scale. ``bgr`` reverses the
    channels after normalising; ``layout`` ``nhwc`` puts them last.
    """

    size: tuple[int, int] = (256, 256)
    resize: str = "squash"
    resample: str = "bicubic"
    dtype: str = "float32"
    mean: tuple[float, ...] = NORMS["cyclegan"][0]
    std: tuple[float, ...] = NORMS["cyclegan"][1]
    layout: str = "nchw"
    bgr: bool = False
    fill: int = LETTERBOX_FILL

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 1:
            raise InputError(f"the image size must be positive, got {self.size}")
        for name, value, allowed in (("resize", self.resize, RESIZE_MODES), ("resample", self.resample, RESAMPLE),
                                     ("layout", self.layout, LAYOUTS), ("dtype", self.dtype, ("float32", "uint8"))):
            if value not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise InputError("mean and std need one value per channel: R,G,B")
        if min(abs(s) for s in self.std) == 0:
            raise InputError("std must not be 0")
        if not 0 <= self.fill <= 255:
            raise InputError(f"the letterbox fill must be in 0..255, got {self.fill}")

    def describe(self) -> dict:
        record = asdict(self)
        if self.dtype == "uint8":  # not applied: the model normalises in the graph
            record.pop("mean"), record.pop("std")
        return record


def load_image(path: Path, size: int | tuple[int, int], resample: str = "bicubic",
               dtype: str = "float32", value_range: str = "-1..1") -> tuple[np.ndarray, int, int]:
    """One image as a CHW array (float32 in [-1, 1], or in [0, 1] with ``value_range="0..1"``,
    or uint8) squashed to ``size`` (square, or (width, height)), and its original width and height."""
    width, height = (size, size) if isinstance(size, int) else (size[0], size[1])
    mean, std = NORMS[RANGE_NORMS[value_range]]
    return preprocess(path, Preprocess((height, width), resample=resample, dtype=dtype, mean=mean, std=std))


def preprocess(path: Path, spec: Preprocess) -> tuple[np.ndarray, int, int]:
    """One image as ``spec`` says, and its original width and height."""
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, EXIF oddities
        with Image.open(path) as opened:
            img: Image.Image = ImageOps.exif_transpose(opened)
            width, height = img.size
            img = _resized(img.convert("RGB"), spec)
    arr = np.asarray(img, dtype=np.uint8)  # HWC
    if spec.dtype == "float32":
        arr = _normalised(arr, spec.mean, spec.std)
    if spec.bgr:
        arr = arr[..., ::-1]
    if spec.layout == "nchw":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr), width, height


def _resized(img, spec: Preprocess):
    from PIL import Image

    method = getattr(Image.Resampling, spec.resample.upper())
    (height, width), (w, h) = spec.size, img.size
    if spec.resize == "squash":
        return img.resize((width, height), method)
    if spec.resize == "keep-aspect":
        short = min(spec.size)
        # torchvision's Resize(int): the longer side truncated, int(short * long / shorter)
        target = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        return img.resize(target, method)
    scale = min(width / w, height / h) if spec.resize == "letterbox" else max(width / w, height / h)
    scaled = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = img.resize(scaled, method)
    if spec.resize == "letterbox":
        canvas = Image.new("RGB", (width, height), (spec.fill,) * 3)
        canvas.paste(img, ((width - scaled[0]) // 2, (height - scaled[1]) // 2))
        return canvas
    # torchvision's CenterCrop: offsets rounded, int(round((side - crop) / 2))
    left, top = int(round((scaled[0] - width) / 2)), int(round((scaled[1] - height) / 2))
    return img.crop((left, top, left + width, top + height))


def _normalised(hwc: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    if tuple(mean) == NORMS["cyclegan"][0] and tuple(std) == NORMS["cyclegan"][1]:
        # x / 127.5 - 1 exactly as before: preproc-fold's in-graph normalisation is bit-identical to it
        return hwc.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    # ToTensor then Normalize, in float32 as torchvision computes them
    unit = hwc.astype(np.float32) / np.float32(255.0)
    return (unit - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


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
