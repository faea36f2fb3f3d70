"""Pipeline strings: ``fold-constants,resize-nearest(nearest_mode=round_prefer_ceil)``.

This module is only the grammar: it knows no passes (``registry.build_pipeline`` resolves
names). Grammar: ``pipeline := spec ("," spec)*``, ``spec := NAME ["(" KEY "=" VALUE ("," KEY "=" VALUE)* ")"]``,
``VALUE := TOKEN ("," TOKEN)* | "[" TOKEN ("," TOKEN)* "]"``: a list needs no brackets when
it is the last option or the token after each comma is no ``KEY=`` (so
``static-shape(shapes=x:1,3,640,640)`` reads as a shape is written elsewhere); it prints with
them. Values stay text here; each pass converts them to its options' types.
``format_pipeline(parse_pipeline(s))`` gives ``s`` back up to whitespace and brackets, and
parsing the printed form gives equal specs.

A ``Pipeline`` is the same list as a value: a name and a sequence of specs and other pipelines
(onnx-ir's ``Sequential``), so presets are built from named pieces rather than joined strings.
It prints to the flat text above and parses back from it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Union

from .errors import InputError

_TOKEN = re.compile(r"[^,()\[\]=\s]+")


@dataclass(frozen=True)
class PassSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()

    @staticmethod
    def from_values(name: str, values: dict[str, Any]) -> PassSpec:
        return PassSpec(name, tuple((k, _to_text(v)) for k, v in values.items()))

    def __str__(self) -> str:
        if not self.options:
            return self.name
        body = ",".join(f"{k}={_format_value(v)}" for k, v in self.options)
        return f"{self.name}({body})"


def _to_text(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_to_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(value) + "]"
    return value


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> InputError:
        return InputError(f"bad pipeline {self.text!r}: {what} at position {self.pos}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected '{char}'")
        self.pos += 1

    def token(self, what: str) -> str:
        self.skip_space()
        match = _TOKEN.match(self.text, self.pos)
        if not match:
            raise self.fail(f"expected {what}")
        self.pos = match.end()
        return match.group()

    def value(self) -> Any:
        if self.peek() != "[":
            items = [self.token("a value")]
            while self.peek() == "," and not self.key_follows():
                self.pos += 1
                items.append(self.token("a list item"))
            return tuple(items) if len(items) > 1 else items[0]
        self.pos += 1
        items = []
        if self.peek() != "]":
            items.append(self.token("a list item"))
            while self.peek() == ",":
                self.pos += 1
                items.append(self.token("a list item"))
        self.expect("]")
        return tuple(items)

    def key_follows(self) -> bool:
        """Whether the comma at the cursor is followed by ``KEY=`` (the next option)."""
        start = self.pos
        self.pos += 1
        self.skip_space()
        match = _TOKEN.match(self.text, self.pos)
        if match:
            self.pos = match.end()
        found = bool(match) and self.peek() == "="
        self.pos = start
        return found

    def spec(self) -> PassSpec:
        name = self.token("a pass name")
        options = []
        if self.peek() == "(":
            self.pos += 1
            if self.peek() != ")":
                while True:
                    key = self.token("an option name")
                    self.expect("=")
                    options.append((key, self.value()))
                    if self.peek() != ",":
                        break
                    self.pos += 1
            self.expect(")")
        return PassSpec(name, tuple(options))

    def pipeline(self) -> list[PassSpec]:
        if not self.text.strip():
            raise InputError("empty pipeline: name at least one pass (see 'cgsurg passes')")
        specs = [self.spec()]
        while self.peek() == ",":
            self.pos += 1
            specs.append(self.spec())
        if self.peek():
            raise self.fail(f"unexpected '{self.peek()}'")
        return specs


def parse_pipeline(text: str) -> list[PassSpec]:
    return _Parser(text).pipeline()


def format_pipeline(specs: list[PassSpec]) -> str:
    return ",".join(str(s) for s in specs)


class Pass(Protocol):
    """A pass instance (``core.base.Pass``, which this module, the grammar, does not import):
    a pipeline runs it as given and prints it as its spec."""

    @property
    def name(self) -> str: ...


Item = Union[str, PassSpec, Pass, "Pipeline"]


class Pipeline(Sequence["PassSpec | Pass"]):
    """A named pipeline: specs, pass instances and nested pipelines, in order. A string item is
    parsed (``"opset(min=9,max=13)"``), so a preset reads as the pipeline text it prints to.

    ``str()`` is the flat pipeline text (names and nesting are labels for people and do not
    print); iterating gives the flat items, so anything that takes a list of specs takes a
    pipeline. Two pipelines are equal when they run the same passes with the same options:
    ``Pipeline.parse(str(p)) == p``."""

    __slots__ = ("name", "items")

    def __init__(self, name: str, *items: Item):
        self.name = name
        parts: list[PassSpec | Pass | Pipeline] = []
        for item in items:
            parts.extend(parse_pipeline(item) if isinstance(item, str) else [item])
        self.items: tuple[PassSpec | Pass | Pipeline, ...] = tuple(parts)

    @staticmethod
    def parse(text: str, name: str = "") -> Pipeline:
        return Pipeline(name, *parse_pipeline(text))

    def flat(self) -> list[PassSpec | Pass]:
        """The specs and passes to run, nested pipelines spliced in."""
        found: list[PassSpec | Pass] = []
        for item in self.items:
            found.extend(item.flat() if isinstance(item, Pipeline) else [item])
        return found

    def specs(self) -> list[PassSpec]:
        """The flat pipeline as specs (a pass instance as the spec it prints to)."""
        return [item if isinstance(item, PassSpec) else parse_pipeline(str(item))[0] for item in self.flat()]

    def then(self, *items: Item, name: str | None = None) -> Pipeline:
        """This pipeline followed by ``items``, as a new pipeline (named ``name``, else this one's name)."""
        return Pipeline(self.name if name is None else name, self, *items)

    def __iter__(self) -> Iterator[PassSpec | Pass]:
        return iter(self.flat())

    def __len__(self) -> int:
        return len(self.flat())

    def __getitem__(self, index):  # Sequence's int and slice overloads in one
        return self.flat()[index]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __str__(self) -> str:
        return ",".join(str(item) for item in self.flat())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pipeline) and self.specs() == other.specs()

    def __hash__(self) -> int:
        return hash(tuple(self.specs()))

    def __repr__(self) -> str:
        inner = ", ".join(repr(i) if isinstance(i, Pipeline) else f"'{i}'" for i in self.items)
        return f"Pipeline({self.name!r}, {inner})"

    def describe(self, indent: str = "") -> str:
        """The tree: each nested pipeline by name, its passes under it."""
        lines = [f"{indent}{self.name or '(unnamed)'}"]
        for item in self.items:
            lines.append(item.describe(indent + "  ") if isinstance(item, Pipeline) else f"{indent}  {item}")
        return "\n".join(lines)
