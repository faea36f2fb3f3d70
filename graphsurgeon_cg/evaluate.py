"""eval: accuracy of outputs against a reference, per image, the vendor guide's way.

Per image: the vendor metric (``torch.mean(torch.cosine_similarity(a, b))`` with dim=1: the
cosine over channels at each pixel, averaged over pixels), flat cosine, max abs difference,
PSNR and SSIM (scikit-image) with a data range of 2 (generator outputs lie in [-1, 1]). The
score is the mean over images; the guide's target is 0.99. Either two folders of outputs, or
two models run on the same info file (outputs compared in memory, batch by batch).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .dataset import read_info
from .errors import InputError
from .infer import batches
from .numeric import flat_cosine, pixel_cosine
from .runtime import open_session

DATA_RANGE = 2.0
WORST = 5


@dataclass
class ImageScore:
    name: str
    pixel_cos: float
    cos: float
    max_abs: float
    psnr_db: float | None  # None: identical
    ssim: float | None  # None: not an image-shaped output


@dataclass
class EvalResult:
    scores: list[ImageScore]
    summary: dict = field(default_factory=dict)

    @property
    def worst(self) -> list[ImageScore]:
        return sorted(self.scores, key=lambda s: s.pixel_cos)[:WORST]

    def as_dict(self) -> dict:
        return {"summary": self.summary, "worst": [asdict(s) for s in self.worst],
                "images": [asdict(s) for s in self.scores]}

    def write_csv(self, path: str | os.PathLike) -> None:
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(asdict(self.scores[0])))
            writer.writeheader()
            writer.writerows(asdict(s) for s in self.scores)


def score(name: str, ref: np.ndarray, out: np.ndarray) -> ImageScore:
    """All metrics for one output sample (CHW for an image)."""
    from skimage.metrics import structural_similarity

    ref = np.asarray(ref, dtype=np.float64)
    out = np.asarray(out, dtype=np.float64)
    if ref.shape != out.shape:
        raise InputError(f"{name}: shapes differ, {ref.shape} vs {out.shape}")
    mse = float(np.mean((ref - out) ** 2))
    ssim = None
    if ref.ndim == 3 and min(ref.shape[1:]) >= 7:
        ssim = float(structural_similarity(ref, out, channel_axis=0, data_range=DATA_RANGE))
    return ImageScore(name=name, pixel_cos=pixel_cosine(ref[None], out[None]), cos=flat_cosine(ref, out),
                      max_abs=float(np.abs(ref - out).max()),
                      psnr_db=None if mse == 0 else 10 * math.log10(DATA_RANGE**2 / mse), ssim=ssim)


def _summarise(scores: list[ImageScore]) -> dict:
    def stats(key):
        values = [getattr(s, key) for s in scores if getattr(s, key) is not None]
        return {"mean": float(np.mean(values)), "min": float(np.min(values))} if values else None

    return {"images": len(scores), "pixel_cos": stats("pixel_cos"), "cos": stats("cos"),
            "max_abs": {"mean": float(np.mean([s.max_abs for s in scores])),
                        "max": float(np.max([s.max_abs for s in scores]))},
            "psnr_db": stats("psnr_db"), "ssim": stats("ssim")}


def evaluate_dirs(ref_dir: str | os.PathLike, out_dir: str | os.PathLike) -> EvalResult:
    """Compare the ``.npy`` outputs of two folders, paired by file name."""
    ref, out = Path(ref_dir), Path(out_dir)
    for folder in (ref, out):
        if not folder.is_dir():
            raise InputError(f"no such folder: {folder}" if not folder.exists() else f"{folder} is not a folder")
    ref_files = {p.stem: p for p in ref.glob("*.npy")}
    out_files = {p.stem: p for p in out.glob("*.npy")}
    if not ref_files:
        raise InputError(f"{ref} holds no .npy outputs")
    if not out_files:
        raise InputError(f"{out} holds no .npy outputs")
    only_ref = sorted(set(ref_files) - set(out_files))
    only_out = sorted(set(out_files) - set(ref_files))
    if only_ref or only_out:
        parts = [f"{len(only_ref)} missing from {out} (e.g. {only_ref[0]}.npy)" if only_ref else "",
                 f"{len(only_out)} not in {ref} (e.g. {only_out[0]}.npy)" if only_out else ""]
        raise InputError("the folders do not pair up: " + "; ".join(p for p in parts if p))
    scores = [score(stem, np.load(ref_files[stem]), np.load(out_files[stem])) for stem in sorted(ref_files)]
    return EvalResult(scores, _summarise(scores))


def evaluate_models(ref_model: str | os.PathLike, model: str | os.PathLike, info: str | os.PathLike,
                    batch: int = 16, threads: int | None = None, provider: str = "cpu") -> EvalResult:
    """Run both models over the info file and compare their first outputs image by image."""
    if batch < 1:
        raise InputError(f"--batch must be at least 1, got {batch}")
    samples = read_info(info)
    ref_session = open_session(ref_model, provider, threads)
    session = open_session(model, provider, threads)
    scores, reference = [], {}
    ref_stream = batches(ref_session, samples, batch)
    for chunk, out, _ in batches(session, samples, batch):
        for i, sample in enumerate(chunk):
            while sample.stem not in reference:  # the models may run different (static) batch sizes
                ref_chunk, ref_out, _ = next(ref_stream)
                reference.update((s.stem, ref_out[0][j]) for j, s in enumerate(ref_chunk))
            scores.append(score(sample.stem, reference.pop(sample.stem), out[0][i]))
    return EvalResult(scores, _summarise(scores))
