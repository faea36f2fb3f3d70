"""Layer 4: ``cgsurg tune`` — the fastest pipeline that still meets the accuracy bar.

``candidates``: what is tried on which CPU; ``search``: building, judging and timing them within
the budget; ``judging``: building one and judging it; ``remote``: the same on a Ray cluster;
``timing``: deployment-faithful timing; ``results``: what was found; ``render``: tune.html.
"""

from .candidates import EXACT_PIPELINE, candidates, check_disjoint, cpu_flags, plan
from .judging import reference_outputs
from .render import render_html
from .results import Candidate, TuneResult, apply_line, pareto, run_line
from .search import tune
from .timing import cpu_isa

__all__ = ["EXACT_PIPELINE", "Candidate", "TuneResult", "apply_line", "candidates", "check_disjoint", "cpu_flags",
           "cpu_isa", "pareto", "plan", "reference_outputs", "render_html", "run_line", "tune"]
