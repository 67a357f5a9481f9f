"""``run --tags``: the tag expression checked before anything runs.

The expression is pytest's ``-m`` grammar (``and``, ``or``, ``not``, parentheses, names).
A syntax error, a requirement id the catalogue does not have, a name no scenario carries,
or an expression no scenario matches is bad input: it is named and the run exits 2, before
the report directory is touched. A typo must never become a run that verified nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from sim.errors import ConformanceInputError
from sim.harness.catalogue import REQUIREMENT_ID, Catalogue, ScenarioRef

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([\w:+\-.\[\]\\/]+))")
_KEYWORDS = {"and", "or", "not"}

Predicate = Callable[[frozenset[str]], bool]


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(expression):
        if expression[position:].strip() == "":
            break
        match = _TOKEN.match(expression, position)
        if match is None:
            raise ConformanceInputError(
                f"--tags {expression!r}: unexpected character {expression[position:].lstrip()[0]!r} "
                f"at column {len(expression) - len(expression[position:].lstrip()) + 1}"
            )
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


class _Parser:
    """Recursive descent over or/and/not; yields a predicate over a scenario's tags and its names."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.index = 0
        self.names: list[str] = []

    def error(self, what: str) -> ConformanceInputError:
        return ConformanceInputError(f"--tags {self.expression!r}: {what}")

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise self.error("the expression ends too early")
        self.index += 1
        return token

    def parse(self) -> Predicate:
        if not self.tokens:
            raise self.error("the expression is empty")
        predicate = self.or_()
        if self.peek() is not None:
            raise self.error(f"unexpected {self.peek()!r} after a complete expression")
        return predicate

    def or_(self) -> Predicate:
        parts = [self.and_()]
        while self.peek() == "or":
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else (lambda tags: any(p(tags) for p in parts))

    def and_(self) -> Predicate:
        parts = [self.not_()]
        while self.peek() == "and":
            self.take()
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else (lambda tags: all(p(tags) for p in parts))

    def not_(self) -> Predicate:
        token = self.take()
        if token == "not":
            inner = self.not_()
            return lambda tags: not inner(tags)
        if token == "(":
            inner = self.or_()
            if self.take() != ")":
                raise self.error("a '(' is not closed")
            return inner
        if token == ")" or token in _KEYWORDS:
            raise self.error(f"expected a tag, found {token!r}")
        self.names.append(token)
        return lambda tags: token in tags


def check_tags(expression: str, catalogue: Catalogue, scenarios: Sequence[ScenarioRef]) -> None:
    """Raise ConformanceInputError naming what is wrong with ``expression`` (see the module docstring)."""
    parser = _Parser(expression)
    predicate = parser.parse()
    known: set[str] = {tag for ref in scenarios for tag in ref.tags} | set(catalogue.by_id)
    unknown_ids = sorted({n for n in parser.names if REQUIREMENT_ID.match(n) and n not in catalogue.by_id})
    if unknown_ids:
        raise parser.error(f"unknown requirement id(s) {', '.join(unknown_ids)}: not in the catalogue")
    unknown = sorted({n for n in parser.names if n not in known})
    if unknown:
        raise parser.error(
            f"unknown tag(s) {', '.join(unknown)}: a tag is a requirement id (WH-001) "
            "or a tag the features carry (needs-guest, ...)"
        )
    if not any(predicate(ref.tags) for ref in scenarios):
        raise parser.error("selects no scenario")


def selected_by(expression: str, scenarios: Iterable[ScenarioRef]) -> list[ScenarioRef]:
    """The scenarios an (already checked) expression selects."""
    predicate = _Parser(expression).parse()
    return [ref for ref in scenarios if predicate(ref.tags)]
