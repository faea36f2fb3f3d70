"""The one set of accuracy metrics, used alike by the numeric check, ``diff``, ``eval`` and
the report.

Per output and sample:

- ``max_abs``, ``mean_abs``: absolute differences.
- ``cos``: cosine similarity of the flattened tensors.
- ``pixel_cos``: the vendor guide's metric, ``torch.mean(torch.cosine_similarity(a, b))``
  with its default ``dim=1``: a cosine over the channel axis at every pixel (torch divides
  each vector by ``max(norm, 1e-8)``), averaged over pixels. Computed exactly as torch does,
  except where torch is degenerate: bit-identical pixels score 1 (torch scores pixels with a
  norm under 1e-8 near 0 even against themselves). It is ill-conditioned where pixels are near
  zero (a tiny change flips their cosine) and meaningless for one-channel outputs (a cosine
  over one value is its sign), so it is only defined (not ``None``) for outputs with two or
  more channels; those outputs are judged by the flat ``cos``.
- ``psnr_db``: ``10 log10(R^2 / MSE)`` with ``R`` the reference sample's peak-to-peak range
  (2 for a generator output spanning [-1, 1]; 1 when the reference is constant); ``None``
  when the outputs are identical (infinite PSNR).
- ``ssim``: scikit-image's SSIM over CHW images with the same data range (image outputs only).

Cosines are clamped to [-1, 1]; two all-zero tensors have cosine 1, a zero tensor against a
non-zero one 0. A NaN or infinity anywhere makes the metrics NaN, and NaN never passes a bar
(``meets``); in JSON it is ``null`` (``json_safe``). People read an infinite PSNR as
"identical" (``psnr_text``).

Verdicts (``compare_outputs`` with a ``Bound``): a cosine bound holds when the judged cosine
reaches it, or, where the cosine is ill-conditioned near zero, when the outputs are close
element-wise (``|diff| <= atol + rtol·|ref|``, ``core.bounds``); ``Comparison.judged`` says per
output which criterion decided, and ``Comparison.warnings`` flags outputs nearly constant on
the inputs (under ``FLAT_RANGE``), which any model would match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..core.bounds import Bound

TORCH_EPS = 1e-8

Outputs = Mapping[str, np.ndarray]


def meets(value: float | None, bar: float) -> bool:
    """Whether ``value`` reaches ``bar``; NaN, inf and missing values never do."""
    return value is not None and math.isfinite(value) and value >= bar


def _clamp(x: np.ndarray | float) -> Any:
    return np.clip(x, -1.0, 1.0)


def flat_cosine(ref: np.ndarray, new: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64).ravel()
    new = np.asarray(new, dtype=np.float64).ravel()
    if not (np.isfinite(ref).all() and np.isfinite(new).all()):
        return math.nan
    if np.array_equal(ref, new):
        return 1.0
    nr, nn = float(np.linalg.norm(ref)), float(np.linalg.norm(new))
    if nr == 0.0 or nn == 0.0:
        return 1.0 if nr == nn else 0.0
    return float(_clamp(ref @ new / (nr * nn)))


def pixel_cosine(ref: np.ndarray, new: np.ndarray) -> float | None:
    """The vendor metric over axis 1 of batched outputs (N x C x ...), averaged over pixels and
    samples; ``None`` when the output has fewer than two channels or no pixel axes."""
    ref = np.asarray(ref, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if ref.ndim < 3 or ref.shape[1] < 2:
        return None
    if not (np.isfinite(ref).all() and np.isfinite(new).all()):
        return math.nan
    nr = np.maximum(np.sqrt((ref * ref).sum(axis=1)), TORCH_EPS)
    nn = np.maximum(np.sqrt((new * new).sum(axis=1)), TORCH_EPS)
    cos = ((ref / np.expand_dims(nr, 1)) * (new / np.expand_dims(nn, 1))).sum(axis=1)
    cos = np.where((ref == new).all(axis=1), 1.0, cos)
    return float(np.mean(_clamp(cos)))


def data_range(ref: np.ndarray) -> float:
    ref = np.asarray(ref, dtype=np.float64)
    if not np.isfinite(ref).all() or ref.size == 0:
        return 1.0
    return float(np.ptp(ref)) or 1.0


def psnr(ref: np.ndarray, new: np.ndarray) -> float | None:
    """PSNR in dB of one sample, with the reference's peak-to-peak range; None: identical."""
    ref = np.asarray(ref, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if not (np.isfinite(ref).all() and np.isfinite(new).all()):
        return math.nan
    mse = float(np.mean((ref - new) ** 2))
    if mse == 0.0:
        return None
    peak = data_range(ref)
    return 10.0 * math.log10(peak * peak / mse)


def psnr_text(value: float | None, digits: int = 2, unit: str = "") -> str:
    """PSNR for people, spelt one way everywhere: ``None`` (identical outputs, an infinite
    PSNR) is "identical"; NaN is "nan"."""
    return "identical" if value is None else f"{value:.{digits}f}{unit}"


def ssim(ref: np.ndarray, new: np.ndarray) -> float | None:
    """SSIM of one CHW image sample (None when the sample is not image-shaped)."""
    ref = np.asarray(ref, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if ref.ndim != 3 or min(ref.shape[1:]) < 7 or not (np.isfinite(ref).all() and np.isfinite(new).all()):
        return None
    from skimage.metrics import structural_similarity

    return float(structural_similarity(ref, new, channel_axis=0, data_range=data_range(ref)))


@dataclass
class Metrics:
    """The metrics of one output, over one sample or several (see the module doc)."""

    name: str
    max_abs: float
    mean_abs: float
    cos: float
    pixel_cos: float | None
    psnr_db: float | None
    ssim: float | None = None
    samples: int = 1

    @property
    def judged_by(self) -> str:
        """The cosine that bars and gates judge: the vendor's for images, else the flat one."""
        return "pixel_cos" if self.pixel_cos is not None else "cos"

    @property
    def judged_cos(self) -> float:
        return self.pixel_cos if self.pixel_cos is not None else self.cos

    @property
    def finite(self) -> bool:
        return all(v is None or math.isfinite(v) for v in (self.max_abs, self.cos, self.pixel_cos, self.psnr_db))

    def as_dict(self) -> dict:
        return {**asdict(self), "judged_by": self.judged_by}


def measure(name: str, refs: Sequence[np.ndarray], news: Sequence[np.ndarray], with_ssim: bool = False) -> Metrics:
    """Metrics of one output over samples; each array is one sample *with* its batch axis."""
    ref_all = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in refs])
    new_all = np.concatenate([np.asarray(b, dtype=np.float64).ravel() for b in news])
    diff = np.abs(ref_all - new_all)
    finite = bool(np.isfinite(diff).all())
    pixel = [pixel_cosine(a, b) for a, b in zip(refs, news)]
    psnrs = [psnr(a, b) for a, b in zip(refs, news)]
    known = [p for p in psnrs if p is not None]
    ssims = [s for s in (ssim(a[0], b[0]) for a, b in zip(refs, news) if len(a) == 1) if s is not None] \
        if with_ssim else []
    return Metrics(
        name=name,
        max_abs=(float(diff.max()) if finite else math.nan) if diff.size else 0.0,
        mean_abs=(float(diff.mean()) if finite else math.nan) if diff.size else 0.0,
        cos=flat_cosine(ref_all, new_all),
        pixel_cos=None if pixel[0] is None else float(np.mean([p for p in pixel if p is not None])),
        psnr_db=float(np.mean(known)) if known else None,
        ssim=float(np.mean(ssims)) if ssims else None,
        samples=len(refs),
    )


