"""What this CPU is, from ``/proc/cpuinfo``: its model name (written next to every speed figure)
and its ISA flags (which decide what low precision runs fast)."""

from __future__ import annotations

import platform


def _field(key: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.split(":", 1)[0].strip() == key), None)
    except OSError:
        return None


def cpu_name() -> str:
    """The CPU's model name, or what ``platform`` knows where /proc/cpuinfo is missing."""
    return _field("model name") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """Every ISA flag of this CPU (``/proc/cpuinfo`` spelling; empty where it is missing)."""
    return frozenset((_field("flags") or "").split())
