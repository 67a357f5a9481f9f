"""Kubernetes quantity semantics: what the API server accepts, what it refuses, how CAA rounds."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import ConformanceInputError
from sim.quantities import (
    GO_SPACES,
    MAX_QUANTITY,
    QuantityError,
    ceil_int,
    format_decimal_si,
    parse_quantity,
    quantity_format,
    quantity_string,
    quantity_value,
    to_mib_ceil,
)

W = "pod web: containers[0] (app).resources.requests.cpu"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1.5e3", Decimal(1500)),
        ("1e-3", Decimal("0.001")),
        ("200m", Decimal("0.2")),
        ("1.5", Decimal("1.5")),
        ("4Gi", Decimal(4 << 30)),
        ("0.5Gi", Decimal(1 << 29)),
        ("1k", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("1M", Decimal(10**6)),
        ("1Mi", Decimal(1 << 20)),
        ("1E", Decimal(10**18)),
        ("1Ei", Decimal(1 << 60)),
        ("1n", Decimal("1e-9")),
        ("1u", Decimal("1e-6")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+1", Decimal(1)),
        ("-1", Decimal(-1)),
        ("0", Decimal(0)),
        ("007", Decimal(7)),
        ("1e+3", Decimal(1000)),
        ("5.m", Decimal("0.005")),
        (3, Decimal(3)),
        (2.5, Decimal("2.5")),
        (1e20, Decimal(10**20)),
        # Go trims its spaces (a newline would reach it as the escape \n) and reads null as zero
        (" 1", Decimal(1)),
        ("2Gi\u00a0", Decimal(2 << 30)),
        ("\u30001\u2009", Decimal(1)),
        (None, Decimal(0)),
        # Go's scanner lets the number be empty: these decode as zero
        ("m", Decimal(0)),
        ("Ki", Decimal(0)),
        ("+", Decimal(0)),
        (".", Decimal(0)),
        ("e3", Decimal(0)),
        # finer than a nanounit rounds away from zero; binary suffixes cap at 2^63-1
        ("0.9n", Decimal("1e-9")),
        ("-0.1n", Decimal("-1e-9")),
        ("8Ei", MAX_QUANTITY),
        ("-16Ei", -MAX_QUANTITY),
        ("1e30", Decimal(10**30)),
    ],
)
def test_accepts_kubernetes_quantities(text: str | int | float, expected: Decimal) -> None:
    assert parse_quantity(text, where=W) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2x",
        "",
        "  ",
        "1K",
        "1_000",
        "inf",
        "nan",
        "0x10",
        "1e",
        "1e+",
        "1ki",
        "1.5.1",
        "\u0661",
        "1Gi1",
        "1Ee3",
        "1 Gi",
        # control characters reach Go as JSON escapes (raw bytes), which it refuses; Python's
        # strip() would have removed \x1c-\x1f, tabs and newlines
        "\x1f1",
        "\x1c1",
        "\t1",
        "2Gi\n",
    ],
)
def test_refuses_what_the_api_server_refuses(text: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(text, where=W)
    assert W in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [True, [1], {"a": 1}, float("inf"), float("nan")])
def test_refuses_non_scalars(value: object) -> None:
    with pytest.raises(QuantityError, match="containers\\[0\\] \\(app\\)"):
        parse_quantity(value, where=W)  # type: ignore[arg-type]


def test_quantity_error_is_an_input_error() -> None:
    assert issubclass(QuantityError, ConformanceInputError)


def test_huge_decimal_values_are_kept_and_cheap() -> None:
    assert parse_quantity("1e1000000", where=W) == Decimal("1e1000000")
    assert parse_quantity("-1e1000000", where=W) < -MAX_QUANTITY


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("0.2", 1), ("1.5", 2), ("3", 3), ("2.0001", 3), ("-1.5", -2), ("-0.2", -1)],
)
def test_ceil_int_rounds_away_from_zero_like_quantity_value(value: str, expected: int) -> None:
    assert ceil_int(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal(4 << 30), 4096),
        (Decimal(5 << 30), 5120),
        (Decimal(1), 1),
        (Decimal(1 << 20), 1),
        (Decimal((1 << 20) + 1), 2),
        (Decimal("0.5"), 1),
        (Decimal(0), 0),
        (Decimal(-(1 << 20) - 1), -1),  # Go's truncating division, no increment for a negative remainder
    ],
)
def test_to_mib_ceil(value: Decimal, expected: int) -> None:
    assert to_mib_ceil(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", "1"), ("2", "2"), ("1000", "1k"), ("1500", "1500"), ("0.5", "500m"), ("0", "0"), ("1e-10", "1n")],
)
def test_format_decimal_si_matches_quantity_string(value: str, expected: str) -> None:
    assert format_decimal_si(Decimal(value)) == expected


# Each row was checked with k8s.io/apimachinery v0.33 (json.Unmarshal into resource.Quantity,
# then a zero DecimalSI Quantity's Add of each, then String()), as CAA sums GPU requests.
@pytest.mark.parametrize(
    ("addends", "expected"),
    [
        (["1Ki"], "1Ki"),
        (["1e3"], "1e3"),
        (["1E3"], "1e3"),
        (["1k"], "1k"),
        (["1", "1Ki"], "1025"),
        (["500m"], "500m"),
        ([1.5], "1500m"),
        (["0", "1e3"], "1e3"),
        (["1.5Ki"], "1536"),
        (["1e21"], "1e21"),
        (["2Ei"], "2Ei"),
        (["1024"], "1024"),
        (["1000m"], "1"),
        (["1E"], "1E"),
        (["1000E"], "1"),  # Go has no DecimalSI suffix past E, and writes none
        (["1e-3"], "1e-3"),
        (["12e2"], "1200"),
        (["1Ki", "-1Ki", "1e3"], "1e3"),  # the format is re-taken whenever the sum is zero
        (["1500Ki"], "1500Ki"),
        (["0.5Ki"], "512"),
        (["2048Ki"], "2Mi"),
        (["1e-12"], "1e-9"),
        ([None, "1Ki"], "1Ki"),
        (["1Ki", "1e3"], "2024"),
    ],
)
def test_quantity_string_is_go_string_of_the_sum(addends: list[object], expected: str) -> None:
    total, fmt = Decimal(0), "DecimalSI"
    for addend in addends:
        if total == 0:
            fmt = quantity_format(addend)
        total += parse_quantity(addend, where=W)  # type: ignore[arg-type]
    assert quantity_string(total, fmt) == expected


@pytest.mark.parametrize(
    "space", ["\x85", "\xa0", "\u1680", "\u2000", "\u200a", "\u202f", "\u205f", "\u3000"]
)
def test_go_trims_unicode_spaces(space: str) -> None:
    assert space in GO_SPACES
    assert parse_quantity(f"{space}2{space}", where=W) == 2


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789.+-eEinumkKMGTP ", max_size=8), st.text(max_size=6)))
def test_any_text_is_a_value_or_a_quantity_error(text: str) -> None:
    fast = quantity_value(text)
    try:
        slow = parse_quantity(text, where=W)
    except QuantityError:
        assert fast is None
    else:
        assert fast == slow
