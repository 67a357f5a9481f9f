"""Help text in plain words: a module docstring shown by ``--help`` loses its reStructuredText."""

from __future__ import annotations

import re

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_doc(doc: str | None) -> str:
    """``doc`` as a terminal shows it: ``literal`` -> literal, :mod:`x` -> x."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", (doc or "").strip()))
