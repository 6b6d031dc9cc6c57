"""The etcd store's watch cache against a real etcd: many watches, one etcd stream; watches
from before the ring fall back to their own etcd watch; a broken stream ends its watches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from dockyard.store.base import StoreError, WatchEvent
from dockyard.store.etcd import EtcdStore
from tests.etcds import RunningEtcd, etcd_installed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not etcd_installed(), reason="apt-get install etcd-server"),
]

PODS = "/registry/pods/default/"


@pytest.fixture
async def store(etcd: RunningEtcd) -> AsyncIterator[EtcdStore]:
    opened = await EtcdStore.open(etcd.url)
    yield opened
    await opened.close()


async def take(stream: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    async def collect() -> list[WatchEvent]:
        return [await anext(stream) for _ in range(n)]

    return await asyncio.wait_for(collect(), 10)


async def test_many_watches_share_one_etcd_stream(store: EtcdStore) -> None:
    start = await store.current_revision()
    watches = [store.watch(PODS, start) for _ in range(50)]
    first = [asyncio.ensure_future(anext(w)) for w in watches]
    await asyncio.sleep(0.2)
    created = await store.create(PODS + "a", b"1")
    events = await asyncio.wait_for(asyncio.gather(*first), 10)
    assert {e.kv for e in events} == {created}
    assert store.watcher_count() == 50
    assert len(store._streams) == 1  # the cache's stream, not fifty
    for watch in watches:
        await watch.aclose()
    assert store.watcher_count() == 0


async def test_a_watch_a_little_behind_replays_from_the_ring(store: EtcdStore) -> None:
    start = await store.current_revision()
    live = store.watch(PODS, start)  # starts the cache's stream at start
    written = [await store.create(PODS + f"p{i}", b"x") for i in range(5)]
    await take(live, 5)
    late = store.watch(PODS, written[1].mod_revision)
    assert [e.kv for e in await take(late, 3)] == written[2:]
    later = await store.update(PODS + "p0", b"y", written[0].mod_revision)
    assert [e.kv for e in await take(late, 1)] == [later]
    assert len(store._streams) == 1
    await live.aclose()
    await late.aclose()


async def test_a_watch_older_than_the_ring_gets_its_own_etcd_watch(store: EtcdStore) -> None:
    start = await store.current_revision()
    written = [await store.create(PODS + f"q{i}", b"x") for i in range(3)]
    newest = store.watch(PODS, written[-1].mod_revision)
    next_of_newest = asyncio.ensure_future(anext(newest))  # the stream starts after these
    await asyncio.sleep(0.2)
    old = store.watch(PODS, start)
    assert [e.kv for e in await take(old, 3)] == written
    assert len(store._streams) == 2  # the cache's stream and the old watch's own
    after = await store.create(PODS + "q9", b"x")
    assert (await asyncio.wait_for(next_of_newest, 10)).kv == after
    assert [e.kv for e in await take(old, 1)] == [after]
    await old.aclose()
    await newest.aclose()


async def test_etcd_going_away_ends_cached_watches_with_an_error(
    store: EtcdStore, etcd: RunningEtcd
) -> None:
    watch = store.watch(PODS, await store.current_revision())
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0.2)
    await asyncio.to_thread(etcd.stop)
    with pytest.raises(StoreError, match="broke"):
        await asyncio.wait_for(pending, 10)
