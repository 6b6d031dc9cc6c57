"""The Store protocol: a revisioned key-value store with watch, in etcd's terms.

Invariants every backend keeps (the contract suite in tests/integration/test_store_contract.py
checks them):
- One global revision counter, starting at 1 for an empty store and incremented by exactly one
  for every successful create, update or delete. A key's ``mod_revision`` is the revision of the
  write that produced its current value; ``create_revision`` that of the create.
- ``update`` and ``delete`` are compare-and-swap on ``mod_revision``: a mismatch raises
  ``ConflictError`` and changes nothing.
- ``watch(prefix, after_revision)`` yields every change to keys under ``prefix`` with a revision
  greater than ``after_revision``, in revision order, with no gaps and no duplicates, then keeps
  yielding live changes. If ``after_revision`` is older than the history kept (at least five
  minutes' worth), it raises ``CompactedError`` (Kubernetes answers 410 Gone); if it is newer than
  the current revision, ``FutureRevisionError``.
- Values are at most ``MAX_VALUE_BYTES``; larger ones raise ``ValueTooLargeError``.
- ``list`` and ``watch`` match keys by plain string prefix: pass "/registry/pods/default/" with
  its trailing slash, or "/registry/pods/default2/..." matches too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

MAX_VALUE_BYTES = 1536 * 1024  # 1.5 MiB, as etcd's default request limit that Kubernetes lives with


class StoreError(Exception):
    """Base of every error a Store raises."""


class NotFoundError(StoreError):
    """The key does not exist."""


class AlreadyExistsError(StoreError):
    """A create found the key already present."""


class ConflictError(StoreError):
    """A compare-and-swap found a different mod_revision than expected."""


class CompactedError(StoreError):
    """A watch asked for history older than the store keeps."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"revision {requested} is compacted; the oldest kept is {oldest}")
        self.requested = requested
        self.oldest = oldest


class FutureRevisionError(StoreError):
    """A watch or read asked for a revision the store has not reached."""


class ValueTooLargeError(StoreError):
    """A value exceeds MAX_VALUE_BYTES."""


class WatchTooSlowError(StoreError):
    """A watcher fell too far behind the live changes and was ended; the client must re-list."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One stored key with its value and the revisions that made it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: PUT carries the new value; DELETE the last value and the delete's revision."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev: KeyValue | None
    revision: int


class Store(Protocol):
    """A revisioned key-value store with compare-and-swap writes and watch from a revision."""

    async def get(self, key: str) -> KeyValue | None:
        """Return the key's current value, or None."""
        ...

    async def list(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> tuple[list[KeyValue], int, bool]:
        """Return (items under prefix in key order, the store's revision, whether more remain).

        ``limit`` 0 means all; ``start_after`` continues a paged list after that key;
        ``revision`` nonzero asks for a consistent continuation at that revision where the
        backend supports it (others may serve the current state).
        """
        ...

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key; raise AlreadyExistsError if present."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace the value if mod_revision equals expected_revision (0 = unconditional)."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete the key (CAS when expected_revision is nonzero); return the deleted value
        with mod_revision set to the delete's revision."""
        ...

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[WatchEvent]:
        """Yield changes under prefix after after_revision, then live changes, until closed."""
        ...

    async def current_revision(self) -> int:
        """Return the latest revision."""
        ...

    async def stats(self) -> dict[str, int]:
        """Return figures for /metrics: keys, size in bytes, revision, compacted revision."""
        ...

    async def close(self) -> None:
        """Release files, threads and watchers; pending watches end."""
        ...
