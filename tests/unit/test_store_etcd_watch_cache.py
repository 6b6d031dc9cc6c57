"""The etcd watch cache's ring and fan-out, fed by a FakeStream instead of etcd.

The real stream is proven against etcd in tests/integration/test_store_etcd_watch_cache.py;
here the revision arithmetic of the ring: which watches it covers, and what each one gets.
"""

from __future__ import annotations

import asyncio

import pytest

from dockyard.store.base import KeyValue, StoreError, WatchEvent
from dockyard.store.etcd_watch_cache import WatchCache

pytestmark = pytest.mark.unit


class FakeStream:
    """An etcd stream whose events the test pushes; records the revision it was opened after."""

    def __init__(self) -> None:
        self.opened_after: list[int] = []
        self.queue: asyncio.Queue[WatchEvent | Exception | None] = asyncio.Queue()

    def open(self, after: int) -> FakeStream:
        self.opened_after.append(after)
        return self

    def __aiter__(self) -> FakeStream:
        return self

    async def __anext__(self) -> WatchEvent:
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item

    def put(self, key: str, revision: int) -> WatchEvent:
        event = WatchEvent("PUT", KeyValue(key, b"v", revision, revision), None, revision)
        self.queue.put_nowait(event)
        return event


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_stream_starts_at_the_first_watch_and_serves_later_ones() -> None:
    fake = FakeStream()
    cache = WatchCache(fake.open)
    first = cache.subscribe("/a/", 10)
    await settle()
    assert first is not None and fake.opened_after == [10]
    e11, _e12, e13 = fake.put("/a/x", 11), fake.put("/b/y", 12), fake.put("/a/z", 13)
    await settle()
    assert await first.watcher.get() == [e11, e13]  # only its prefix
    # Revision 11 is in the ring (10, 13]: replay what came after it, then live events.
    second = cache.subscribe("/a/", 11)
    assert second is not None and second.replay == [e13]
    e14 = fake.put("/a/w", 14)
    await settle()
    assert await second.watcher.get() == [e14]
    assert cache.subscribe("/a/", 9) is None  # before the stream began: etcd must replay
    assert fake.opened_after == [10]
    await cache.close()


@pytest.mark.parametrize("limit", [{"ring_events": 2}, {"ring_bytes": 2}], ids=["events", "bytes"])
async def test_eviction_from_the_ring_raises_what_it_covers(limit: dict[str, int]) -> None:
    # Room for 2 events (or their 2 one-byte values) after events 11, 12, 13: 11 is evicted,
    # so the ring covers (11, 13].
    fake = FakeStream()
    cache = WatchCache(fake.open, **limit)
    assert cache.subscribe("/", 10) is not None
    for revision in (11, 12, 13):
        fake.put("/k", revision)
    await settle()
    assert cache.subscribe("/", 10) is None
    covered = cache.subscribe("/", 11)
    assert covered is not None and [e.revision for e in covered.replay] == [12, 13]
    await cache.close()


async def test_a_failed_stream_hands_its_error_to_watchers_and_a_new_one_starts() -> None:
    fake = FakeStream()
    cache = WatchCache(fake.open)
    watch = cache.subscribe("/", 5)
    assert watch is not None
    fake.queue.put_nowait(StoreError("connection reset"))
    await settle()
    assert await watch.watcher.get() == []  # ended ...
    assert isinstance(watch.stream.error, StoreError)  # ... with the reason
    again = cache.subscribe("/", 7)
    await settle()
    assert again is not None and fake.opened_after == [5, 7]
    await cache.close()
    assert await again.watcher.get() == []


async def test_a_closed_subscription_gets_nothing_more() -> None:
    fake = FakeStream()
    cache = WatchCache(fake.open)
    watch = cache.subscribe("/", 1)
    assert watch is not None
    watch.close()
    fake.put("/k", 2)
    await settle()
    assert await watch.watcher.get() == []
    assert cache.watcher_count() == 0
    await cache.close()
