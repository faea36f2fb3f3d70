"""Layer 4: workflows that chain the stages: ``flow`` (``cgsurg run``, one config file for the
vendor flow) and ``demo`` (``cgsurg demo``, on a trained generator)."""

from .demo import demo
from .flow import FlowConfig, run_flow

__all__ = ["FlowConfig", "demo", "run_flow"]
