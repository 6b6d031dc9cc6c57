"""Key ranges shared by the backends: the end of a prefix's range.

Keys are strings compared by code point, which is also the byte order of their UTF-8 encoding,
so the same bound works for SQLite's BINARY collation and for etcd's byte-wise key order.
"""

from __future__ import annotations


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
