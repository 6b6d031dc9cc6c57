"""Batches from a thread's work queue: what SQLite's reader and writer threads serve at once.

Each thread blocks for one item, then takes what else is already queued without waiting, up to
a count (and for the writer a byte size), so a busy queue is served in few round trips and an
idle one answers its single item at once.

Invariant: items keep their queue order; the stop sentinel ends the batch and is never in it.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class WorkQueue(Protocol):
    """A queue.Queue or queue.SimpleQueue."""

    def get(self) -> Any:
        """Return the next item, waiting for one."""
        ...

    def get_nowait(self) -> Any:
        """Return the next item; raise queue.Empty if there is none."""
        ...


def take_batch(
    source: WorkQueue, stop: object, max_items: int,
    weight: Callable[[T], int] = lambda _: 0, max_weight: int = 1,
) -> tuple[list[T], bool]:
    """Return (the batch, whether stop was taken): the first item waited for, then those queued
    until max_items, or until their weight adds up to max_weight."""
    first = source.get()
    if first is stop:
        return [], True
    batch: list[T] = [first]
    total = weight(first)
    while len(batch) < max_items and total < max_weight:
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
        if item is stop:
            return batch, True
        batch.append(item)
        total += weight(item)
    return batch, False