def score(name: str, ref: np.ndarray, new: np.ndarray) -> Metrics:
    """All metrics of one output sample given without its batch axis (CHW for an image)."""
    ref = np.asarray(ref)
    new = np.asarray(new)
    if ref.shape != new.shape:
        from ..core.errors import InputError

        raise InputError(f"{name}: shapes differ, {ref.shape} vs {new.shape}")
    return measure(name, [ref[None]], [new[None]], with_ssim=True)


def summarise(scores: Sequence[Metrics]) -> dict:
    """Mean and min (max for ``max_abs``) of per-sample metrics; None where undefined."""
    def stats(key: str) -> dict | None:
        values = [getattr(s, key) for s in scores if getattr(s, key) is not None]
        if not values:
            return None
        return {"mean": float(np.mean(values)), "min": float(np.min(values))}

    return {"images": len(scores), "judged_by": scores[0].judged_by if scores else "pixel_cos",
            "pixel_cos": stats("pixel_cos"), "cos": stats("cos"),
            "max_abs": {"mean": float(np.mean([s.max_abs for s in scores])),
                        "max": float(np.max([s.max_abs for s in scores]))},
            "psnr_db": stats("psnr_db"), "ssim": stats("ssim")}


COSINE_WORDS = {"pixel_cos": "mean per-pixel cosine", "cos": "flat cosine"}
FLAT_RANGE = 1e-3  # a reference output spanning less than this on the check's inputs tests little


@dataclass
class Comparison:
    """Per-output metrics over all samples, and the bound violations if a bound was given.

    ``judged`` says per output which criterion decided (the cosine, or the element-wise
    ``atol``/``rtol`` test that stands in for it on near-zero outputs); ``warnings`` flags
    checks that test little (an output that is nearly constant on these inputs); ``inputs``
    says what the check ran on and ``bar`` where its cosine bar came from (set by callers)."""

    outputs: list[Metrics]
    samples: int
    violations: list[str] = field(default_factory=list)
    bound: Bound | None = None
    judged: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    inputs: str = ""
    bar: str = ""
    simulated: str = ""  # how the new model was run when not as the runtime runs it (float16 simulated)

    @property
    def ok(self) -> bool:
        return not self.violations

    def verdict(self) -> str:
        """``judged by mean per-pixel cosine >= 0.99 (target ascend's bar) on 4 samples of x.info``."""
        if self.bound is None:
            text = "no bound"
        else:
            text = self.bound.describe()
            kinds = {m.judged_by for m in self.outputs}
            if self.bound.min_cos is not None and len(kinds) == 1:
                text = text.replace("cosine", COSINE_WORDS[kinds.pop()])
            text = "judged by " + text + (f" ({self.bar})" if self.bar else "")
        text += f" on {self.inputs}" if self.inputs else f" on {self.samples} sample(s)"
        return text + (f" ({self.simulated})" if self.simulated else "")

    def as_dict(self) -> dict:
        return {"samples": self.samples, "ok": self.ok, "violations": self.violations,
                "bound": self.bound.describe() if self.bound else None, "bar": self.bar or None,
                "inputs": self.inputs or None, "simulated": self.simulated or None, "judged": self.judged,
                "warnings": self.warnings,
                "outputs": [m.as_dict() for m in self.outputs]}


