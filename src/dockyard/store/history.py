"""How much watch history to keep: notes of (time, revision) taken on a timer.

A backend calls ``note(revision)`` every ``interval`` seconds; it answers the newest revision
noted at least ``history_seconds`` ago, which the backend then compacts to. So history always
covers at least ``history_seconds`` (and at most one interval more). The notes live in memory:
after a restart they start again, which keeps history longer, never shorter.

``CompactionTimer`` is that timer, one per store: it compacts to the answer whenever it is
above the store's compacted revision. A failed compaction is logged and retried on the next
tick (history only grows meanwhile); the timer ends quietly once the store closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class HistoryClock:
    """Remembers when each noted revision was current, to find the one that aged out."""

    def __init__(self, history_seconds: float, revision: int, now: float | None = None) -> None:
        if history_seconds <= 0:
            raise ValueError(f"history_seconds must be positive, not {history_seconds}")
        self.history_seconds = history_seconds
        self.interval = min(history_seconds / 2, 10.0)
        start = time.monotonic() if now is None else now
        self._notes: deque[tuple[float, int]] = deque([(start, revision)])

    def note(self, revision: int, now: float | None = None) -> int:
        """Record revision as current now; return the revision to compact to (0: none yet)."""
        now = time.monotonic() if now is None else now
        self._notes.append((now, revision))
        target = 0
        while self._notes and self._notes[0][0] <= now - self.history_seconds:
            target = self._notes.popleft()[1]
        return target


class Compactable(Protocol):
    """The part of a store the compaction timer uses."""

    async def current_revision(self) -> int:
        """Return the latest revision."""
        ...

    async def compact(self, revision: int) -> int:
        """Drop history at and below revision; return the new compacted revision."""
        ...


class CompactionTimer:
    """Compacts a store every interval to the revision that was current history_seconds ago."""

    def __init__(
        self, store: Compactable, history_seconds: float, revision: int, compacted: int, name: str
    ) -> None:
        self._store = store
        self._clock = HistoryClock(history_seconds, revision)
        self._compacted = compacted  # the last mark compact() answered
        self._stopped = False
        self._task = asyncio.create_task(self._run(), name=name)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._clock.interval)
            try:
                target = self._clock.note(await self._store.current_revision())
                if target > self._compacted:
                    self._compacted = await self._store.compact(target)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                if self._stopped:  # the store is closing
                    return
                # Keep the timer alive whatever failed: the next tick retries, and until then
                # history only grows.
                log.warning("compaction failed: %s", err)

    async def stop(self) -> None:
        """Cancel the timer and wait until it has ended (the store calls this as it closes)."""
        self._stopped = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
