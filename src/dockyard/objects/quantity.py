"""Kubernetes resource quantities ("500m", "128Mi", "1.5", "2e3") parsed exactly.

Values are ``fractions.Fraction`` (immutable, so parsed strings are cached) so arithmetic
never rounds; callers convert at the edge
(``cpu_millis`` rounds up as Kubernetes does for milli-values, ``to_int`` rounds up to whole units).
"""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_PATTERN = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<bin>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exp>[eE][+-]?[0-9]+)|(?P<dec>[numkMGTPE]?))\Z"
)


class QuantityError(ValueError):
    """A string is not a valid Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """Parse a quantity such as "500m", "128Mi" or 2 into an exact Fraction."""
    if isinstance(value, bool):
        raise QuantityError(f"quantity must be a string or number, not {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"quantity {value!r} is not finite")
        return Fraction(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"quantity must be a string or number, not {type(value).__name__}")
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> Fraction:
    """Parse a quantity string; cached because the same few strings recur in every pod."""
    match = _PATTERN.match(value.strip())
    if match is None or len(value) > 64:
        raise QuantityError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {value!r})"
        )
    number = Fraction(match["num"])
    if match["sign"] == "-":
        number = -number
    if match["bin"]:
        return number * _BINARY[match["bin"]]
    if match["exp"]:
        exponent = int(match["exp"][1:])
        if abs(exponent) > 30:
            raise QuantityError(f"quantity {value!r} has an exponent out of range")
        return number * Fraction(10) ** exponent
    return number * _DECIMAL[match["dec"] or ""]


def cpu_millis(value: str | int | float) -> int:
    """Return a cpu quantity in millicores, rounded up ("100m" → 100, "1.5" → 1500)."""
    if isinstance(value, str):
        return _cpu_millis_text(value)
    return math.ceil(parse_quantity(value) * 1000)


def to_int(value: str | int | float) -> int:
    """Return a quantity in whole units, rounded up ("128Mi" → 134217728)."""
    if isinstance(value, str):
        return _to_int_text(value)
    return math.ceil(parse_quantity(value))


@functools.lru_cache(maxsize=4096)
def _cpu_millis_text(value: str) -> int:
    return math.ceil(_parse_text(value) * 1000)


@functools.lru_cache(maxsize=4096)
def _to_int_text(value: str) -> int:
    return math.ceil(_parse_text(value))


def format_cpu_millis(millis: int) -> str:
    """Format millicores the way Kubernetes prints them ("1500m", "2")."""
    return f"{millis // 1000}" if millis % 1000 == 0 else f"{millis}m"


def format_bytes(count: int) -> str:
    """Format a byte count with the largest exact binary suffix ("128Mi", "1500")."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)
