"""Keys, values and list limits as every backend accepts them, and the end of a prefix's range.

Keys are strings compared by code point, which is also the byte order of their UTF-8 encoding,
so the same bound works for SQLite's BINARY collation and for etcd's byte-wise key order.
"""

from __future__ import annotations

from dockyard.store.base import MAX_VALUE_BYTES, StoreError, ValueTooLargeError


def check_key(key: str) -> None:
    """Raise StoreError unless key is a non-empty string without NUL characters."""
    if not isinstance(key, str) or not key:
        raise StoreError(f"key must be a non-empty string, not {key!r}")
    if "\x00" in key:
        raise StoreError(f"key {key!r} contains a NUL character")


def check_value(key: str, value: bytes) -> None:
    """Raise StoreError unless value is bytes; ValueTooLargeError past MAX_VALUE_BYTES."""
    if not isinstance(value, bytes):
        raise StoreError(f"value for {key!r} must be bytes, not {type(value).__name__}")
    if len(value) > MAX_VALUE_BYTES:
        raise ValueTooLargeError(
            f"value for {key!r} is {len(value)} bytes; the limit is {MAX_VALUE_BYTES}"
        )


def check_put(key: str, value: bytes) -> None:
    """Raise StoreError unless key and value may be written (check_key, then check_value)."""
    check_key(key)
    check_value(key, value)


def check_limit(limit: int) -> None:
    """Raise StoreError unless a list's limit is 0 (all) or positive."""
    if limit < 0:
        raise StoreError(f"limit must be 0 (all) or positive, not {limit}")


def prefix_end(prefix: str) -> str | None:
    """Return the least string above every string starting with prefix (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates cannot be encoded in UTF-8; skip past them
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None
