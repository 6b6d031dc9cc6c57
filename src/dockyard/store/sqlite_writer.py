"""The SQLite store's writer thread: group commit of queued writes, planned in memory.

The writer owns the only write connection. It takes every write queued since its last commit
(up to MAX_BATCH_OPS / MAX_BATCH_BYTES), loads the current rows of the keys they touch with one
query, decides each write in queue order against that in-memory view (so two CAS updates of one
key in one batch see each other), and then writes the outcome with a handful of multi-row
statements in one transaction.

Why planned, not one statement per write: Python's sqlite3 releases the GIL around every
``sqlite3_step`` and must win it back afterwards; with the event loop busy on the other core,
each of those hand-offs can wait. A few large statements per batch let SQLite do its work in C
while the loop runs, and keep the writer's Python work small.

Invariants:
- Revisions are assigned in queue order, +1 per successful write; failed writes (conflict,
  missing, already there) take none and change nothing.
- ``revision``, ``compacted`` and ``keys`` change only after COMMIT; if SQLite fails, the whole
  batch fails with StoreError and nothing of it is stored or published.
- Results and events go back to the loop in commit order, in one callback per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dockyard.store.base import (
    AlreadyExistsError,
    ConflictError,
    KeyValue,
    NotFoundError,
    StoreError,
    WatchEvent,
)
from dockyard.store.batching import take_batch

MAX_BATCH_OPS = 1000  # writes per group commit
MAX_BATCH_BYTES = 16 * 1024 * 1024  # value bytes per group commit, to bound a transaction
COMPACT_CHUNK = 2_000  # history rows deleted per compaction step, so writes interleave
MAX_PARAMS = 30_000  # below SQLite's default limit of 32,766 host parameters per statement
# Checkpoint every few MiB and within a second of going idle: readers find pages still in the
# WAL through a read() call each, while checkpointed pages come from the memory-mapped file.
CHECKPOINT_BYTES = 4 * 1024 * 1024  # value bytes written between WAL checkpoints
CHECKPOINT_SECONDS = 1.0  # and at least this often
WAL_TRUNCATE_FRAMES = 16_384  # 64 MiB of 4 KiB pages: past this, empty the WAL by force

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    revision INTEGER PRIMARY KEY,
    deleted INTEGER NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_value BLOB,
    prev_mod_revision INTEGER
);
INSERT OR IGNORE INTO meta(name, value) VALUES ('schema', 1), ('revision', 1), ('compacted', 0);
"""

EVENT_COLUMNS = "revision, deleted, key, value, create_revision, prev_value, prev_mod_revision"

OpKind = Literal["create", "update", "delete", "compact"]


@dataclass(slots=True)
class Op:
    """One queued write; ``expected`` is the CAS revision, or the target for a compaction."""

    kind: OpKind
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[Any]


Outcome = tuple[asyncio.Future[Any], Any]
Deliver = Callable[[Sequence[Outcome], Sequence[WatchEvent]], None]
Current = tuple[bytes, int, int] | None  # (value, create_revision, mod_revision) or absent
_STOP = object()


def _value_size(op: Op) -> int:
    return len(op.value)


