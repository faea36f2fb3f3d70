"""Typed pass options: declared once on the pass class, converted and validated when a
pipeline is built (before any work), read as plain typed attributes.

    class StaticBatch(Pass):
        batch = Option(int, 1, "the batch size", check=at_least(1))

``StaticBatch(batch="4").batch`` is the int 4; ``StaticBatch(batch=0)`` raises ``InputError``.
To a type checker ``batch`` is an ``int`` on instances (the descriptor's ``__get__``).
List options hold a tuple of strings: ``Option(tuple, ("Resize",), ...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from .errors import InputError

T = TypeVar("T")
Check = Callable[[Any], "str | None"]  # a reason the value is refused, or None


class Option(Generic[T]):
    def __init__(self, type: type[T], default: T, help: str, choices: tuple | None = None,
                 check: Check | None = None):
        self.type = type
        self.default = default
        self.help = help
        self.choices = choices
        self.check = check
        self.key = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, obj: None, owner: type) -> Option[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: object | None, owner: type) -> Option[T] | T:
        if obj is None:
            return self
        return obj.__dict__["_option_values"][self.key]

    def __set__(self, obj: object, value: Any) -> None:
        raise AttributeError(f"option '{self.key}' is read-only: build a new pass to change it")

    def convert(self, pass_name: str, raw: Any) -> T:
        """A pipeline-string value (str or tuple of str) or a Python value -> this option's type."""
        def bad(expected: str) -> InputError:
            return InputError(f"{pass_name}: option '{self.key}' expects {expected}, got {raw!r}")

        value: Any
        if self.type is tuple:
            value = tuple(str(v) for v in (raw if isinstance(raw, (list, tuple)) else [raw]))
        elif isinstance(raw, (list, tuple)):
            raise bad(self.type.__name__)
        elif isinstance(raw, self.type) and not (self.type is int and isinstance(raw, bool)):
            value = raw
        elif self.type is bool:
            if str(raw).lower() not in ("true", "false", "1", "0"):
                raise bad("true or false")
            value = str(raw).lower() in ("true", "1")
        elif self.type in (int, float):
            try:
                value = self.type(raw)  # type: ignore[call-arg]
            except (TypeError, ValueError):
                raise bad("an integer" if self.type is int else "a number") from None
        else:
            value = str(raw)
        if self.choices is not None and value not in self.choices:
            raise InputError(f"{pass_name}: option '{self.key}' must be one of "
                             f"{', '.join(map(str, self.choices))}; got {raw!r}")
        reason = self.check(value) if self.check else None
        if reason:
            raise InputError(f"{pass_name}: option '{self.key}' {reason}; got {raw!r}")
        return value

    def describe(self) -> dict:
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        out = {"type": "list" if self.type is tuple else self.type.__name__, "default": default, "help": self.help}
        if self.choices:
            out["choices"] = list(self.choices)
        return out


# --- validators: each returns the reason a value is refused, or None -----------------------

def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low:g}"


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be between {low:g} and {high:g}"


def cosine() -> Check:
    """A cosine bar: in [-1, 1] and not NaN."""
    return between(-1.0, 1.0)


def not_empty() -> Check:
    return lambda v: None if len(v) else "must not be empty"
