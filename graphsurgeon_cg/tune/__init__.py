"""Layer 4: ``cgsurg tune`` — the fastest pipeline that still meets the accuracy bar.

``candidates``: what is tried; ``search``: building, judging and timing them within the budget;
``results``: what was found; ``render``: tune.html.
"""

from .candidates import EXACT, candidates, check_disjoint
from .render import render_html
from .results import Candidate, TuneResult, apply_line, pareto
from .search import cpu_isa, reference_outputs, tune

__all__ = ["EXACT", "Candidate", "TuneResult", "apply_line", "candidates", "check_disjoint", "cpu_isa", "pareto",
           "reference_outputs", "render_html", "tune"]
