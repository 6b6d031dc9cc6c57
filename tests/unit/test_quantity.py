"""Quantity parsing: exact values, rounding at the edges, formatting, and errors."""

from __future__ import annotations

from fractions import Fraction

import pytest

from dockyard.objects.quantity import (
    QuantityError,
    cpu_millis,
    format_bytes,
    format_cpu_millis,
    parse_quantity,
    to_int,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Fraction(1, 2)),
        ("1", Fraction(1)),
        ("1.5", Fraction(3, 2)),
        ("128Mi", Fraction(128 * 2**20)),
        ("1Gi", Fraction(2**30)),
        ("1G", Fraction(10**9)),
        ("1k", Fraction(1000)),
        ("2e3", Fraction(2000)),
        ("1E", Fraction(10**18)),  # a bare E is the exa suffix, not an exponent
        ("100n", Fraction(1, 10**7)),
        (".5", Fraction(1, 2)),
        ("-1", Fraction(-1)),
        (2, Fraction(2)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Mi", "1KiB", "Mi", True, None, [], "1e99"])
def test_parse_errors(text: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "millis"),
    [("100m", 100), ("1", 1000), ("1.5", 1500), ("0.0001", 1), ("250u", 1)],  # rounds up
)
def test_cpu_millis(text: str, millis: int) -> None:
    assert cpu_millis(text) == millis


def test_to_int_rounds_up() -> None:
    assert to_int("128Mi") == 134217728
    assert to_int("1500m") == 2


@pytest.mark.parametrize(("millis", "text"), [(1500, "1500m"), (2000, "2"), (0, "0")])
def test_format_cpu(millis: int, text: str) -> None:
    assert format_cpu_millis(millis) == text


@pytest.mark.parametrize(
    ("count", "text"), [(128 * 2**20, "128Mi"), (1500, "1500"), (2**30, "1Gi"), (0, "0")]
)
def test_format_bytes(count: int, text: str) -> None:
    assert format_bytes(count) == text
