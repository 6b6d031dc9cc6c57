"""Digests: sha256 content addresses and readers that hash what passes through them.

Invariants: a digest is always written `sha256:<64 lowercase hex>`; a HashingReader sees
every byte its consumer reads, exactly once, so its digest is the digest of the stream read
so far; a VerifyingReader raises DigestMismatchError at end of stream (never earlier, never
silently) when the bytes read do not hash to the expected digest.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import IO, Protocol

CHUNK = 1 << 20


class DigestMismatchError(ValueError):
    """Content whose sha256 differs from the digest that names it."""


def sha256_digest(data: bytes) -> str:
    """Return the `sha256:<hex>` digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """Return the hex part of a `sha256:<hex>` digest, raising ValueError if malformed."""
    algorithm, _, hex_part = digest.partition(":")
    if algorithm != "sha256" or len(hex_part) != 64 or not _is_lower_hex(hex_part):
        raise ValueError(f"unsupported or malformed digest {digest!r} (want sha256:<64 hex>)")
    return hex_part


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


class ByteSource(Protocol):
    """Anything with a file-like `read`."""

    def read(self, size: int = -1, /) -> bytes:
        """Read up to `size` bytes (all if negative); b"" at end of stream."""
        ...


class HashingReader:
    """A read-only stream that hashes and counts the bytes read from `source`."""

    def __init__(
        self, source: ByteSource, on_read: Callable[[int], None] | None = None
    ) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self._on_read = on_read
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        """Read up to `size` bytes, hashing and counting them."""
        data = self._source.read(size)
        if data:
            self._hash.update(data)
            self.count += len(data)
            if self._on_read is not None:
                self._on_read(self.count)
        return data

    def drain(self) -> None:
        """Read the rest of the source so the digest covers the whole stream."""
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        """Return the digest of the bytes read so far."""
        return "sha256:" + self._hash.hexdigest()


class VerifyingReader(io.RawIOBase):
    """A raw stream that checks the expected digest (and size) at end of stream."""

    def __init__(
        self,
        source: IO[bytes],
        expected: str,
        *,
        size: int | None = None,
        on_mismatch: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._file = source
        self._hashing = HashingReader(source)
        self.expected = expected
        self.size = size
        self._on_mismatch = on_mismatch
        self.verified = False

    def readable(self) -> bool:
        """Return True: this stream is readable."""
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Read into `buffer`; at end of stream raise DigestMismatchError if it does not match."""
        data = self._hashing.read(len(buffer))
        if not data:
            if not self.verified:
                self._check()
            return 0
        buffer[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        actual, count = self._hashing.digest, self._hashing.count
        problem = ""
        if actual != self.expected:
            problem = f"content hashes to {actual}"
        elif self.size is not None and count != self.size:
            problem = f"content is {count} bytes, descriptor says {self.size}"
        if problem:
            if self._on_mismatch is not None:
                self._on_mismatch()
            raise DigestMismatchError(f"blob {self.expected} is corrupt: {problem}")
        self.verified = True

    def close(self) -> None:
        """Close this reader and its file."""
        if not self.closed:
            self._file.close()
        super().close()
