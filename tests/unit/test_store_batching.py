"""Batches taken from a work queue: order kept, bounds honoured, the stop sentinel never in one."""

from __future__ import annotations

import queue

import pytest

from dockyard.store.batching import take_batch

pytestmark = pytest.mark.unit

STOP = object()


def queued(*items: object) -> queue.Queue[object]:
    q: queue.Queue[object] = queue.Queue()
    for item in items:
        q.put(item)
    return q


def test_takes_what_is_queued_up_to_the_count() -> None:
    q = queued(1, 2, 3, 4, 5)
    assert take_batch(q, STOP, 3) == ([1, 2, 3], False)
    assert take_batch(q, STOP, 3) == ([4, 5], False)  # nothing more queued: no wait


def test_stop_ends_the_batch_and_is_not_in_it() -> None:
    assert take_batch(queued(1, STOP, 2), STOP, 10) == ([1], True)
    assert take_batch(queued(STOP), STOP, 10) == ([], True)


def test_weight_bounds_the_batch_once_reached() -> None:
    q = queued(b"aaaa", b"bb", b"c", b"d")
    # 4 bytes, then 6 >= 5: the batch closes after the item that reached the bound.
    assert take_batch(q, STOP, 10, len, 5) == ([b"aaaa", b"bb"], False)
    assert take_batch(q, STOP, 10, len, 5) == ([b"c", b"d"], False)
