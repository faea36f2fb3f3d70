"""Pipeline strings: ``fold-constants,resize-nearest(nearest_mode=round_prefer_ceil)``.

This module is only the grammar: it knows no passes (``registry.build_pipeline`` resolves
names). Grammar: ``pipeline := spec ("," spec)*``, ``spec := NAME ["(" KEY "=" VALUE ("," KEY "=" VALUE)* ")"]``,
``VALUE := TOKEN ("," TOKEN)* | "[" TOKEN ("," TOKEN)* "]"``: a list needs no brackets when
it is the last option or the token after each comma is no ``KEY=`` (so
``static-shape(shapes=x:1,3,640,640)`` reads as a shape is written elsewhere); it prints with
them. Values stay text here; each pass converts them to its options' types.
``format_pipeline(parse_pipeline(s))`` gives ``s`` back up to whitespace and brackets, and
parsing the printed form gives equal specs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
