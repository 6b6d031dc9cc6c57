"""Key ranges: a prefix's upper bound and the SQL range that pages through it."""

from __future__ import annotations

import pytest

from dockyard.store.base import MAX_VALUE_BYTES, StoreError, ValueTooLargeError
from dockyard.store.keys import check_key, check_limit, check_put, check_value, prefix_end
from dockyard.store.sqlite import _key_range

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        ("/registry/pods/default/", "/registry/pods/default0"),  # "/" + 1 = "0"
        ("a", "b"),
        ("a\U0010ffff", "b"),  # the top code point rolls over to the previous character
        ("\U0010ffff", None),
        ("", None),
        ("\ud7ff", "\ue000"),  # never a surrogate
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert prefix_end(prefix) == end


def test_prefix_end_bounds_exactly_the_prefixed_keys() -> None:
    prefix = "/registry/pods/default/"
    end = prefix_end(prefix)
    assert end is not None
    inside = ["/registry/pods/default/a", "/registry/pods/default/\U0010ffff"]
    outside = ["/registry/pods/default2/a", "/registry/pods/default0", "/registry/pods/default"]
    assert all(prefix <= k < end for k in inside)
    assert not any(prefix <= k < end for k in outside)


def test_key_range_continues_after_a_key() -> None:
    assert _key_range("/p/", "/p/b") == ("key > ? AND key < ?", ["/p/b", "/p0"])
    assert _key_range("/p/", "") == ("key >= ? AND key < ?", ["/p/", "/p0"])
    assert _key_range("", "") == ("key >= ?", [""])


@pytest.mark.parametrize("key", ["", "/a\x00b", 7])
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(StoreError, match="key"):
        check_key(key)  # type: ignore[arg-type]


def test_values_must_be_bytes_within_the_limit() -> None:
    check_value("/k", b"x" * MAX_VALUE_BYTES)
    with pytest.raises(ValueTooLargeError, match=f"limit is {MAX_VALUE_BYTES}"):
        check_value("/k", b"x" * (MAX_VALUE_BYTES + 1))
    with pytest.raises(StoreError, match="must be bytes"):
        check_value("/k", "text")  # type: ignore[arg-type]


def test_puts_check_the_key_then_the_value() -> None:
    check_put("/k", b"v")
    with pytest.raises(StoreError, match="NUL"):
        check_put("/a\x00b", "text")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="must be bytes"):
        check_put("/k", "text")  # type: ignore[arg-type]


def test_list_limits_are_zero_or_positive() -> None:
    check_limit(0)
    check_limit(5)
    with pytest.raises(StoreError, match="limit must be 0"):
        check_limit(-1)
