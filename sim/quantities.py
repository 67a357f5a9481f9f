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
* Go's JSON decoder parses a quantity from the raw bytes between the quotes, trimmed with
  Go's ``strings.TrimSpace`` (``" 1"`` is 1), and decodes ``null`` as zero; JSON numbers are
  parsed from their literal text. So a string here stands for what a JSON encoder writes:
  a character it must escape (a control character) reaches Go as an escape, which Go
  refuses (``"\u001f1"``), and only Go's spaces are trimmed (:data:`GO_SPACES`: Python's
  ``strip()`` also removes ``\x1c``-``\x1f``). A request body that spells a quantity with
  escapes (``"\u0031"``) is caught before this, on its raw bytes (sim.jsonescapes).
* ``resource.Quantity`` remembers a format (DecimalSI, BinarySI or DecimalExponent) from the
  suffix it was parsed with; a sum takes the format of its first non-zero addend, and
  ``String()`` writes the value in that format (:func:`quantity_format`, :func:`quantity_string`).
* Go rounds a value finer than a nanounit away from zero (``0.9n`` is ``1n``) and caps a
  *binary-suffixed* value at 2^63-1 (``8Ei``); decimal values are not capped.

Bounds (README, "Bounds on bad input"):

* a quantity longer than :data:`sim.bounds.MAX_QUANTITY_CHARS` is refused before it is
  parsed or cached (Go has no length limit, but no value it can hold needs that many
  characters), so the parse cache holds at most 4,096 short strings;
* the exponent of ``e``/``E`` notation must fit ``resource.Quantity``'s scale, an int32:
  Go reads the exponent as an int64 (refusing anything longer) and then silently wraps it
  to 32 bits (``1e4294967296`` becomes 1); here anything outside the int32 range is refused;
* huge values inside that range (``1e1000000``) are kept, as Go keeps them, and all
  arithmetic on quantities runs in :data:`CONTEXT`, whose exponent range covers every
  int32 scale, so a sum never overflows; the webhook then refuses a pod whose sums leave
  the int64 range it converts in.

