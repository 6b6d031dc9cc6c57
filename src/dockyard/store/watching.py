"""What every backend's watch shares: a queue of events ready for the consumer, and its checks.

A watch is an iterator object rather than an async generator so that a cancelled ``__anext__``
(as in ``asyncio.wait_for(anext(watch), timeout)``) loses nothing: events already taken stay
queued here, and the rest stay wherever the backend reads them from (``_fill``).

Invariants:
- Events reach the consumer in revision order, each once: ``_queue`` drops every event at or
  below the newest revision already queued (``_upto``).
- Once the watch is closed or finished, or its store closed, ``__anext__`` raises
  StopAsyncIteration. A StoreError from ``_fill`` closes the watch before it reaches the
  consumer; while the store is closing it ends the watch quietly instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from typing import Self

from dockyard.store.base import FutureRevisionError, StoreError, WatchEvent


class QueuedWatch(ABC):
    """The consumer's side of one watch under a prefix from after a revision."""

    def __init__(self, prefix: str, after_revision: int) -> None:
        self._prefix = prefix
        self._after = after_revision
        self._upto = after_revision  # the newest revision queued for the consumer
        self._ready: deque[WatchEvent] = deque()
        self._finished = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        while not self._ready:
            if self._finished or self._store_closed():
                await self.aclose()
                raise StopAsyncIteration
            try:
                await self._fill()
            except StoreError:
                await self.aclose()
                if self._store_closed():
                    raise StopAsyncIteration from None
                raise
        return self._ready.popleft()

    @abstractmethod
    def _store_closed(self) -> bool:
        """Return whether the watch's store is closed."""

    @abstractmethod
    async def _fill(self) -> None:
        """Queue more events (or mark the watch finished); raise StoreError when it broke."""

    def _refuse_future(self, current: int) -> None:
        """Raise FutureRevisionError when the watch starts after the store's current revision."""
        if self._after > current:
            raise FutureRevisionError(
                f"watch from revision {self._after}: the store is at {current}"
            )

    def _queue(self, events: Iterable[WatchEvent]) -> None:
        """Queue the events newer than every event queued so far."""
        for event in events:
            if event.revision > self._upto:
                self._ready.append(event)
                self._upto = event.revision

    async def aclose(self) -> None:
        """End the watch (safe to call twice)."""
        self._finished = True