def insert_rows(
    conn: sqlite3.Connection, head: str, ncols: int, rows: Sequence[tuple[Any, ...]],
    tail: str = "",
) -> None:
    """Insert rows with as few multi-row statements as SQLite's parameter limit allows."""
    per = max(1, MAX_PARAMS // ncols)
    row_marks = "(" + ",".join("?" * ncols) + ")"
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        marks = ",".join([row_marks] * len(chunk))
        conn.execute(f"{head} VALUES {marks}{tail}", [x for row in chunk for x in row])


class _Plan:
    """One batch decided in memory: outcomes, events and the rows to write."""

    def __init__(self, current: dict[str, Current], revision: int) -> None:
        self.current = current
        self.revision = revision
        self.outcomes: list[Outcome] = []
        self.events: list[WatchEvent] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.touched: set[str] = set()
        self.keys_delta = 0

    def apply(self, op: Op) -> None:
        """Decide one write against the batch's view; record its outcome."""
        try:
            if op.kind == "create":
                result = self._create(op)
            elif op.kind == "update":
                result = self._update(op)
            else:
                result = self._delete(op)
        except StoreError as err:
            self.outcomes.append((op.future, err))
            return
        self.outcomes.append((op.future, result))

    def _existing(self, op: Op) -> tuple[bytes, int, int]:
        found = self.current.get(op.key)
        if found is None:
            raise NotFoundError(f"key {op.key!r} not found")
        if op.expected and found[2] != op.expected:
            raise ConflictError(
                f"key {op.key!r} is at revision {found[2]}, not the expected {op.expected}"
            )
        return found

    def _create(self, op: Op) -> KeyValue:
        if self.current.get(op.key) is not None:
            raise AlreadyExistsError(f"key {op.key!r} already exists")
        rev = self.revision = self.revision + 1
        self.current[op.key] = (op.value, rev, rev)
        self.touched.add(op.key)
        self.keys_delta += 1
        self.event_rows.append((rev, 0, op.key, op.value, rev, None, None))
        kv = KeyValue(op.key, op.value, rev, rev)
        self.events.append(WatchEvent("PUT", kv, None, rev))
        return kv

    def _update(self, op: Op) -> KeyValue:
        prev_value, create_rev, prev_mod = self._existing(op)
        rev = self.revision = self.revision + 1
        self.current[op.key] = (op.value, create_rev, rev)
        self.touched.add(op.key)
        self.event_rows.append((rev, 0, op.key, op.value, create_rev, prev_value, prev_mod))
        kv = KeyValue(op.key, op.value, create_rev, rev)
        prev = KeyValue(op.key, prev_value, create_rev, prev_mod)
        self.events.append(WatchEvent("PUT", kv, prev, rev))
        return kv

    def _delete(self, op: Op) -> KeyValue:
        value, create_rev, prev_mod = self._existing(op)
        rev = self.revision = self.revision + 1
        self.current[op.key] = None
        self.touched.add(op.key)
        self.keys_delta -= 1
        # The event's value is the last value; prev_value stays NULL to not store it twice.
        self.event_rows.append((rev, 1, op.key, value, create_rev, None, prev_mod))
        kv = KeyValue(op.key, value, create_rev, rev)
        prev = KeyValue(op.key, value, create_rev, prev_mod)
        self.events.append(WatchEvent("DELETE", kv, prev, rev))
        return kv


class Writer(threading.Thread):
    """Owns the write connection; applies queued writes in group-committed transactions."""

    def __init__(
        self, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        super().__init__(name="dockyard-store-writer", daemon=True)
        self._conn = conn
        self._loop = loop
        self._checkpointer = checkpointer
        self._unchecked_bytes = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.deliver: Deliver | None = None
        self.revision = self._meta("revision")
        # Set just before COMMIT: a reader may see a revision before ``revision`` catches up,
        # and must not be told that revision is in the future.
        self.committing = self.revision
        self.compacted = self._meta("compacted")
        self.keys = int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])

    def _meta(self, name: str) -> int:
        return int(self._conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()[0])

    def submit(self, op: Op) -> None:
        """Queue a write for the next group commit."""
        self._queue.put(op)

    def stop(self) -> None:
        """Ask the thread to finish the queued writes and exit."""
        self._queue.put(_STOP)

    def run(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.start()
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            if batch:
                self._commit(batch)
                self._maybe_checkpoint(batch)
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer.join()
        self._conn.close()

    def _maybe_checkpoint(self, batch: list[Op]) -> None:
        if self._checkpointer is None:
            return
        self._unchecked_bytes += sum(len(op.value) for op in batch) * 2 + 256 * len(batch)
        if self._unchecked_bytes >= CHECKPOINT_BYTES:
            self._unchecked_bytes = 0
            self._checkpointer.wake()

    def _take_batch(self) -> tuple[list[Op], bool]:
        return take_batch(self._queue, _STOP, MAX_BATCH_OPS, _value_size, MAX_BATCH_BYTES)

    def _commit(self, batch: list[Op]) -> None:
        compactions = [op for op in batch if op.kind == "compact"]
        writes = [op for op in batch if op.kind != "compact"]
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            compacted = self._compact(compactions)
            plan = _Plan(self._load(op.key for op in writes), self.revision)
            for op in writes:
                plan.apply(op)
            self._write(plan)
            self.committing = plan.revision
            self._conn.execute("COMMIT")
        except Exception as err:  # any failure must end its batch, never the only writer
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self.committing = self.revision
            failure = StoreError(f"sqlite write failed, nothing stored: {err}")
            self._hand_back([(op.future, failure) for op in batch], [])
            return
        self.revision = plan.revision
        self.keys += plan.keys_delta
        self.compacted = compacted
        outcomes = plan.outcomes + [(op.future, compacted) for op in compactions]
        self._hand_back(outcomes, plan.events)

    def _load(self, keys: Iterable[str]) -> dict[str, Current]:
        wanted = list(dict.fromkeys(keys))
        current: dict[str, Current] = {}
        for start in range(0, len(wanted), MAX_PARAMS):
            chunk = wanted[start : start + MAX_PARAMS]
            marks = ",".join("?" * len(chunk))
            for key, value, create_rev, mod_rev in self._conn.execute(
                "SELECT key, value, create_revision, mod_revision FROM kv"
                f" WHERE key IN ({marks})", chunk
            ):
                current[key] = (value, create_rev, mod_rev)
        return current

    def _write(self, plan: _Plan) -> None:
        upserts = []
        gone = []
        for key in plan.touched:
            now = plan.current[key]
            if now is None:
                gone.append(key)
            else:
                upserts.append((key, *now))
        for start in range(0, len(gone), MAX_PARAMS):
            chunk = gone[start : start + MAX_PARAMS]
            self._conn.execute(f"DELETE FROM kv WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        insert_rows(
            self._conn, "INSERT INTO kv(key, value, create_revision, mod_revision)", 4, upserts,
            " ON CONFLICT(key) DO UPDATE SET value=excluded.value,"
            " create_revision=excluded.create_revision, mod_revision=excluded.mod_revision",
        )
        insert_rows(self._conn, f"INSERT INTO events({EVENT_COLUMNS})", 7, plan.event_rows)
        if plan.revision != self.revision:
            self._conn.execute("UPDATE meta SET value=? WHERE name='revision'", (plan.revision,))

    def _compact(self, compactions: list[Op]) -> int:
        """Drop history up to the highest requested target (one chunk); return the mark."""
        if not compactions:
            return self.compacted
        wanted = max(op.expected for op in compactions)
        # Capped at the revision before this batch: its own events are all above the mark.
        target = min(wanted, self.revision, self.compacted + COMPACT_CHUNK)
        if target <= self.compacted:
            return self.compacted
        self._conn.execute(
            "DELETE FROM events WHERE revision > ? AND revision <= ?", (self.compacted, target)
        )
        self._conn.execute("UPDATE meta SET value=? WHERE name='compacted'", (target,))
        return target

    def _hand_back(self, outcomes: Sequence[Outcome], events: Sequence[WatchEvent]) -> None:
        if self.deliver is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits
            self._loop.call_soon_threadsafe(self.deliver, outcomes, events)


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database file off the writer's path.

    SQLite's automatic checkpoint runs inside the commit that crosses the threshold, stalling
    that commit (and every write batched in it) for tens of milliseconds. Here the writer's
    connection has ``wal_autocheckpoint=0`` and this thread runs PASSIVE checkpoints on its own
    connection, which never block the writer.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(name="dockyard-store-checkpoint", daemon=True)
        self._conn = conn
        self._wanted = threading.Event()
        self._stopping = False

    def wake(self) -> None:
        """Ask for a checkpoint now."""
        self._wanted.set()

    def stop(self) -> None:
        """Ask the thread to exit after its current checkpoint."""
        self._stopping = True
        self._wanted.set()

    def run(self) -> None:
        while not self._stopping:
            self._wanted.wait(CHECKPOINT_SECONDS)
            self._wanted.clear()
            if self._stopping:
                break
            # A failed checkpoint loses nothing (the WAL keeps the pages); the next one retries.
            with contextlib.suppress(sqlite3.Error):
                self._checkpoint()
        self._conn.close()

    def _checkpoint(self) -> None:
        _, wal_frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if wal_frames >= WAL_TRUNCATE_FRAMES:
            # Under steady writes a PASSIVE checkpoint may never find the WAL fully copied at
            # the moment a write begins, and only then does SQLite start the WAL over: it would
            # grow without end. TRUNCATE waits for the writer and readers (a few ms) and
            # empties it.
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
