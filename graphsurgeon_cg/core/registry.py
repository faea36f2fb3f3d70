"""How passes (and other plug-ins, such as compiler targets) are found: a ``Registry`` per kind,
filled by a decorator (``register_pass``), by entry points (group ``cgsurg.passes``) and by
plugin files. Built-in passes use the same entry points that a third-party package declares,
so they have no privileges a user's pass lacks.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from .base import Pass
from .errors import InputError
from .pipeline import PassSpec, Pipeline, parse_pipeline

ENTRY_POINT_GROUP = "cgsurg.passes"

T = TypeVar("T")
_REGISTRIES: list[Registry[Any]] = []  # every kind, so that a plugin file may register any of them


class Registry(Generic[T]):
    """Classes of one kind (``base``) by their ``name``: registered by a decorator, declared in the
    entry-point ``group`` (imported once, on first lookup), or loaded from plugin files."""

    def __init__(self, kind: str, group: str, base: type[T], validate: Callable[[type[T]], None] = lambda cls: None):
        self.kind, self.group, self.base, self.validate = kind, group, base, validate
        self._classes: dict[str, type[T]] = {}
        self.plural = kind + ("es" if kind.endswith("s") else "s")
        self._entry_points_loaded = False
        _REGISTRIES.append(self)

    def register(self, cls: type[T]) -> type[T]:
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(f"{cls!r} is not a {self.base.__name__} subclass")
        if not isinstance(getattr(cls, "name", None), str):
            raise TypeError(f"{self.kind} class {cls.__name__} lacks the class attribute 'name'")
        self.validate(cls)
        name: str = cls.name  # type: ignore[attr-defined]
        existing = self._classes.get(name)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise InputError(f"two {self.plural} are named '{name}': {existing.__module__}.{existing.__qualname__} "
                             f"and {cls.__module__}.{cls.__qualname__}")
        self._classes[name] = cls
        return cls

    def load_entry_points(self) -> None:
        """Import every class declared in the entry-point group (once)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            try:
                cls = ep.load()
            except Exception as exc:
                raise InputError(f"cannot load {self.kind} '{ep.name}' from {ep.value}: {exc}") from None
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise InputError(f"entry point '{ep.name}' ({ep.value}) is not a {self.base.__name__} subclass")
            if getattr(cls, "name", None) != ep.name:
                raise InputError(f"entry point '{ep.name}' names a {self.kind} called '{getattr(cls, 'name', None)}'")
            self.register(cls)

    def available(self) -> dict[str, type[T]]:
        self.load_entry_points()
        return dict(sorted(self._classes.items()))

    def get(self, name: str) -> type[T]:
        known = self.available()
        if name in known:
            return known[name]
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known {self.plural}: {', '.join(known)}"
        raise InputError(f"unknown {self.kind} '{name}'{hint}")

    def names_from_module(self, module: str) -> list[str]:
        return sorted(name for name, cls in self._classes.items() if cls.__module__ == module)


def _validate_pass(cls: type[Pass]) -> None:
    for attr in ("summary", "exact"):
        if not hasattr(cls, attr):
            raise TypeError(f"pass class {cls.__name__} lacks the class attribute '{attr}'")
    if not isinstance(cls.exact, bool):
        raise TypeError(f"pass class {cls.__name__}: 'exact' must be True or False")


PASSES: Registry[Pass] = Registry("pass", ENTRY_POINT_GROUP, Pass, _validate_pass)


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator that makes a pass available by its ``name``."""
    return PASSES.register(cls)


def load_entry_points() -> None:
    """Import every pass declared in the ``cgsurg.passes`` entry-point group (once)."""
    PASSES.load_entry_points()


_loaded_plugins: dict[Path, list[str]] = {}


def load_plugin(path: str | os.PathLike) -> list[str]:
    """Import a Python file whose ``@register_pass`` (or ``@register_target``) classes become
    available; returns their names. Loading the same file again is a no-op."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"plugin {path} is not a file")
    key = path.resolve()
    if key in _loaded_plugins:
        return _loaded_plugins[key]
    module_name = f"cgsurg_plugin_{path.stem}_{len(_loaded_plugins)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"plugin {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except InputError:
        raise
    except (Exception, SystemExit) as exc:  # a plugin calling sys.exit() is a broken plugin
        raise InputError(f"plugin {path} failed to import: {type(exc).__name__}: {exc}") from None
    names = sorted(name for registry in _REGISTRIES for name in registry.names_from_module(module_name))
    if not names:
        kinds = " or ".join(r.kind for r in _REGISTRIES)
        raise InputError(f"plugin {path} registers no {kinds} (decorate a Pass subclass with @register_pass)")
    _loaded_plugins[key] = names
    return names


def available_passes() -> dict[str, type[Pass]]:
    return PASSES.available()


def get_pass(name: str) -> type[Pass]:
    return PASSES.get(name)


def create_pass(spec: PassSpec) -> Pass:
    """Resolve a spec's name and build the pass with typed, validated options."""
    cls = get_pass(spec.name)
    keys = [k for k, _ in spec.options]
    if len(set(keys)) != len(keys):
        raise InputError(f"{spec.name}: an option is given twice")
    return cls(**dict(spec.options))


PipelineLike = str | Pipeline | Sequence[PassSpec | Pass | Pipeline]


def build_pipeline(pipeline: PipelineLike) -> list[Pass]:
    """A pipeline string, a ``Pipeline``, or a list of specs / pass instances / pipelines, as
    ready-to-run passes. Every name and option is checked here, before any work."""
    if isinstance(pipeline, str):
        items: list[object] = list(parse_pipeline(pipeline))
    else:
        items = [leaf for item in pipeline for leaf in (item.flat() if isinstance(item, Pipeline) else [item])]
    passes = []
    for item in items:
        if isinstance(item, PassSpec):
            passes.append(create_pass(item))
        elif isinstance(item, Pass):
            passes.append(item)
        else:
            raise InputError(f"a pipeline holds passes, pass specs and pipelines, not {type(item).__name__}")
    return passes
