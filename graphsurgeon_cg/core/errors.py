"""Errors that end a cgsurg run, each with the exit code the CLI returns for it.

Exit codes: 0 success, 1 a pass failed or produced an invalid model (or a Ray cluster could
not finish the work), 2 bad input or usage,
3 a numeric check failed (outputs moved further than the pipeline's bound allows).
"""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A library's exception as one line for our messages: its first non-empty line (or its
    type when it says nothing), cut at ``limit`` characters."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


class CgsurgError(Exception):
    """Base class: the message is one line meant for the user."""

    exit_code = 1


class InputError(CgsurgError):
    """A file, option or pipeline given by the user cannot be used."""

    exit_code = 2


class ClusterError(CgsurgError):
    """A Ray cluster cannot finish the work: no node left to run it, or a task lost too often."""

    exit_code = 1


class PassFailed(CgsurgError):
    """A pass raised, or the graph it left behind is not a valid ONNX model."""

    exit_code = 1

    def __init__(self, pass_name: str, message: str):
        super().__init__(f"pass '{pass_name}' failed: {message}")
        self.pass_name = pass_name


class NumericCheckFailed(CgsurgError):
    """Outputs before and after a rewrite differ by more than the allowed bound."""

    exit_code = 3

    def __init__(self, message: str, pass_name: str | None = None):
        super().__init__(message)
        self.pass_name = pass_name
