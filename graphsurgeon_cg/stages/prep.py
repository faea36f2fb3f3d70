"""prep: images -> one ``.npy`` per image + an info file, like the reference preprocessing.

The reference side of the vendor guide: open, RGB (gray and RGBA converted, as CycleGAN's own
loader does with ``convert('RGB')``), EXIF orientation applied, resize to size x size
(bicubic), ToTensor + Normalize(0.5, 0.5), i.e. ``x / 127.5 - 1`` in [-1, 1], CHW; with
``value_range="0..1"`` ToTensor alone, ``x / 255`` (models such as fast style transfer). With
``dtype="uint8"`` the CHW image is kept as bytes, for models that normalise inside the graph.
A file that cannot be read is skipped with a warning; one bad file never aborts a dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..check.images import RESAMPLE, VALUE_RANGES, load_image
from ..core.errors import InputError, first_line
from ..core.modelio import check_output_folder, staged_folder, within
from .dataset import Sample, write_info


@dataclass
class PrepResult:
    info: Path
    written: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why)


def prep(src_dir: str | os.PathLike, dst_dir: str | os.PathLike, size: int = 256, resample: str = "bicubic",
         dtype: str = "float32", warn: Callable[[str], None] = lambda m: None, progress: bool = True,
         value_range: str = "-1..1") -> PrepResult:
    src, dst = Path(src_dir), Path(dst_dir)
    if not src.is_dir():
        raise InputError(f"no such folder: {src}" if not src.exists() else f"{src} is not a folder")
    if size < 1:
        raise InputError(f"the image size must be positive, got {size}")
    if resample not in RESAMPLE:
        raise InputError(f"resample must be one of {', '.join(RESAMPLE)}")
    if dtype not in ("float32", "uint8"):
        raise InputError("dtype must be float32 or uint8")
    if value_range not in VALUE_RANGES:
        raise InputError(f"the value range must be one of {', '.join(VALUE_RANGES)}, got {value_range!r}")
    if within(src, dst):
        raise InputError(f"the output folder {dst} is or contains the images' folder {src}; choose another")
    check_output_folder(dst)
    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"{src} holds no files")
    with staged_folder(dst) as staging:  # nothing is left behind unless it all worked
        result = _prep_files(files, src, staging, size, resample, dtype, warn, progress, value_range)
    return PrepResult(info=dst / result.info.name, written=result.written, skipped=result.skipped)


def _prep_files(files: list[Path], src: Path, dst: Path, size: int, resample: str, dtype: str,
                warn: Callable[[str], None], progress: bool, value_range: str = "-1..1") -> PrepResult:
    from tqdm import tqdm

    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    used: set[str] = set()
    for path in tqdm(files, desc="prep", unit="img", disable=None if progress else True):
        try:
            arr, width, height = load_image(path, size, resample, dtype, value_range)
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
