"""Kubernetes resource quantities, with the semantics of the decoder the webhook runs.

The arithmetic is delegated to ``kubernetes.utils.parse_quantity`` (a maintained library),
but that function and Go's ``resource.Quantity`` disagree at the edges, and the suite must
agree with Go (CAA's webhook and the API server both decode with it):

* Python accepts ``'1K'``, ``'1_000'``, ``'inf'`` and non-ASCII digits; Go refuses them. So
  every value is first checked against the grammar Go's scanner implements::

      quantity ::= sign? digits? ("." digits?)? suffix
      suffix   ::= "" | Ki | Mi | Gi | Ti | Pi | Ei | n | u | m | k | M | G | T | P | E
                 | (e|E) sign? digits

  Go's scanner lets the number be empty: ``"m"``, ``"+"``, ``"."`` and ``"e3"`` all decode
  as zero. Odd, but a pod carrying them is admitted, so they are zero here too.
* Go's JSON decoder trims surrounding whitespace (``" 1"`` is 1) and decodes ``null`` as
  zero; JSON numbers are parsed from their literal text.
* Go rounds a value finer than a nanounit away from zero (``0.9n`` is ``1n``) and caps a
  *binary-suffixed* value at 2^63-1 (``8Ei``); decimal values are not capped.

Rounding to integers follows ``resource.Quantity.Value()`` (away from zero) and
``RoundUpToMiB`` (Go integer division, plus one when the remainder is positive), because
those are what CAA's webhook uses to compute the sizing annotations.
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from decimal import ROUND_UP, Decimal, InvalidOperation

from kubernetes.utils.quantity import parse_quantity as _k8s_parse_quantity

from sim.errors import ConformanceInputError

__all__ = [
    "MAX_QUANTITY",
    "MIB",
    "QuantityError",
    "ceil_int",
    "format_decimal_si",
    "parse_quantity",
    "quantity_value",
    "to_mib_ceil",
]

MIB = 1 << 20
MAX_QUANTITY = Decimal((1 << 63) - 1)  # also the largest int64, where Go's conversions stop

_GRAMMAR = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]*(?:\.[0-9]*)?)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+|)",
    re.ASCII,
)
_BINARY_SUFFIXES = frozenset({"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"})
_NANO = Decimal("1e-9")

# Canonical DecimalSI suffixes, largest first: Quantity.String() picks the largest power of
# 1000 that leaves an integer mantissa.
_DECIMAL_SI = (
    ("E", 18),
    ("P", 15),
    ("T", 12),
    ("G", 9),
    ("M", 6),
    ("k", 3),
    ("", 0),
    ("m", -3),
    ("u", -6),
    ("n", -9),
)


class QuantityError(ConformanceInputError):
    """A resource value is not a Kubernetes quantity; the message says where it was found."""


def _as_text(value: object, where: str) -> str:
    """Turn a YAML/JSON scalar into the text Go's decoder would parse.

    A JSON number is parsed from its literal text, so ints and finite floats are accepted;
    null is zero; booleans and anything else are not quantities.
    """
    if value is None:
        return "0"
    if isinstance(value, bool):
        raise QuantityError(f"{where}: {value!r} is a boolean, not a Kubernetes quantity")
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{where}: {value!r} is not a Kubernetes quantity")
        return repr(value)
    raise QuantityError(f"{where}: {value!r} ({type(value).__name__}) is not a Kubernetes quantity")


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal | None:
    """The value of a quantity string, or None when Go's decoder would refuse it.

    Cached because manifests repeat the same few values ("100m", "1Gi") over and over and
    the admission benchmarks parse them for every pod; Decimals are immutable, so sharing
    them is safe.
    """
    match = _GRAMMAR.fullmatch(text.strip())
    if match is None or not match.group(0):
        return None
    sign, number, suffix = match.group("sign", "number", "suffix")
    if number in ("", "."):
        return Decimal(0)
    try:
        result = Decimal(_k8s_parse_quantity(sign + number + suffix))  # type: ignore[no-untyped-call]
    except (ValueError, InvalidOperation):  # pragma: no cover - the grammar already checked
        return None
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        with contextlib.suppress(InvalidOperation):  # beyond 28 digits the nanos are gone anyway
            result = result.quantize(_NANO, rounding=ROUND_UP)
    if suffix in _BINARY_SUFFIXES:
        result = max(-MAX_QUANTITY, min(MAX_QUANTITY, result))
    return result


def quantity_value(value: object) -> Decimal | None:
    """The value of a YAML/JSON scalar quantity, or None if Kubernetes would refuse it.

    The exception-free fast path for hot loops; call :func:`parse_quantity` for the message.
    """
    if type(value) is str:
        return _parse_text(value)
    try:
        return _parse_text(_as_text(value, ""))
    except QuantityError:
        return None


def parse_quantity(value: str | int | float, *, where: str) -> Decimal:
    """Parse one quantity as Kubernetes does; ``where`` names the field in error messages."""
    text = _as_text(value, where)
    result = _parse_text(text)
    if result is None:
        raise QuantityError(f"{where}: {text!r} is not a Kubernetes quantity")
    return result


def ceil_int(d: Decimal) -> int:
    """Round to a whole number away from zero, as ``resource.Quantity.Value()`` does."""
    return int(d.to_integral_value(rounding=ROUND_UP))


def to_mib_ceil(bytes_: Decimal) -> int:
    """Bytes to MiB rounded up, as CAA's webhook computes ``default_memory``.

    Mirrors ``RoundUpToMiB``: whole bytes first (away from zero), then Go's truncating
    division, plus one only when Go's remainder (which takes the dividend's sign) is positive.
    """
    whole = ceil_int(bytes_)
    quotient = abs(whole) // MIB * (1 if whole >= 0 else -1)
    remainder = whole - quotient * MIB
    return quotient + 1 if remainder > 0 else quotient


def format_decimal_si(d: Decimal) -> str:
    """Format a value as ``Quantity.String()`` does for a DecimalSI quantity (e.g. GPU counts).

    CAA writes the GPU request sum with ``String()``, so 1000 GPUs become ``"1k"`` and half
    a GPU ``"500m"``; values finer than a nanounit are rounded up to one, as Kubernetes does.
    """
    nanos = (d * Decimal(10) ** 9).to_integral_value(rounding=ROUND_UP)
    if nanos == 0:
        return "0"
    for suffix, exponent in _DECIMAL_SI:
        scale = Decimal(10) ** (exponent + 9)
        if nanos % scale == 0:
            return f"{int(nanos / scale)}{suffix}"
    raise AssertionError("unreachable: 'n' always divides")  # pragma: no cover
