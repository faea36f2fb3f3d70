"""How passes are found: ``register_pass``, entry points
(group ``cgsurg.passes``) and plugin files. Built-in passes use the same entry points that a
third-party package declares, so they have no privileges a user's pass lacks.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path

from .base import Pass
from .errors import InputError
from .pipeline import PassSpec, parse_pipeline

ENTRY_POINT_GROUP = "cgsurg.passes"


_REGISTRY: dict[str, type[Pass]] = {}
_entry_points_loaded = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator that makes a pass available by its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Pass)):
        raise TypeError(f"{cls!r} is not a Pass subclass")
    for attr in ("name", "summary", "exact"):
        if not hasattr(cls, attr):
            raise TypeError(f"pass class {cls.__name__} lacks the class attribute '{attr}'")
    if not isinstance(cls.exact, bool):
        raise TypeError(f"pass class {cls.__name__}: 'exact' must be True or False")
    existing = _REGISTRY.get(cls.name)
    if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
        raise InputError(f"two passes are named '{cls.name}': {existing.__module__}.{existing.__qualname__} "
                         f"and {cls.__module__}.{cls.__qualname__}")
    _REGISTRY[cls.name] = cls
    return cls


def load_entry_points() -> None:
    """Import every pass declared in the ``cgsurg.passes`` entry-point group (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:
            raise InputError(f"cannot load pass '{ep.name}' from {ep.value}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Pass)):
            raise InputError(f"entry point '{ep.name}' ({ep.value}) is not a Pass subclass")
        if cls.name != ep.name:
            raise InputError(f"entry point '{ep.name}' names a pass called '{cls.name}'")
        register_pass(cls)


_loaded_plugins: dict[Path, list[str]] = {}


def load_plugin(path: str | os.PathLike) -> list[str]:
    """Import a Python file whose ``@register_pass`` classes become available; returns their names.
    Loading the same file again is a no-op."""
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
    names = sorted(name for name, cls in _REGISTRY.items() if cls.__module__ == module_name)
    if not names:
        raise InputError(f"plugin {path} registers no pass (decorate a Pass subclass with @register_pass)")
    _loaded_plugins[key] = names
    return names


def available_passes() -> dict[str, type[Pass]]:
    load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def get_pass(name: str) -> type[Pass]:
    passes = available_passes()
    if name in passes:
        return passes[name]
    close = difflib.get_close_matches(name, passes, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known passes: {', '.join(passes)}"
    raise InputError(f"unknown pass '{name}'{hint}")


def create_pass(spec: PassSpec) -> Pass:
    """Resolve a spec's name and build the pass with typed, validated options."""
    cls = get_pass(spec.name)
    keys = [k for k, _ in spec.options]
    if len(set(keys)) != len(keys):
        raise InputError(f"{spec.name}: an option is given twice")
    return cls(**dict(spec.options))


def build_pipeline(pipeline: str | Sequence[PassSpec | Pass]) -> list[Pass]:
    """A pipeline string, or a list of specs / pass instances, as ready-to-run passes. Every
    name and option is checked here, before any work."""
    items = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
    return [item if isinstance(item, Pass) else create_pass(item) for item in items]
