"""In-process watch fan-out: one broadcaster, one bounded queue per watcher.

A backend commits changes, then hands each committed batch to ``Broadcaster.publish`` on the
event loop thread. Every ``Watcher`` subscribed to a prefix that the changed key starts with gets
the event appended to its own queue.

Invariants:
- ``publish`` is called on the event loop thread in revision order, so every watcher receives
  the events under its prefix in revision order, each once.
- Memory stays bounded: a watcher whose queue grows past its limit (it is not being drained) is
  ended; its queued events are dropped and its next ``get`` raises ``WatchTooSlowError``. The api
  server closes that watch and the client re-lists, as Kubernetes does for slow watchers.
- After ``close`` every watcher's ``get`` returns an empty list: watch iterators end cleanly.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Sequence

from dockyard.store.base import WatchEvent, WatchTooSlowError

WATCH_QUEUE_LIMIT = 10_000  # events queued for one watcher before it is ended as too slow


class Watcher:
    """One subscriber's queue of live events under a key prefix."""

    __slots__ = ("prefix", "_events", "_waiter", "_limit", "_error", "_closed", "__weakref__")

    def __init__(self, prefix: str, limit: int) -> None:
        self.prefix = prefix
        self._events: deque[WatchEvent] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._limit = limit
        self._error: WatchTooSlowError | None = None
        self._closed = False

    def push(self, events: Sequence[WatchEvent]) -> None:
        """Queue events for this watcher, ending it if it has fallen too far behind."""
        if self._error is not None or self._closed:
            return
        self._events.extend(events)
        if len(self._events) > self._limit:
            self._events.clear()
            self._error = WatchTooSlowError(
                f"watch on {self.prefix!r} fell more than {self._limit} events behind"
            )
        self._wake()

    def end(self) -> None:
        """End the watcher: get() returns [] once the queued events are taken."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> list[WatchEvent]:
        """Return all queued events, waiting for at least one; [] once ended."""
        while True:
            if self._error is not None:
                raise self._error
            if self._events:
                events = list(self._events)
                self._events.clear()
                return events
            if self._closed:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class Broadcaster:
    """Hands each committed batch of events to the watchers whose prefix matches."""

    def __init__(self, limit: int = WATCH_QUEUE_LIMIT) -> None:
        # Grouped by prefix: with many watchers on few prefixes (the usual api server shape),
        # each event is matched once per distinct prefix, not once per watcher. Weak sets: a
        # watch its consumer dropped without closing is forgotten with it.
        self._by_prefix: dict[str, weakref.WeakSet[Watcher]] = {}
        self._limit = limit
        self._closed = False

    def subscribe(self, prefix: str) -> Watcher:
        """Return a new watcher that receives every event published from now on under prefix."""
        watcher = Watcher(prefix, self._limit)
        if self._closed:
            watcher.end()
        else:
            self._by_prefix.setdefault(prefix, weakref.WeakSet()).add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        """Stop delivering to watcher (safe to call twice)."""
        group = self._by_prefix.get(watcher.prefix)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            del self._by_prefix[watcher.prefix]

    def publish(self, events: Sequence[WatchEvent]) -> None:
        """Deliver committed events, in revision order, to every matching watcher."""
        if not events:
            return
        for prefix, group in list(self._by_prefix.items()):
            matched = [e for e in events if e.kv.key.startswith(prefix)] if prefix else events
            if matched:
                for watcher in group:
                    watcher.push(matched)

    def close(self) -> None:
        """End every watcher; later subscribers are ended at once."""
        self._closed = True
        for group in self._by_prefix.values():
            for watcher in group:
                watcher.end()
        self._by_prefix.clear()

    def __len__(self) -> int:
        return sum(len(group) for group in self._by_prefix.values())