def compare_outputs(refs: Sequence[Outputs], news: Sequence[Outputs], bound: Bound | None = None) -> Comparison:
    """Metrics per output over all samples; outputs are matched by name, else by position."""
    ref_names, new_names = list(refs[0]), list(news[0])
    if set(ref_names) == set(new_names):
        pairs = [(n, n) for n in ref_names]
    elif len(ref_names) == len(new_names):
        pairs = list(zip(ref_names, new_names))
    else:
        from ..core.errors import InputError

        raise InputError(f"the models have different outputs: {ref_names} vs {new_names}")
    result = Comparison(outputs=[], samples=len(refs), bound=bound)
    for ref_name, new_name in pairs:
        ref = [np.asarray(r[ref_name]) for r in refs]
        new = [np.asarray(n[new_name]) for n in news]
        if any(a.shape != b.shape for a, b in zip(ref, new)):
            result.violations.append(f"output '{ref_name}' changed shape {ref[0].shape} -> {new[0].shape}")
            continue
        m = measure(ref_name, ref, new)
        result.outputs.append(m)
        flat = _flat_note(m.name, ref)
        if flat:
            result.warnings.append(flat)
        if bound is not None:
            found, judged = _violations(m, ref, new, bound)
            result.violations.extend(found)
            result.judged[m.name] = judged
    return result


def _flat_note(name: str, refs: Sequence[np.ndarray]) -> str | None:
    """A warning when the reference output barely varies: any model that outputs about the
    same constant passes such a check (a detector's sigmoid map is ~0 on random inputs)."""
    values = np.concatenate([np.asarray(a, np.float64).ravel() for a in refs])
    if not values.size or not np.isfinite(values).all():
        return None
    spread = float(np.ptp(values))
    if spread >= FLAT_RANGE:
        return None
    return (f"output '{name}' is nearly constant on these inputs (it spans {spread:.3g}): the check tests "
            "little; judge on real samples (--data INFO or --inputs DIR)")


def _violations(m: Metrics, refs: Sequence[np.ndarray], news: Sequence[np.ndarray],
                bound: Bound) -> tuple[list[str], str]:
    """The bound's violations for one output, and the criterion that judged it."""
    if not m.finite:
        return [f"output '{m.name}' has NaN or infinite values or differences"], "finite values"
    ref = np.concatenate([np.abs(np.asarray(a, np.float64)).ravel() for a in refs])
    diff = np.concatenate([np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()
                           for a, b in zip(refs, news)])
    found, judged = [], []
    if bound.max_abs is not None:
        excess = diff - (bound.max_abs + bound.rel * ref) if diff.size else diff
        if excess.size and excess.max() > 0:
            would_pass = float(diff.max()) if not bound.rel else float(bound.max_abs + excess.max())
            found.append(f"output '{m.name}': max abs diff {m.max_abs:.3g} exceeds {bound.describe()} "
                         f"(max_abs {would_pass:.3g} would pass)")
        judged.append(f"max |diff| {m.max_abs:.3g} <= {bound.max_abs:g}" + (f" + {bound.rel:g}·|ref|" if bound.rel
                                                                          else ""))
    if bound.min_cos is not None:
        if meets(m.judged_cos, bound.min_cos):
            judged.append(f"{m.judged_by} {m.judged_cos:.6f} >= {bound.min_cos:.10g}")
        elif not diff.size or (diff <= bound.atol + bound.rtol * ref).all():
            # Polygraphy-style closeness: where outputs are near zero their cosine is noise
            judged.append(f"atol/rtol: max |diff| {m.max_abs:.3g} <= {bound.describe_close()} "
                          f"({m.judged_by} {m.judged_cos:.6f} is ill-conditioned this close to zero)")
        else:
            found.append(f"output '{m.name}': {m.judged_by} {m.judged_cos:.6f} is below {bound.min_cos:.10g}"
                         + ("" if m.pixel_cos is not None
                            else " (one-channel or non-image output: judged by the flat cosine)")
                         + f" and |diff| exceeds {bound.describe_close()} (max |diff| {m.max_abs:.3g})")
    return found, "; ".join(judged)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None, so that ``json.dumps`` writes
    valid JSON (``allow_nan=False`` then holds)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return json_safe(value.item())
    return value
