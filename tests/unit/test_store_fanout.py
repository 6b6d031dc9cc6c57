"""The watch broadcaster: prefix matching, ordering, bounded queues, close."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.store.base import KeyValue, WatchEvent, WatchTooSlowError
from dockyard.store.fanout import Broadcaster

pytestmark = pytest.mark.unit


def put(key: str, revision: int) -> WatchEvent:
    return WatchEvent("PUT", KeyValue(key, b"v", revision, revision), None, revision)


async def test_watchers_get_only_their_prefix_in_order() -> None:
    hub = Broadcaster()
    pods = hub.subscribe("/registry/pods/default/")
    everything = hub.subscribe("")
    hub.publish([put("/registry/pods/default/a", 2), put("/registry/pods/default2/b", 3)])
    hub.publish([put("/registry/pods/default/c", 4)])
    assert [e.revision for e in await pods.get()] == [2, 4]
    assert [e.revision for e in await everything.get()] == [2, 3, 4]


async def test_get_waits_for_a_publish() -> None:
    hub = Broadcaster()
    watcher = hub.subscribe("/a/")
    task = asyncio.ensure_future(watcher.get())
    await asyncio.sleep(0)
    assert not task.done()
    hub.publish([put("/a/x", 2)])
    assert [e.revision for e in await asyncio.wait_for(task, 1)] == [2]


async def test_watcher_past_its_limit_is_ended_and_dropped_events_freed() -> None:
    hub = Broadcaster(limit=3)
    slow = hub.subscribe("/")
    fast = hub.subscribe("/")
    for revision in range(2, 6):  # 4 events > limit 3
        hub.publish([put("/k", revision)])
        if revision == 3:
            await fast.get()
    with pytest.raises(WatchTooSlowError, match="more than 3 events behind"):
        await slow.get()
    assert [e.revision for e in await fast.get()] == [4, 5]


async def test_close_ends_waiting_and_future_watchers() -> None:
    hub = Broadcaster()
    watcher = hub.subscribe("/")
    task = asyncio.ensure_future(watcher.get())
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(task, 1) == []
    assert await hub.subscribe("/").get() == []
    assert len(hub) == 0


async def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    hub = Broadcaster()
    watcher = hub.subscribe("/")
    hub.unsubscribe(watcher)
    hub.unsubscribe(watcher)
    hub.publish([put("/k", 2)])
    assert len(hub) == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(watcher.get(), 0.05)
