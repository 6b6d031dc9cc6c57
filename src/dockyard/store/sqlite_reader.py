"""The SQLite store's read threads: a few connections answering queued reads in batches.

Each read thread owns one connection (WAL lets readers run beside the writer, each read seeing
a committed snapshot). Reads queue up; a thread takes what is queued (up to MAX_BATCH_READS),
runs them one after the other and hands all results back to the event loop in one callback.

Why not ``run_in_executor``: every executor call costs a concurrent future, a wrapped asyncio
future and its own cross-thread wake-up; with a hundred concurrent ``get``s those per-call costs,
not SQLite, set the latency. Batching pays the hand-off once per batch.

Invariants:
- Every submitted read resolves exactly once: with its result, with the StoreError it raised,
  or with a StoreError if SQLite failed or the readers were closed first.
- ``close`` lets queued reads finish, then closes every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dockyard.store.base import StoreError
from dockyard.store.batching import take_batch

T = TypeVar("T")
MAX_BATCH_READS = 16  # small, so one slow list does not hold many quick gets behind it

ReadFn = Callable[..., Any]
_Request = tuple[ReadFn, tuple[Any, ...], asyncio.Future[Any]]
_STOP = object()


def _resolve(outcomes: Sequence[tuple[asyncio.Future[Any], Any, bool]]) -> None:
    for future, result, failed in outcomes:
        if future.done():  # the caller was cancelled
            continue
        if failed:
            future.set_exception(result)
        else:
            future.set_result(result)


class Readers:
    """Read threads with one connection each, serving queued reads in batches."""

    def __init__(
        self, connect: Callable[[], sqlite3.Connection], count: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._connect = connect
        self._loop = loop
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"dockyard-store-read-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue fn(connection, *args) for a read thread; return a future of its result."""
        future: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((fn, args, future))
        return future

    def close(self) -> None:
        """Finish queued reads and stop the threads (blocking: call it from a thread)."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        error: StoreError | None = None
        try:
            conn = self._connect()
        except sqlite3.Error as err:
            # Keep serving, with this error, so no read waits forever on a thread that died.
            error = StoreError(f"cannot open a read connection: {err}")
        stopping = False
        while not stopping:
            batch, stopping = self._take_batch()
            self._serve(conn, error, batch)
        if conn is not None:
            conn.close()

    def _take_batch(self) -> tuple[list[_Request], bool]:
        return take_batch(self._queue, _STOP, MAX_BATCH_READS)

    def _serve(
        self, conn: sqlite3.Connection | None, error: StoreError | None, batch: list[_Request]
    ) -> None:
        if not batch:
            return
        outcomes: list[tuple[asyncio.Future[Any], Any, bool]] = []
        for fn, args, future in batch:
            if conn is None:
                outcomes.append((future, error, True))
                continue
            try:
                outcomes.append((future, fn(conn, *args), False))
            except StoreError as err:
                outcomes.append((future, err, True))
            except sqlite3.Error as err:
                outcomes.append((future, StoreError(f"sqlite read failed: {err}"), True))
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody waits
            self._loop.call_soon_threadsafe(_resolve, outcomes)
