"""The embedded Store: one SQLite file in WAL mode, the single-machine default.

Layout (one file, plus SQLite's ``-wal``/``-shm`` and our ``.lock``):
- ``kv``: the current value of every live key with its create and mod revisions.
- ``events``: one row per write (revision, key, PUT/DELETE, value, previous value), the history
  a watch replays from. Compaction deletes rows older than ``history_seconds``; it never touches
  ``kv``, so the current value of a live key is never lost.
- ``meta``: the revision counter and the compacted revision, written in the same transaction as
  the changes, so after a restart revisions continue where they stopped (never backwards, never
  repeated, even when every key was deleted and all history compacted).

Threads (the event loop never waits on SQLite):
- One writer thread (``sqlite_writer.Writer``) owns the only write connection. Writes queue up;
  the writer takes every queued write (group commit), decides them in order, writes them in one
  transaction, commits, and hands results and events back to the loop in one
  ``call_soon_threadsafe``: events are published to the watchers first, then the callers'
  futures resolve. A ``Checkpointer`` thread copies the WAL into the file off the commit path.
- Reads run on two threads (``sqlite_reader.Readers``), each with its own read-only connection
  reading a committed snapshot while the writer commits; queued reads are served in batches.

Durability: ``synchronous=NORMAL`` by default. In WAL mode a commit is written to the WAL file
before the write is acknowledged, so it survives the death of the process (``kill -9``, a crash):
the pages are in the OS page cache and reach the disk without us. What NORMAL gives up is the
fsync per commit, so a power loss or kernel crash may lose the last commits (the file stays
consistent). We chose it because that fsync, shared on ext4 with the checkpoint's fsync of the
database file, is what dominates write latency here (bench/bench_store.py measures both);
``synchronous="FULL"`` fsyncs the WAL in every group commit for etcd's power-loss promise.

Watch: ``watch(prefix, R)`` subscribes to the live broadcaster first, then replays ``events``
rows with revision > R from SQLite in pages, then drains the live queue skipping what the replay
already yielded. Any event is committed before it is published, so every event is either in the
replay's snapshot or arrives in the live queue after the subscription: no gap, no duplicate.
A watch from the current revision skips the replay. A watcher that falls more than
``WATCH_QUEUE_LIMIT`` (10,000) events behind is ended with ``WatchTooSlowError``. A watch is an
iterator object (``SQLiteWatch``), not a generator: a cancelled ``__anext__`` loses nothing.
Consumers that stop early call ``aclose()`` to unsubscribe at once (a dropped one is forgotten).

Compaction: a timer compacts to the revision that was current ``history_seconds`` ago (see
``history.HistoryClock``). ``watch`` accepts any R at or above the compacted revision; below it
raises ``CompactedError`` whose ``oldest`` is the compacted revision, the lowest R still accepted
(R=0 on a compacted store is refused too: "from now" is ``current_revision()``).

List: ``list(..., revision=R)`` serves the state at R, rebuilt from ``kv`` (keys unchanged
since R) and the first later event of each changed key (its previous value), so a paged list
continued at the first page's revision is one consistent snapshot, as with etcd; below the
compacted revision it raises ``CompactedError`` (Kubernetes: 410 Gone, the continue expired).

Keys are plain strings; ``list`` and ``watch`` match by string prefix, so callers pass a prefix
ending in "/" ("/registry/pods/default/") to keep "/registry/pods/default2/..." out.

SQLite is Python's own sqlite3 module: no extra dependency, and the library is the most tested
embedded database there is; the threads are ours because aiosqlite gives one thread per
connection without group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from dockyard.store.base import (
    CompactedError,
    FutureRevisionError,
    KeyValue,
    Store,
    StoreError,
    WatchEvent,
)
from dockyard.store.fanout import WATCH_QUEUE_LIMIT, Broadcaster, Watcher
from dockyard.store.history import CompactionTimer
from dockyard.store.keys import check_key, check_limit, check_put, prefix_end
from dockyard.store.sqlite_reader import Readers
from dockyard.store.sqlite_writer import (
    EVENT_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    Checkpointer,
    Op,
    OpKind,
    Outcome,
    Writer,
)
from dockyard.store.watching import QueuedWatch

T = TypeVar("T")
log = logging.getLogger(__name__)

REPLAY_PAGE = 1000  # history rows read per round trip while a watch replays
READ_THREADS = 2

EventRow = tuple[int, int, str, bytes, int, bytes | None, int | None]


def _event_from_row(row: EventRow) -> WatchEvent:
    revision, deleted, key, value, create_revision, prev_value, prev_mod = row
    kv = KeyValue(key, value, create_revision, revision)
    if deleted:
        assert prev_mod is not None
        return WatchEvent("DELETE", kv, KeyValue(key, value, create_revision, prev_mod), revision)
    if prev_mod is None or prev_value is None:
        return WatchEvent("PUT", kv, None, revision)
    return WatchEvent("PUT", kv, KeyValue(key, prev_value, create_revision, prev_mod), revision)


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. check_same_thread=False: the
    # writer's connection is made on the opening thread, then used only by the writer thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    conn.execute("PRAGMA mmap_size=268435456")
    conn.execute("PRAGMA journal_size_limit=16777216")  # shrink a WAL that grew past 16 MiB
    return conn


# ---------------------------------------------------------------------------------------------
# Reads (each runs on a read thread with that thread's connection)


def _read_get(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT key, value, create_revision, mod_revision FROM kv WHERE key=?", (key,)
    ).fetchone()
    return None if row is None else KeyValue(*row)


def _key_range(prefix: str, after: str, column: str = "key") -> tuple[str, list[Any]]:
    """Return a WHERE clause and its parameters for keys under prefix and above after."""
    if after and after >= prefix:
        clauses, params = [f"{column} > ?"], [after]
    else:
        clauses, params = [f"{column} >= ?"], [prefix]
    end = prefix_end(prefix)
    if end is not None:
        clauses.append(f"{column} < ?")
        params.append(end)
    return " AND ".join(clauses), params


def _meta(conn: sqlite3.Connection, name: str) -> int:
    return int(conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()[0])


def _read_list(
    conn: sqlite3.Connection, prefix: str, limit: int, start_after: str, at_revision: int
) -> tuple[list[KeyValue], int, bool]:
    conn.execute("BEGIN")  # one snapshot for the revision, the mark and the rows
    try:
        revision = _meta(conn, "revision")
        compacted = _meta(conn, "compacted")
        if 0 < at_revision < revision:
            if at_revision < compacted:
                raise CompactedError(at_revision, compacted)
            rows = _rows_at(conn, prefix, limit, start_after, at_revision)
            revision = at_revision
        else:
            rows = _rows_now(conn, prefix, limit, start_after)
    finally:
        conn.execute("COMMIT")
    more = 0 < limit < len(rows)
    if more:
        rows.pop()
    return [KeyValue(*row) for row in rows], revision, more


def _rows_now(
    conn: sqlite3.Connection, prefix: str, limit: int, start_after: str
) -> list[tuple[Any, ...]]:
    where, params = _key_range(prefix, start_after)
    sql = f"SELECT key, value, create_revision, mod_revision FROM kv WHERE {where} ORDER BY key"
    if limit > 0:
        sql += " LIMIT ?"
        params.append(limit + 1)
    return conn.execute(sql, params).fetchall()


def _rows_at(
    conn: sqlite3.Connection, prefix: str, limit: int, start_after: str, at: int
) -> list[tuple[Any, ...]]:
    """Return up to limit+1 rows as they were at revision at, rebuilt from history.

    A key unchanged since ``at`` is in kv with mod_revision <= at. A key changed since has its
    first later event in history, which holds the value it had at ``at`` (the previous value of
    a PUT, the last value of a DELETE; a create means it did not exist yet).
    """
    where, params = _key_range(prefix, start_after)
    sql = (
        "SELECT key, value, create_revision, mod_revision FROM kv"
        f" WHERE {where} AND mod_revision <= ? ORDER BY key"
    )
    unchanged = _limited(conn, sql, [*params, at], limit)
    first_change: dict[str, tuple[int, bool]] = {}
    for rev, key, existed in conn.execute(
        "SELECT revision, key, deleted OR prev_mod_revision IS NOT NULL FROM events"
        f" WHERE revision > ? AND {where} ORDER BY revision",
        [at, *params],
    ):
        first_change.setdefault(key, (rev, bool(existed)))
    changed = sorted(key for key, (_, existed) in first_change.items() if existed)
    if limit > 0:
        changed = changed[: limit + 1]
    old_rows: list[tuple[Any, ...]] = []
    for start in range(0, len(changed), 500):
        revisions = [first_change[key][0] for key in changed[start : start + 500]]
        old_rows += conn.execute(
            "SELECT key, CASE WHEN deleted THEN value ELSE prev_value END, create_revision,"
            f" prev_mod_revision FROM events WHERE revision IN ({','.join('?' * len(revisions))})",
            revisions,
        ).fetchall()
    rows = sorted(unchanged + old_rows, key=lambda row: str(row[0]))
    return rows[: limit + 1] if limit > 0 else rows


def _limited(
    conn: sqlite3.Connection, sql: str, params: list[Any], limit: int
) -> list[tuple[Any, ...]]:
    if limit > 0:
        return conn.execute(f"{sql} LIMIT ?", [*params, limit + 1]).fetchall()
    return conn.execute(sql, params).fetchall()


def _read_history(
    conn: sqlite3.Connection, prefix: str, after_revision: int, page: int
) -> tuple[list[EventRow], int]:
    where, params = _key_range(prefix, "")
    conn.execute("BEGIN")  # the compacted mark and the rows from one snapshot
    try:
        compacted = _meta(conn, "compacted")
        rows = conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE revision > ? AND {where}"
            " ORDER BY revision LIMIT ?",
            [after_revision, *params, page],
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return rows, int(compacted)


# ---------------------------------------------------------------------------------------------
# The store


class SQLiteStore:
    """A Store kept in one SQLite file; see the module docstring for threads and durability."""

    def __init__(
        self,
        path: Path,
        writer: Writer,
        lock_fd: int,
        history_seconds: float,
        synchronous: str,
    ) -> None:
        self.path = path
        self.history_seconds = history_seconds
        self._synchronous = synchronous
        self._loop = asyncio.get_running_loop()
        self._writer = writer
        self._lock_fd = lock_fd
        self._hub = Broadcaster(WATCH_QUEUE_LIMIT)
        self._closed = False
        self._readers = Readers(self._reader_conn, READ_THREADS, self._loop)
        writer.deliver = self._deliver
        writer.start()
        self._compactor = CompactionTimer(
            self, history_seconds, writer.revision, writer.compacted, "dockyard-store-compact"
        )

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        history_seconds: float = 300.0,
        synchronous: Literal["FULL", "NORMAL"] = "NORMAL",
    ) -> SQLiteStore:
        """Open (creating if needed) the store file at path; one process may hold it at a time."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        path = Path(path)
        loop = asyncio.get_running_loop()
        lock_fd, writer = await asyncio.to_thread(cls._open_files, path, synchronous, loop)
        return cls(path, writer, lock_fd, history_seconds, synchronous)

    @staticmethod
    def _open_files(
        path: Path, synchronous: str, loop: asyncio.AbstractEventLoop
    ) -> tuple[int, Writer]:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise StoreError(f"{path} is already open (in this or another process)") from None
        conn: sqlite3.Connection | None = None
        try:
            conn = _connect(path, synchronous)
            conn.executescript(SCHEMA)
            schema = _meta(conn, "schema")
            if schema != SCHEMA_VERSION:
                raise StoreError(f"{path} has store schema {schema}; this dockyard reads "
                                 f"{SCHEMA_VERSION}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the Checkpointer thread does it
            checkpointer = Checkpointer(_connect(path, synchronous))
            return lock_fd, Writer(conn, loop, checkpointer)
        except BaseException as err:
            if conn is not None:
                conn.close()
            os.close(lock_fd)
            if isinstance(err, sqlite3.Error):
                raise StoreError(f"{path} cannot be opened as a store: {err}") from err
            raise

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- reads ------------------------------------------------------------------------------

    def _reader_conn(self) -> sqlite3.Connection:
        conn = _connect(self.path, self._synchronous)
        conn.execute("PRAGMA query_only=ON")
        return conn

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("the store is closed")
        return await self._readers.submit(fn, *args)

    async def get(self, key: str) -> KeyValue | None:
        """Return the key's current value, or None."""
        return await self._read(_read_get, key)

    async def list(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> tuple[list[KeyValue], int, bool]:
        """Return (items under prefix in key order, the revision served, whether more remain).

        A nonzero ``revision`` serves the state at that revision, rebuilt from history (a
        consistent paged list, as etcd gives); CompactedError if that history is compacted,
        FutureRevisionError if the store has not reached it.
        """
        check_limit(limit)
        if revision > self._writer.committing:
            raise FutureRevisionError(
                f"revision {revision} is ahead of the store's {self._writer.committing}"
            )
        return await self._read(_read_list, prefix, limit, start_after, revision)

    async def current_revision(self) -> int:
        """Return the latest committed revision."""
        return self._writer.revision

    async def stats(self) -> dict[str, int]:
        """Return figures for /metrics: keys, size in bytes, revision, compacted revision."""
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                size += os.stat(f"{self.path}{suffix}").st_size
        return {
            "keys": self._writer.keys,
            "db_size_bytes": size,
            "revision": self._writer.revision,
            "compacted_revision": self._writer.compacted,
        }

    # -- writes -----------------------------------------------------------------------------

    async def _write(
        self, kind: OpKind, key: str,
        value: bytes = b"", expected: int = 0,
    ) -> Any:
        if self._closed:
            raise StoreError("the store is closed")
        future: asyncio.Future[Any] = self._loop.create_future()
        self._writer.submit(Op(kind, key, value, expected, future))
        return await future

    def _deliver(self, outcomes: Sequence[Outcome], events: Sequence[WatchEvent]) -> None:
        self._hub.publish(events)
        for future, result in outcomes:
            if future.done():  # the caller was cancelled; the write stands regardless
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key; raise AlreadyExistsError if present."""
        check_put(key, value)
        result: KeyValue = await self._write("create", key, value)
        return result

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace the value if mod_revision equals expected_revision (0 = unconditional)."""
        check_put(key, value)
        result: KeyValue = await self._write("update", key, value, expected_revision)
        return result

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete the key (CAS when expected_revision is nonzero); return the deleted value
        with mod_revision set to the delete's revision."""
        check_key(key)
        result: KeyValue = await self._write("delete", key, b"", expected_revision)
        return result

    async def compact(self, revision: int) -> int:
        """Drop history at and below revision (capped at the current one); return the mark."""
        mark: int = self._writer.compacted
        while mark < min(revision, self._writer.revision):
            step: int = await self._write("compact", "", b"", revision)
            if step == mark:
                break
            mark = step
        return mark

    # -- watch ------------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> SQLiteWatch:
        """Return changes under prefix after after_revision, then live changes, until closed.

        Iterating raises CompactedError if after_revision is below the compacted revision,
        FutureRevisionError if it is above the current one, WatchTooSlowError if the consumer
        falls more than WATCH_QUEUE_LIMIT events behind. See SQLiteWatch.
        """
        return SQLiteWatch(self, prefix, after_revision)

    def watcher_count(self) -> int:
        """Return how many watches are subscribed to live changes."""
        return len(self._hub)

    # -- compaction and shutdown ---------------------------------------------------------------

    async def close(self) -> None:
        """Finish queued writes, end every watch, and release threads and files."""
        if self._closed:
            return
        self._closed = True
        await self._compactor.stop()
        self._hub.close()
        self._writer.stop()
        await asyncio.to_thread(self._writer.join)
        # Writes the writer finished are delivered by callbacks already queued on the loop.
        await asyncio.sleep(0)
        await asyncio.to_thread(self._readers.close)
        os.close(self._lock_fd)


class SQLiteWatch(QueuedWatch):
    """One watch: history after a revision, then live changes, in revision order.

    A cancelled ``__anext__`` leaves the watch usable (see watching.py): queued events stay
    queued and the replay resumes where it was. It subscribes on the first ``__anext__``;
    ``aclose`` (or dropping it) unsubscribes.
    """

    def __init__(self, store: SQLiteStore, prefix: str, after_revision: int) -> None:
        super().__init__(prefix, after_revision)
        self._store = store
        self._watcher: Watcher | None = None
        self._replaying = False

    def _store_closed(self) -> bool:
        return self._store._closed

    async def _fill(self) -> None:
        if self._watcher is None:
            self._start()
        if self._replaying:
            await self._replay_page()
        else:
            await self._take_live()

    def _start(self) -> None:
        # Subscribe before reading history: see the module docstring.
        self._watcher = self._store._hub.subscribe(self._prefix)
        writer = self._store._writer
        self._refuse_future(writer.committing)
        # Nothing committed after the subscription can be missing from the live queue, so a
        # watch from the current revision (the usual one, after a list) skips the replay.
        self._replaying = self._after < writer.revision

    async def _replay_page(self) -> None:
        rows, compacted = await self._store._read(
            _read_history, self._prefix, self._upto, REPLAY_PAGE
        )
        if self._upto < compacted:
            raise CompactedError(self._upto, compacted)
        self._queue(_event_from_row(row) for row in rows)
        if len(rows) < REPLAY_PAGE:
            self._replaying = False

    async def _take_live(self) -> None:
        assert self._watcher is not None
        events = await self._watcher.get()
        if not events:  # the store closed
            self._finished = True
        self._queue(events)

    async def aclose(self) -> None:
        """End the watch and unsubscribe (safe to call twice)."""
        await super().aclose()
        if self._watcher is not None:
            self._store._hub.unsubscribe(self._watcher)


if TYPE_CHECKING:

    def _conforms(store: SQLiteStore) -> Store:
        """Make mypy check that SQLiteStore implements the Store protocol."""
        return store
