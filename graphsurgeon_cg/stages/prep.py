"""prep: images -> one ``.npy`` per image + an info file, like the reference preprocessing.

The reference side of the vendor guide: open, RGB (gray and RGBA converted, as CycleGAN's own
loader does with ``convert('RGB')``), EXIF orientation applied, resize to size x size
(bicubic), ToTensor + Normalize(0.5, 0.5), i.e. ``x / 127.5 - 1`` in [-1, 1], CHW; with
``value_range="0..1"`` ToTensor alone, ``x / 255`` (models such as fast style transfer). Other
models: ``mean``/``std`` (torchvision's Normalize on the 0..1 scale, e.g. ImageNet's),
``resize`` (``letterbox`` for YOLO-style detectors, ``center-crop`` for classifiers, see
``check.images.Preprocess``), ``layout`` and ``bgr``. With ``dtype="uint8"`` the image is kept
as bytes, for models that normalise inside the graph. The info file's format (the vendor
guide's) has no room for the preprocessing: it is recorded beside it, in ``prep.json``.
A file that cannot be read is skipped with a warning; one bad file never aborts a dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..check.images import LETTERBOX_FILL, NORMS, RANGE_NORMS, RESAMPLE, VALUE_RANGES, Preprocess, preprocess
from ..core.errors import InputError, first_line
from ..core.modelio import check_output_folder, staged_folder, within
from .dataset import Sample, write_info


@dataclass
class PrepResult:
    info: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def prep(src_dir: str | os.PathLike, dst_dir: str | os.PathLike, size: int | tuple[int, int] = 256,
         resample: str = "bicubic", dtype: str = "float32", warn: Callable[[str], None] = lambda m: None,
         progress: bool = True, value_range: str = "-1..1", *, norm: str | None = None,
         mean: Sequence[float] | None = None, std: Sequence[float] | None = None, resize: str = "squash",
         layout: str = "nchw", bgr: bool = False, fill: int | None = None) -> PrepResult:
    """``size``: SIZE x SIZE, or (height, width). The normalisation: ``mean``/``std`` when given,
    else the preset ``norm`` (``cyclegan``, ``imagenet``, ``unit``), else ``value_range``."""
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise InputError(f"no such folder: {src}" if not src.exists() else f"{src} is not a folder")
    spec = preprocess_spec(size, resample, dtype, value_range, norm, mean, std, resize, layout, bgr, fill)
    if within(src, dst):
        raise InputError(f"the output folder {dst} is or contains the images' folder {src}; choose another")
    check_output_folder(dst)
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{src} holds no files")
    with staged_folder(dst) as staging:  # nothing is left behind unless it all worked
        result = _prep_files(files, src, staging, spec, warn, progress)
        (staging / "prep.json").write_text(json.dumps(spec.describe(), indent=2) + "\n")
    return PrepResult(info=dst / result.info.name, written=result.written, skipped=result.skipped)


def preprocess_spec(size: int | tuple[int, int] = 256, resample: str = "bicubic", dtype: str = "float32",
                    value_range: str = "-1..1", norm: str | None = None, mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None, resize: str = "squash", layout: str = "nchw",
                    bgr: bool = False, fill: int | None = None) -> Preprocess:
    """prep's options as one ``Preprocess``, with one-line errors for the wrong ones."""
    if resample not in RESAMPLE:
        raise InputError(f"resample must be one of {', '.join(RESAMPLE)}")
    if value_range not in VALUE_RANGES:
        raise InputError(f"the value range must be one of {', '.join(VALUE_RANGES)}, got {value_range!r}")
    if norm is not None and norm not in NORMS:
        raise InputError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if (mean is None) != (std is None):
        raise InputError("give --mean and --std together")
    if dtype == "uint8" and (mean is not None or norm is not None):
        raise InputError("uint8 samples are not normalised: leave out --mean/--std/--norm, or use float32")
    if fill is not None and resize != "letterbox":
        raise InputError("a fill value is for --resize letterbox")
    preset = NORMS[norm or RANGE_NORMS[value_range]]
    height, width = (size, size) if isinstance(size, int) else size
    return Preprocess((int(height), int(width)), resize=resize, resample=resample, dtype=dtype,
                      mean=tuple(float(m) for m in (mean if mean is not None else preset[0])),
                      std=tuple(float(s) for s in (std if std is not None else preset[1])),
                      layout=layout, bgr=bgr, fill=LETTERBOX_FILL if fill is None else fill)


def _prep_files(files: list[Path], src: Path, dst: Path, spec: Preprocess,
                warn: Callable[[str], None], progress: bool) -> PrepResult:
    from tqdm import tqdm

    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    used: set[str] = set()
    for path in tqdm(files, desc="prep", unit="img", disable=None if progress else True):
        try:
            arr, width, height = preprocess(path, spec)
        except Exception as exc:  # PIL raises many types for broken or unknown files
            reason = first_line(exc, limit=10_000)
            skipped.append((str(path), reason))
            warn(f"warning: skipped {path}: {reason}")
            continue
        stem = path.stem if path.stem not in used else path.name.replace(".", "_")
        used.add(stem)
        out = dst / f"{stem}.npy"
        np.save(out, arr)
        samples.append(Sample(len(samples), out, width, height))
    if not samples:
        raise InputError(f"none of the {len(files)} files in {src} is a readable image")
    info = dst / f"{src.resolve().name}.info"
    write_info(info, samples)
    return PrepResult(info=info, written=len(samples), skipped=skipped)
