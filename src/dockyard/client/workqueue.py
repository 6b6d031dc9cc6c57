"""A rate-limited work queue of object keys, as client-go's ``workqueue``, and its worker loop.

Semantics (the ones controllers rely on):
- a key is queued at most once: adding a queued key again does nothing (dirty set);
- a key being processed is never handed to a second worker: adding it while processing marks
  it dirty, and ``done(key)`` puts it back in the queue, so the reconcile runs once more;
- ``add_after`` delays an add (a later delay for an already-waiting key keeps the earlier one);
- ``add_rate_limited`` delays by the key's own exponential backoff, ``base * 2**failures``
  capped at ``max_delay`` (client-go: 5 ms doubling to 1000 s); ``forget`` resets it;
- ``shut_down`` stops new adds; ``get`` still hands out what is queued, then raises ``ShutDown``.

``run_workers`` turns a ``reconcile(key)`` coroutine into a controller: N workers loop
get → reconcile → forget/done; a failure is logged with its key and re-queued rate-limited,
``RequeueAfter`` re-queues after a delay without counting as a failure.

Invariant: all methods are called from the queue's event loop (asyncio, one thread).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class ShutDown(Exception):
    """The queue was shut down and is empty: workers stop."""


class RequeueAfter(Exception):
    """Raised by a reconcile to run the key again after ``seconds`` (not a failure)."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(f"requeue after {seconds}s: {reason}" if reason else
                         f"requeue after {seconds}s")
        self.seconds = seconds
        self.reason = reason


class ExponentialRateLimiter:
    """Per-key exponential backoff: ``base * 2**failures`` seconds, capped at ``max_delay``."""

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base = base
        self.max_delay = max_delay
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        """Return the delay before the key's next try and count one more failure."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 64:  # 2**64 * base is past any sane cap; avoid float overflow
            return self.max_delay
        return min(self.base * (2**failures), self.max_delay)

    def num_requeues(self, key: str) -> int:
        """Return how many times the key was rate-limited since its last forget."""
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        """Reset the key's backoff."""
        self._failures.pop(key, None)


class WorkQueue:
    """Deduplicating FIFO of keys with delayed and rate-limited adds."""

    def __init__(
        self,
        name: str = "",
        base_delay: float = 0.005,
        max_delay: float = 1000.0,
        rate_limiter: ExponentialRateLimiter | None = None,
    ) -> None:
        self.name = name
        self.rate_limiter = rate_limiter or ExponentialRateLimiter(base_delay, max_delay)
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        self._delayed: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        """Tell whether shut_down was called."""
        return self._shutting_down

    def add(self, key: str) -> None:
        """Queue a key unless it is already queued; a key in processing waits for done()."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def add_after(self, key: str, seconds: float) -> None:
        """Queue a key after a delay; an earlier pending delay for the same key wins."""
        if self._shutting_down:
            return
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + seconds
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= at:
                return
            pending[1].cancel()
        handle = loop.call_at(at, self._fire_delayed, key)
        self._delayed[key] = (at, handle)

    def _fire_delayed(self, key: str) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        """Queue a key after its exponential backoff (one more failure counted)."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: str) -> None:
        """Reset the key's backoff (call after a successful reconcile)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        """Return how many rate-limited re-adds the key has had since its last forget."""
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> str:
        """Wait for a key and mark it processing; raise ShutDown once shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        """Finish processing a key; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shut_down(self) -> None:
        """Stop accepting keys, drop delayed adds and wake every waiting get()."""
        self._shutting_down = True
        for _, handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._wake()

    def _wake(self) -> None:
        # Waking every waiter is simplest and safe: each re-checks the queue; workers are few.
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


async def run_workers(
    queue: WorkQueue,
    reconcile: Callable[[str], Awaitable[None]],
    workers: int = 1,
) -> None:
    """Run ``workers`` loops of get → reconcile → forget/done until the queue shuts down."""
    tasks = [
        asyncio.create_task(_worker(queue, reconcile), name=f"{queue.name or 'queue'}-worker-{i}")
        for i in range(max(1, workers))
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _worker(queue: WorkQueue, reconcile: Callable[[str], Awaitable[None]]) -> None:
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await reconcile(key)
        except RequeueAfter as r:
            # Not a failure: the reconcile asked to look again later (e.g. a timer expires).
            queue.forget(key)
            queue.add_after(key, r.seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: reconcile %r failed (retry %d); requeued with backoff",
                          queue.name or "queue", key, queue.num_requeues(key) + 1)
            queue.add_rate_limited(key)
        else:
            queue.forget(key)
        finally:
            queue.done(key)
