"""Passes and how they are found: the ``Pass`` base class, ``register_pass``, entry points
(group ``cgsurg.passes``) and plugin files. Built-in passes use the same entry points that a
third-party package declares, so they have no privileges a user's pass lacks.
"""

from __future__ import annotations

import difflib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import onnx_graphsurgeon as gs

from .errors import InputError
from .numeric import EXACT, Bound

ENTRY_POINT_GROUP = "cgsurg.passes"


@dataclass(frozen=True)
class Option:
    """A typed pass option. ``type`` is one of bool, int, float, str or list (a tuple of str)."""

    type: type
    default: Any
    help: str = ""
    choices: tuple | None = None

    def convert(self, pass_name: str, key: str, raw: Any) -> Any:
        """Turn a pipeline-string value (str or list of str) into this option's type."""
        def bad(expected: str) -> InputError:
            return InputError(f"{pass_name}: option '{key}' expects {expected}, got {raw!r}")

        if self.type is list:
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
                value = self.type(raw)
            except (TypeError, ValueError):
                raise bad("an integer" if self.type is int else "a number") from None
        else:
            value = str(raw)
        if self.choices is not None and value not in self.choices:
            raise InputError(f"{pass_name}: option '{key}' must be one of {', '.join(map(str, self.choices))}; got {raw!r}")
        return value


@dataclass
class PassContext:
    """What a pass may know about the run besides the graph, and two helpers."""

    pass_name: str
    opset: int
    graph: gs.Graph | None = None
    data: str | None = None  # an info file of preprocessed samples (apply --data), e.g. for calibration
    touched: list = field(default_factory=list)
    _names: set[str] | None = None

    def mark(self, node: gs.Node) -> None:
        """Record a node the pass modified in place, for provenance."""
        self.touched.append(node)

    def fresh_name(self, base: str) -> str:
        """A tensor or node name not used anywhere in the graph yet."""
        if self._names is None:  # one O(N) scan per pass, not per call
            self._names = set()
            if self.graph is not None:
                self._names.update(self.graph.tensors())
                self._names.update(n.name for n in self.graph.nodes)
        k = len(self._names)
        name = f"{base}__{k}"
        while name in self._names:
            k += 1
            name = f"{base}__{k}"
        self._names.add(name)
        return name


@dataclass
class PassResult:
    """``rewrites``: how many matches were rewritten. ``reasons``: why candidates were left
    alone (the answer to "why didn't my pass fire?"). ``graph``: a replacement graph, for
    passes that cannot work in place (e.g. opset conversion)."""

    rewrites: int = 0
    reasons: list[str] = field(default_factory=list)
    graph: gs.Graph | None = None


class Pass:
    """Base class of a graph rewrite. Subclasses set the class attributes and ``run``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    exact: ClassVar[bool]
    bound: ClassVar[Bound] = EXACT  # lossy passes declare how far they may move outputs
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, **values: Any):
        unknown = set(values) - set(self.options)
        if unknown:
            valid = ", ".join(self.options) or "none"
            raise InputError(f"{self.name}: unknown option '{sorted(unknown)[0]}' (valid options: {valid})")
        self.values = {key: opt.default for key, opt in self.options.items()}
        for key, raw in values.items():
            self.values[key] = self.options[key].convert(self.name, key, raw)

    def __getattr__(self, key: str) -> Any:
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key]
        raise AttributeError(key)

    def run(self, graph: gs.Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    # A pass that changes what the model takes or gives (dtype, layout, units) says how to
    # translate, so the numeric check and the report compare like with like.
    def adapt_feeds(self, feed: dict) -> dict:
        """Inputs of the model before this pass -> the equivalent inputs after it."""
        return feed

    def adapt_outputs(self, outputs: dict) -> dict:
        """Outputs of the model after this pass -> the units of the model before it."""
        return outputs

    def feed_grid(self) -> tuple | None:
        """``(mean, scale)`` when the pass makes the model take 8-bit images normalised as
        ``(u - mean) / scale``: random check inputs are then drawn from that grid."""
        return None

    def changed_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.values.items() if v != self.options[k].default}

    def __str__(self) -> str:
        from .pipeline import PassSpec

        return str(PassSpec.from_values(self.name, self.changed_options()))


_REGISTRY: dict[str, type[Pass]] = {}
_entry_points_loaded = False


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator that makes a pass available by its ``name``."""
    for attr in ("name", "summary", "exact"):
        if not hasattr(cls, attr):
            raise TypeError(f"pass class {cls.__name__} lacks the class attribute '{attr}'")
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


def load_plugin(path: str | Path) -> list[str]:
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
    except Exception as exc:
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
