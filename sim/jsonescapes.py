"""What Go's decoder sees of a JSON body that a Python JSON parser hides: escapes and number text.

``resource.Quantity`` is decoded from the raw bytes of its JSON value, not from the decoded
string: ``"\\u0031"`` is the six characters ``\\u0031`` to Go (refused), although every
Python parser hands over ``"1"``; and the JSON number ``1e3`` is a DecimalExponent quantity
(written back as ``1e3``), although a parser hands over the float ``1000.0``. The webhook's
hot path parses with orjson, which keeps neither; this module recovers both, at a cost paid
only by bodies that need it:

* :func:`mark_escapes` rewrites a body so that every string that was written with an escape
  decodes with :data:`ESCAPE_MARK` in it (the structure is unchanged); only bodies holding a
  backslash need it;
* :func:`loads_keeping_numbers` parses with the standard library, keeping each non-integer
  number's text as written (:class:`JsonFloat`); only bodies where a number may be written
  with an exponent need it (:func:`may_hold_exponent_numbers`).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from sim.bounds import MAX_POD_QUANTITIES

#: The character every escaped string carries after :func:`mark_escapes`; NUL cannot appear
#: unescaped in valid JSON, so it marks escapes and nothing else.
ESCAPE_MARK = "\x00"

_ESCAPE = re.compile(rb"(\\.)", re.DOTALL)
#: A JSON number with an exponent: after ``:``, ``,`` or ``[`` (outside a string, unless a
#: string happens to hold such text too; then the slower parse only runs needlessly).
_EXPONENT_NUMBER = re.compile(rb"[:,\[]\s*-?[0-9]+(?:\.[0-9]*)?[eE]")


def mark_escapes(body: bytes) -> bytes:
    """``body`` with ``\\u0000`` put before each escape: strings keep their text plus marks.

    A backslash in valid JSON only ever starts an escape inside a string, and escapes are
    matched left to right in pairs (``\\\\`` is one escape), so the result is valid JSON
    with the same structure whenever ``body`` is.
    """
    return _ESCAPE.sub(rb"\\u0000\1", body)


def unmark(key: str) -> str:
    """An object key as a normal parser would decode it (escapes are resolved, marks dropped)."""
    return key.replace(ESCAPE_MARK, "")


class JsonFloat(float):
    """A JSON number that is not a plain integer, with the text it was written as (``raw``)."""

    raw: str

    def __new__(cls, text: str) -> JsonFloat:
        number = super().__new__(cls, text)
        number.raw = text
        return number


def may_hold_exponent_numbers(body: bytes, limit: int = MAX_POD_QUANTITIES) -> bool:
    """True when ``body`` may write a number with an exponent, at most ``limit`` of them (a byte scan).

    More than ``limit`` such numbers are more than a pod may hold quantities (the webhook
    refuses that pod before parsing them), so their text is not worth the slower parse.
    """
    found = itertools.islice(_EXPONENT_NUMBER.finditer(body), limit + 1)
    count = sum(1 for _ in found)
    return 0 < count <= limit


def loads_keeping_numbers(body: bytes) -> Any:
    """Parse ``body`` with every non-integer number as a :class:`JsonFloat` (its text kept)."""
    return json.loads(body, parse_float=JsonFloat)
