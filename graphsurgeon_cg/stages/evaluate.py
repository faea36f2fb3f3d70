"""eval: accuracy of outputs against a reference, per image, the vendor guide's way.

Per image, the metrics of ``check.metrics`` (the same ones the numeric check and the report
use): the vendor metric (``torch.mean(torch.cosine_similarity(a, b))``, dim=1), flat cosine,
max abs difference, PSNR and SSIM with the reference's peak-to-peak as data range (2 for
generator outputs in [-1, 1]). The score is the mean over images; the guide's target is 0.99.
One-channel outputs have no meaningful per-pixel cosine and are judged by the flat cosine
(``summary["judged_by"]`` says which). Either two folders of outputs, or two models run on
the same info file (outputs compared in memory, batch by batch).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..check.backends import OrtBackend, Runner, backend_for
from ..check.metrics import Metrics, meets, score, summarise
from ..core.errors import InputError, NumericCheckFailed
from ..core.modelio import check_writable
from .dataset import Sample, load_sample, read_info
from .infer import batches

WORST = 5


@dataclass(frozen=True)
class MeanMin:
    """The mean and the minimum of one metric over the samples."""

    mean: float
    min: float


@dataclass
class EvalResult:
    scores: list[Metrics]
    summary: dict = field(default_factory=dict)  # check.metrics.summarise's

    @classmethod
    def from_scores(cls, scores: list[Metrics]) -> EvalResult:
        """The result of per-sample scores (``check.metrics.score``), summarised."""
        return cls(scores, summarise(scores))

    def stat(self, key: str) -> MeanMin | None:
        """Mean and min of ``pixel_cos``, ``cos``, ``psnr_db`` or ``ssim`` over the samples (None
        where undefined: a PSNR where every output is identical to its reference)."""
        stats = self.summary.get(key)
        return MeanMin(stats["mean"], stats["min"]) if stats else None

    @property
    def judged(self) -> MeanMin | None:
        """The judged cosine (``judged_by``): what bars and gates read."""
        return self.stat(self.judged_by)

    @property
    def judged_by(self) -> str:
        return str(self.summary.get("judged_by", "pixel_cos"))

    @property
    def worst(self) -> list[Metrics]:
        return sorted(self.scores, key=lambda s: (np.nan_to_num(s.judged_cos, nan=-2.0)))[:WORST]

    def as_dict(self) -> dict:
        return {"summary": self.summary, "worst": [s.as_dict() for s in self.worst],
                "images": [s.as_dict() for s in self.scores]}

    def gate(self, min_cos: float) -> None:
        """Raise ``NumericCheckFailed`` unless the mean judged cosine reaches ``min_cos``
        (NaN never does)."""
        mean = self.judged.mean if self.judged else None
        if not meets(mean, min_cos):
            worst = ", ".join(f"{s.name} ({s.judged_cos:.4f})" for s in self.worst)
            raise NumericCheckFailed(f"mean {self.judged_by} {mean if mean is None else f'{mean:.6f}'} "
                                     f"is below {min_cos}; worst images: {worst}")

    def write_csv(self, path: str | os.PathLike) -> None:
        """The per-image scores, written atomically (a temporary file renamed into place)."""
        path = check_writable(path)
        rows = [s.as_dict() for s in self.scores]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        try:  # like save_model: written in a temporary folder beside it, renamed into place
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.") as tmp:
                (Path(tmp) / path.name).write_text(text.getvalue(), newline="")
                os.replace(Path(tmp) / path.name, path)
        except OSError as exc:
            raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None


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
    return EvalResult.from_scores([score(stem, np.load(ref_files[stem]), np.load(out_files[stem]))
                                   for stem in sorted(ref_files)])


def evaluate_models(ref_model: str | os.PathLike, model: str | os.PathLike, info: str | os.PathLike,
                    batch: int = 16, threads: int | None = None, provider: str = "cpu",
                    backend: str = "ort") -> EvalResult:
    """Run both models over the info file and compare their first outputs image by image:
    ``ref_model`` on ONNX Runtime (``provider``), ``model`` on ``backend`` (``openvino``: the
    compiled model, an ONNX file or an OpenVINO IR, against ORT on the same inputs)."""
    if batch < 1:
        raise InputError(f"the batch size must be at least 1, got {batch}")
    samples = read_info(info)
    ref_session = OrtBackend(provider=provider, threads=threads).load(ref_model)
    session = backend_for(backend, provider=provider if backend == "ort" else "cpu", threads=threads).load(model)
    return EvalResult.from_scores(score_samples(ref_session, session, samples, batch))


def score_samples(ref_runner: Runner, runner: Runner, samples: list[Sample], batch: int,
                  read: Callable[[Sample], np.ndarray] = load_sample) -> list[Metrics]:
    """Per-sample metrics of ``runner``'s first output against ``ref_runner``'s (``read``: see
    ``infer.batches``)."""
    scores: list[Metrics] = []
    reference: dict[str, np.ndarray] = {}
    ref_stream = batches(ref_runner, samples, batch, read=read)
    for chunk, out, _ in batches(runner, samples, batch, read=read):
        for i, sample in enumerate(chunk):
            while sample.stem not in reference:  # the models may run different (static) batch sizes
                ref_chunk, ref_out, _ = next(ref_stream)
                reference.update((s.stem, ref_out[0][j]) for j, s in enumerate(ref_chunk))
            scores.append(score(sample.stem, reference.pop(sample.stem), out[0][i]))
    return scores