Rounding to integers follows ``resource.Quantity.Value()`` (away from zero) and
``RoundUpToMiB`` (Go integer division, plus one when the remainder is positive), because
those are what CAA's webhook uses to compute the sizing annotations.
"""

from __future__ import annotations

import contextlib
import decimal
import functools
import math
import re
from decimal import ROUND_UP, Decimal, InvalidOperation

from kubernetes.utils.quantity import parse_quantity as _k8s_parse_quantity

from sim.bounds import MAX_QUANTITY_CHARS, excerpt
from sim.errors import ConformanceInputError

__all__ = [
    "AMOUNT_CACHE",
    "CONTEXT",
    "GO_SPACES",
    "MAX_QUANTITY",
    "MIB",
    "QuantityError",
    "ceil_int",
    "format_decimal_si",
    "parse_quantity",
    "quantity_format",
    "quantity_string",
    "quantity_value",
    "to_amount",
    "to_mib_ceil",
]

MIB = 1 << 20
MAX_QUANTITY = Decimal((1 << 63) - 1)  # also the largest int64, where Go's conversions stop

_GRAMMAR = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]*(?:\.[0-9]*)?)"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+|)",
    re.ASCII,
)
#: resource.Quantity keeps its scale in an int32.
_MIN_EXPONENT, _MAX_EXPONENT = -(1 << 31), (1 << 31) - 1

#: The decimal context for arithmetic on quantities: default precision (28 digits), but an
#: exponent range wide enough that no int32-scaled value, or sum of them, overflows.
CONTEXT = decimal.Context(
    prec=28,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

#: What Go's ``strings.TrimSpace`` trims (``unicode.IsSpace``): ASCII \t \n \v \f \r and
#: space, U+0085, U+00A0 and the Unicode White_Space characters above Latin-1.
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
)

#: Characters a JSON encoder must escape; Go then reads the escape itself, and refuses it.
_ESCAPED_BY_JSON = re.compile(r"[\x00-\x1f]")

#: ``resource.Quantity``'s formats, as Go names them.
DECIMAL_SI, BINARY_SI, DECIMAL_EXPONENT = "DecimalSI", "BinarySI", "DecimalExponent"

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
        if value.bit_length() > 4 * MAX_QUANTITY_CHARS:  # str() of a huge int is itself slow
            raise QuantityError(f"{where}: a {value.bit_length()}-bit integer is not a Kubernetes quantity")
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"{where}: {value!r} is not a Kubernetes quantity")
        raw = getattr(value, "raw", None)  # sim.jsonescapes.JsonFloat: the number as written
        return raw if isinstance(raw, str) else repr(value)
    raise QuantityError(f"{where}: {excerpt(value)} ({type(value).__name__}) is not a Kubernetes quantity")


def _is_exponent(suffix: str) -> bool:
    """``e3``/``E-2`` (not the ``E`` and ``Ei`` suffixes)."""
    return len(suffix) > 1 and suffix[0] in "eE" and suffix != "Ei"


@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal | None:
    """The value of a quantity string, or None when Go's decoder would refuse it.

    Cached because manifests repeat the same few values ("100m", "1Gi") over and over and
    the admission benchmarks parse them for every pod; Decimals are immutable, so sharing
    them is safe.
    Callers check the length (MAX_QUANTITY_CHARS) first, so the cache is bounded in bytes.
    """
    if _ESCAPED_BY_JSON.search(text):
        return None
    match = _GRAMMAR.fullmatch(text.strip(GO_SPACES))
    if match is None or not match.group(0):
        return None
    sign, number, suffix = match.group("sign", "number", "suffix")
    if number in ("", "."):
        return Decimal(0)
    if _is_exponent(suffix) and not _MIN_EXPONENT <= int(suffix[1:]) <= _MAX_EXPONENT:
        return None
    try:
        with decimal.localcontext(CONTEXT):
            result = Decimal(_k8s_parse_quantity(sign + number + suffix))  # type: ignore[no-untyped-call]
    except (ValueError, ArithmeticError):  # pragma: no cover - the grammar already checked
        return None
    exponent = result.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -9:
        with contextlib.suppress(InvalidOperation):  # beyond 28 digits the nanos are gone anyway
            result = result.quantize(_NANO, rounding=ROUND_UP, context=CONTEXT)
    if suffix in _BINARY_SUFFIXES:
        result = max(-MAX_QUANTITY, min(MAX_QUANTITY, result))
    return result


def quantity_value(value: object) -> Decimal | None:
    """The value of a YAML/JSON scalar quantity, or None if Kubernetes would refuse it.

    The exception-free fast path for hot loops; call :func:`parse_quantity` for the message.
    """
    if type(value) is str:
        return None if len(value) > MAX_QUANTITY_CHARS else _parse_text(value)
    try:
        text = _as_text(value, "")
    except QuantityError:
        return None
    return None if len(text) > MAX_QUANTITY_CHARS else _parse_text(text)


def parse_quantity(value: str | int | float, *, where: str) -> Decimal:
    """Parse one quantity as Kubernetes does; ``where`` names the field in error messages."""
    text = _as_text(value, where)
    if len(text) > MAX_QUANTITY_CHARS:
        raise QuantityError(
            f"{where}: {excerpt(text)} is {len(text):,} characters long; a Kubernetes quantity "
            f"is refused beyond {MAX_QUANTITY_CHARS}"
        )
    result = _parse_text(text)
    if result is None:
        if _ESCAPED_BY_JSON.search(text):
            raise QuantityError(
                f"{where}: {text!r} holds a control character, which JSON carries as an escape; "
                "Go's decoder reads a quantity's raw bytes and refuses escapes"
            )
        match = _GRAMMAR.fullmatch(text.strip(GO_SPACES))
        if match is not None and _is_exponent(match.group("suffix")):
            raise QuantityError(
                f"{where}: {text!r}: the exponent is outside resource.Quantity's int32 range "
                f"[{_MIN_EXPONENT}, {_MAX_EXPONENT}]"
            )
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


#: :func:`to_amount`'s results by (resource, text); the scheduler reads it directly on its hot path.
AMOUNT_CACHE: dict[tuple[str, str], int] = {}


def to_amount(resource: str, value: object, *, where: str) -> int:
    """A quantity in the scheduler's integer unit: millicores for CPU, whole units otherwise
    (what kube-scheduler and the API server's pod checks count in).

    Memoised by text: a cluster sees the same few quantity strings again and again, and the
    scheduler benchmark requires parsing to cost nothing per node.
    """
    key = (resource, value if isinstance(value, str) else repr(value))
    cached = AMOUNT_CACHE.get(key)
    if cached is not None:
        return cached
    parsed = parse_quantity(value, where=where)  # type: ignore[arg-type]  # checked by parse_quantity
    if parsed.copy_abs() > MAX_QUANTITY:  # Go's MilliValue()/Value() cannot hold it either
        raise QuantityError(f"{where}: {parsed} is outside the int64 range the scheduler counts in")
    scaled = parsed * Decimal(1000) if resource == "cpu" else parsed
    amount = int(scaled.to_integral_value(rounding=ROUND_UP))
    if len(AMOUNT_CACHE) < 65536:
        AMOUNT_CACHE[key] = amount
    return amount


def quantity_format(value: object) -> str:
    """The format Go's ``resource.Quantity`` records for a valid quantity: from its suffix.

    Binary suffixes (``Ki``...) give BinarySI, ``e``/``E`` exponents DecimalExponent,
    anything else (decimal suffixes, none, a JSON integer) DecimalSI; ``null`` decodes as
    the zero Quantity, whose format is empty (``""``).
    """
    if value is None:
        return ""
    text = _as_text(value, "")
    match = _GRAMMAR.fullmatch(text.strip(GO_SPACES))
    suffix = match.group("suffix") if match is not None else ""
    if suffix in _BINARY_SUFFIXES:
        return BINARY_SI
    if _is_exponent(suffix):
        return DECIMAL_EXPONENT
    return DECIMAL_SI


def _strip_tens(mantissa: int, exponent: int) -> tuple[int, int]:
    while mantissa and mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    return mantissa, exponent


def quantity_string(value: Decimal, fmt: str) -> str:
    """``Quantity.String()`` for ``value`` (already at Go's nano precision) in format ``fmt``.

    BinarySI is kept only for whole values of at least 1024 in magnitude, written with the
    largest power of 1024 that divides them (``1Ki``, ``1536Mi``; ``1536`` stays bare);
    other BinarySI values are written as DecimalSI. Decimal formats write the mantissa with
    the exponent lowered to a multiple of three: DecimalSI as a suffix (``1k``, ``500m``),
    DecimalExponent as ``e<n>`` (``1e3``, ``1e-3``; none for ``e0``). Go writes an unknown
    format as DecimalExponent, and a DecimalSI exponent past ``E`` with no suffix at all
    (``1000E`` becomes ``1``): both are reproduced.
    """
    if value == 0:
        return "0"
    if fmt == BINARY_SI:
        if -1024 < value < 1024 or value != value.to_integral_value():
            fmt = DECIMAL_SI
        else:
            whole, power = int(value), 0
            while whole % 1024 == 0 and power < 6:
                whole //= 1024
                power += 1
            return f"{whole}{('', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei')[power]}"
    elif fmt not in (DECIMAL_SI, DECIMAL_EXPONENT):
        fmt = DECIMAL_EXPONENT
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: quantities are
    mantissa, exponent = _strip_tens(int("".join(map(str, digits))), exponent)
    shift = exponent % 3
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    number = f"{'-' if sign else ''}{mantissa}"
    if fmt == DECIMAL_EXPONENT:
        return number if exponent == 0 else f"{number}e{exponent}"
    suffix = dict((e, s) for s, e in _DECIMAL_SI).get(exponent, "")
    return number + suffix
