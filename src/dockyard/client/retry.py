"""Retry a read-modify-write on 409 Conflict, as client-go's ``retry.RetryOnConflict``.

``await retry_on_conflict(lambda: bump_replicas(api, "web"))``: the callable must read the
object fresh on every call (never reuse a stale copy), change it, and write it; a
``ConflictError`` from the write (someone else updated it first) runs it again after a short
jittered backoff. ``AlreadyExistsError`` is a conflict of another kind and is never retried.
Invariant: at most ``attempts`` calls; the last ConflictError propagates.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from dockyard.client.errors import AlreadyExistsError, ConflictError

T = TypeVar("T")


async def retry_on_conflict(
    fn: Callable[[], Awaitable[T]],
    attempts: int = 5,
    base_delay: float = 0.01,
) -> T:
    """Call fn until it does not raise ConflictError (at most ``attempts`` times)."""
    attempts = max(1, attempts)
    for attempt in range(attempts):
        try:
            return await fn()
        except AlreadyExistsError:
            raise
        except ConflictError:
            if attempt == attempts - 1:
                raise
            # 10 ms, 20 ms, 40 ms... with jitter so racing writers do not collide again.
            await asyncio.sleep(base_delay * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")
