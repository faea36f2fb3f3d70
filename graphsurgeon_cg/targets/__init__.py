"""Layer 3: compiler targets. ``cgsurg lint``/``apply --target`` read a model the way a vendor
compiler will (rules yielding findings), name the passes that fix it (a preset pipeline) and
write the compile command. Built-in targets are declared in the ``cgsurg.targets`` entry-point
group like any vendor's; imports only ``core``."""

from .base import (
                   ENTRY_POINT_GROUP,
                   ERROR,
                   WARNING,
                   Finding,
                   LintResult,
                   Rule,
                   Target,
                   TargetCheckFailed,
                   available_targets,
                   get_target,
                   register_target,
)
from .commands import Command, CompileSettings, ModelIO, aipp_config

__all__ = ["ENTRY_POINT_GROUP", "ERROR", "WARNING", "Finding", "LintResult", "Rule", "Target", "TargetCheckFailed",
           "available_targets", "get_target", "register_target", "Command", "CompileSettings", "ModelIO",
           "aipp_config"]
