"""How far a rewrite may move a model's outputs. Pure Python: no numpy, no runtime.

A pass declares a ``Bound``; the pass manager adds up the bounds of a pipeline (errors of
rewrites applied one after the other add up) and the numeric checker judges outputs against
it. Exact passes declare ``EXACT``: float32 noise only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXACT_MAX_ABS = 1e-5


@dataclass(frozen=True)
class Bound:
    """``|new - ref| <= max_abs + rel * |ref|`` element-wise (when ``max_abs`` is set) and a
    cosine of at least ``min_cos`` (when set). The cosine judged is the vendor's per-pixel
    cosine for image outputs with two or more channels, the flat cosine otherwise (a cosine
    over one channel is only the sign of each pixel)."""

    max_abs: float | None = None
    rel: float = 0.0
    min_cos: float | None = None

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"|diff| <= {self.max_abs:g}" + (f" + {self.rel:g}*|ref|" if self.rel else ""))
        if self.min_cos is not None:
            parts.append(f"cosine >= {self.min_cos:g}")
        return " and ".join(parts) or "unbounded"

    @staticmethod
    def chain(bounds: Sequence[Bound]) -> Bound:
        """The bound of several rewrites applied one after the other: errors add up."""
        max_abs: float | None = None
        rel = 0.0
        if bounds and all(b.max_abs is not None for b in bounds):
            max_abs = sum(b.max_abs or 0.0 for b in bounds)
            rel = sum(b.rel for b in bounds)
        cos_losses = [1.0 - b.min_cos for b in bounds if b.min_cos is not None]
        min_cos = 1.0 - sum(cos_losses) if cos_losses else None
        return Bound(max_abs=max_abs, rel=rel, min_cos=min_cos)


EXACT = Bound(max_abs=EXACT_MAX_ABS)


def cosine_bound(min_cos: float) -> Bound:
    """The bound of a lossy pass judged by cosine alone (the usual one for image rewrites)."""
    return Bound(min_cos=min_cos)
