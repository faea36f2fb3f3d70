"""How far a rewrite may move a model's outputs. Pure Python: no numpy, no runtime.

A pass declares a ``Bound``; the pass manager combines the bounds of the passes that changed
the graph (errors of rewrites applied one after the other add up; a pass that changed nothing
adds nothing) and the numeric checker judges outputs against it, and each lossy pass's own
change against its own bound. Exact passes declare ``EXACT``: float32 noise only.

A cosine is ill-conditioned where outputs are near zero: two vectors of 1e-7 noise have any
cosine at all. So a cosine bound also holds, whatever the cosine, where the outputs are close
element-wise in the sense of Polygraphy and ``numpy.allclose``: ``|new - ref| <= atol + rtol·|ref|``
everywhere, with ``atol`` 1e-5 (``EXACT_MAX_ABS``, what exact passes may move) and ``rtol``
1e-3 by default. Outputs that close have a cosine of at least 1 - 5e-7 wherever the cosine
means anything, so the escape never lets a real change through a bar of 0.9999 or lower.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXACT_MAX_ABS = 1e-5
CLOSE_ATOL = EXACT_MAX_ABS
CLOSE_RTOL = 1e-3


@dataclass(frozen=True)
class Bound:
    """``|new - ref| <= max_abs + rel * |ref|`` element-wise (when ``max_abs`` is set) and a
    cosine of at least ``min_cos`` (when set). The cosine judged is the vendor's per-pixel
    cosine for image outputs with two or more channels, the flat cosine otherwise (a cosine
    over one channel is only the sign of each pixel). The cosine test is also met by outputs
    within ``atol + rtol * |ref|`` element-wise (see the module doc)."""

    max_abs: float | None = None
    rel: float = 0.0
    min_cos: float | None = None
    atol: float = CLOSE_ATOL
    rtol: float = CLOSE_RTOL

    def describe(self) -> str:
        parts = []
        if self.max_abs is not None:
            parts.append(f"|diff| <= {self.max_abs:g}" + (f" + {self.rel:g}*|ref|" if self.rel else ""))
        if self.min_cos is not None:
            parts.append(f"cosine >= {self.min_cos:.10g}")
        return " and ".join(parts) or "unbounded"

    def describe_close(self) -> str:
        """The element-wise test that stands in for the cosine on near-zero outputs."""
        return f"{self.atol:g} + {self.rtol:g}·|ref|"

    def with_min_cos(self, min_cos: float) -> Bound:
        """This bound with its cosine test replaced by ``min_cos`` (a bar chosen for the whole run)."""
        return Bound(max_abs=self.max_abs, rel=self.rel, min_cos=min_cos, atol=self.atol, rtol=self.rtol)

    @staticmethod
    def chain(bounds: Sequence[Bound]) -> Bound:
        """The bound of several rewrites applied one after the other: errors add up. The
        near-zero test is a matter of conditioning, not of error budgets: the loosest one."""
        max_abs: float | None = None
        rel = 0.0
        if bounds and all(b.max_abs is not None for b in bounds):
            max_abs = sum(b.max_abs or 0.0 for b in bounds)
            rel = sum(b.rel for b in bounds)
        cos_losses = [1.0 - b.min_cos for b in bounds if b.min_cos is not None]
        min_cos = 1.0 - sum(cos_losses) if cos_losses else None
        atol = max([CLOSE_ATOL, *(b.atol for b in bounds)])
        rtol = max([CLOSE_RTOL, *(b.rtol for b in bounds)])
        return Bound(max_abs=max_abs, rel=rel, min_cos=min_cos, atol=atol, rtol=rtol)


EXACT = Bound(max_abs=EXACT_MAX_ABS)


def cosine_bound(min_cos: float) -> Bound:
    """The bound of a lossy pass judged by cosine alone (the usual one for image rewrites)."""
    return Bound(min_cos=min_cos)
