"""The Store contract: every backend (SQLite, etcd) passes these same tests.

Each test runs once per entry of BACKENDS: a harness that opens a store on real data (a SQLite
file in the temp dir; a real etcd started on free loopback ports with its data in the temp dir
and stopped by PID, by tests/etcds.py) and can reopen it after a restart. Adding a backend is
one line there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest

from dockyard.store.base import (
    MAX_VALUE_BYTES,
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    FutureRevisionError,
    KeyValue,
    NotFoundError,
    Store,
    ValueTooLargeError,
    WatchEvent,
)
from dockyard.store.etcd import EtcdStore
from dockyard.store.sqlite import SQLiteStore
from tests.etcds import ETCD, RunningEtcd, etcd_installed, start_etcd

pytestmark = pytest.mark.integration

PODS = "/registry/pods/default/"


class Harness(Protocol):
    """What the contract needs from a backend beyond the Store protocol."""

    async def open(self, *, history_seconds: float = 300.0) -> Store: ...

    async def reopen(self, store: Store) -> Store: ...

    async def compact(self, store: Store, revision: int) -> None: ...

    async def aclose(self) -> None: ...


class SQLiteHarness:
    """SQLite stores on one file in the test's temp dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "store.db"
        self.history_seconds = 300.0
        self.stores: list[SQLiteStore] = []

    async def open(self, *, history_seconds: float = 300.0) -> Store:
        self.history_seconds = history_seconds
        store = await SQLiteStore.open(self.path, history_seconds=history_seconds)
        self.stores.append(store)
        return store

    async def reopen(self, store: Store) -> Store:
        await store.close()
        return await self.open(history_seconds=self.history_seconds)

    async def compact(self, store: Store, revision: int) -> None:
        assert isinstance(store, SQLiteStore)
        await store.compact(revision)

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()


class EtcdHarness:
    """A real etcd (tests/etcds.py: Debian's etcd-server) on free loopback ports, data in the
    test's temp dir, restarted on the same data by reopen."""

    def __init__(self, tmp_path: Path) -> None:
        if not etcd_installed():
            pytest.skip(f"{ETCD} is missing: apt-get install etcd-server")
        self.workdir = tmp_path
        self.etcd: RunningEtcd | None = None
        self.history_seconds = 300.0
        self.stores: list[EtcdStore] = []

    async def open(self, *, history_seconds: float = 300.0) -> Store:
        if self.etcd is None:
            self.etcd = await asyncio.to_thread(start_etcd, self.workdir)
        self.history_seconds = history_seconds
        store = await EtcdStore.open(self.etcd.url, history_seconds=history_seconds)
        self.stores.append(store)
        return store

    async def reopen(self, store: Store) -> Store:
        await store.close()
        assert self.etcd is not None
        await asyncio.to_thread(self.etcd.restart)
        return await self.open(history_seconds=self.history_seconds)

    async def compact(self, store: Store, revision: int) -> None:
        assert isinstance(store, EtcdStore)
        await store.compact(revision)

    async def aclose(self) -> None:
        for store in self.stores:
            await store.close()
        if self.etcd is not None:
            await asyncio.to_thread(self.etcd.stop)


BACKENDS: dict[str, Any] = {
    "sqlite": lambda tmp_path: SQLiteHarness(tmp_path),
    "etcd": lambda tmp_path: EtcdHarness(tmp_path),
}


@pytest.fixture(params=sorted(BACKENDS))
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    h: Harness = BACKENDS[request.param](tmp_path)
    try:
        yield h
    finally:
        await h.aclose()


@pytest.fixture
async def store(harness: Harness) -> Store:
    return await harness.open()


async def take(
    stream: AsyncIterator[WatchEvent], n: int, timeout: float = 10.0
) -> list[WatchEvent]:
    """Return the next n events of a watch, failing if they do not come in time."""

    async def collect() -> list[WatchEvent]:
        return [await anext(stream) for _ in range(n)]

    return await asyncio.wait_for(collect(), timeout)


async def nothing_more(stream: AsyncIterator[WatchEvent], wait: float = 0.2) -> None:
    """Assert the watch yields nothing within wait seconds."""
    task = asyncio.ensure_future(anext(stream))
    done, _ = await asyncio.wait({task}, timeout=wait)
    if done:
        pytest.fail(f"unexpected event {task.result()}")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await task


# --- get / create / update / delete ----------------------------------------------------------


async def test_empty_store_is_at_revision_one(store: Store) -> None:
    assert await store.current_revision() == 1
    assert await store.get(PODS + "a") is None
    assert await store.list(PODS) == ([], 1, False)


async def test_create_then_get(store: Store) -> None:
    kv = await store.create(PODS + "a", b"one")
    assert kv == KeyValue(PODS + "a", b"one", 2, 2)
    assert await store.get(PODS + "a") == kv
    assert await store.current_revision() == 2


async def test_create_existing_changes_nothing(store: Store) -> None:
    kv = await store.create(PODS + "a", b"one")
    with pytest.raises(AlreadyExistsError):
        await store.create(PODS + "a", b"two")
    assert await store.get(PODS + "a") == kv
    assert await store.current_revision() == kv.mod_revision


async def test_update_with_matching_revision(store: Store) -> None:
    created = await store.create(PODS + "a", b"one")
    updated = await store.update(PODS + "a", b"two", created.mod_revision)
    assert updated == KeyValue(PODS + "a", b"two", created.create_revision, 3)
    assert await store.get(PODS + "a") == updated


async def test_update_conflict_changes_nothing(store: Store) -> None:
    created = await store.create(PODS + "a", b"one")
    await store.update(PODS + "a", b"two", created.mod_revision)
    revision = await store.current_revision()
    with pytest.raises(ConflictError):
        await store.update(PODS + "a", b"stale", created.mod_revision)
    assert (await store.get(PODS + "a")) == KeyValue(PODS + "a", b"two", 2, 3)
    assert await store.current_revision() == revision


async def test_unconditional_update(store: Store) -> None:
    await store.create(PODS + "a", b"one")
    kv = await store.update(PODS + "a", b"two", 0)
    assert kv.value == b"two" and kv.mod_revision == 3


async def test_update_missing_key(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.update(PODS + "missing", b"x", 0)
    assert await store.current_revision() == 1


async def test_delete_returns_last_value_at_delete_revision(store: Store) -> None:
    created = await store.create(PODS + "a", b"one")
    deleted = await store.delete(PODS + "a", created.mod_revision)
    assert deleted == KeyValue(PODS + "a", b"one", created.create_revision, 3)
    assert await store.get(PODS + "a") is None
    with pytest.raises(NotFoundError):
        await store.delete(PODS + "a")


async def test_delete_conflict_changes_nothing(store: Store) -> None:
    created = await store.create(PODS + "a", b"one")
    with pytest.raises(ConflictError):
        await store.delete(PODS + "a", created.mod_revision + 1)
    assert await store.get(PODS + "a") == created
    assert await store.current_revision() == created.mod_revision


async def test_recreate_after_delete_gets_new_create_revision(store: Store) -> None:
    await store.create(PODS + "a", b"one")
    await store.delete(PODS + "a")
    again = await store.create(PODS + "a", b"two")
    assert again == KeyValue(PODS + "a", b"two", 4, 4)


async def test_revision_is_monotonic_and_one_per_write(store: Store) -> None:
    # Writes (w) add one each; failures (f) add nothing: 1 +w+w+f+w+f+w = 5.
    a = await store.create(PODS + "a", b"1")
    b = await store.create(PODS + "b", b"1")
    with pytest.raises(AlreadyExistsError):
        await store.create(PODS + "a", b"2")
    u = await store.update(PODS + "a", b"2", a.mod_revision)
    with pytest.raises(ConflictError):
        await store.update(PODS + "b", b"2", 999)
    d = await store.delete(PODS + "b")
    assert [a.mod_revision, b.mod_revision, u.mod_revision, d.mod_revision] == [2, 3, 4, 5]
    assert await store.current_revision() == 5


async def test_large_value_refused_and_nothing_stored(store: Store) -> None:
    with pytest.raises(ValueTooLargeError):
        await store.create(PODS + "big", b"x" * (MAX_VALUE_BYTES + 1))
    assert await store.get(PODS + "big") is None
    assert await store.current_revision() == 1
    kv = await store.create(PODS + "big", b"x" * MAX_VALUE_BYTES)
    with pytest.raises(ValueTooLargeError):
        await store.update(PODS + "big", b"y" * (MAX_VALUE_BYTES + 1), kv.mod_revision)
    assert await store.get(PODS + "big") == kv


# --- list -------------------------------------------------------------------------------------


async def test_list_prefix_excludes_siblings(store: Store) -> None:
    await store.create("/registry/pods/default/a", b"1")
    await store.create("/registry/pods/default2/b", b"2")
    await store.create("/registry/pods/default/c", b"3")
    await store.create("/registry/pods/defaul", b"4")
    items, revision, more = await store.list("/registry/pods/default/")
    assert [kv.key for kv in items] == ["/registry/pods/default/a", "/registry/pods/default/c"]
    assert (revision, more) == (5, False)
    everything, _, _ = await store.list("/registry/pods/")
    assert len(everything) == 4


async def test_list_is_in_key_order_with_values(store: Store) -> None:
    for name in ["c", "a", "b"]:
        await store.create(PODS + name, name.encode())
    items, _, _ = await store.list(PODS)
    assert [(kv.key, kv.value) for kv in items] == [
        (PODS + "a", b"a"), (PODS + "b", b"b"), (PODS + "c", b"c")
    ]


async def test_list_paging(store: Store) -> None:
    names = [f"pod-{i:02d}" for i in range(25)]
    for name in names:
        await store.create(PODS + name, b"v")
    pages: list[list[str]] = []
    mores: list[bool] = []
    after = ""
    while True:
        items, revision, more = await store.list(PODS, limit=10, start_after=after)
        assert revision == 26
        pages.append([kv.key.removeprefix(PODS) for kv in items])
        mores.append(more)
        if not more:
            break
        after = items[-1].key
    assert [len(p) for p in pages] == [10, 10, 5]
    assert mores == [True, True, False]
    assert sum(pages, []) == names


async def test_list_exact_page_has_no_more(store: Store) -> None:
    for i in range(4):
        await store.create(f"{PODS}p{i}", b"v")
    items, _, more = await store.list(PODS, limit=4)
    assert len(items) == 4 and more is False
    items, _, more = await store.list(PODS, limit=2, start_after=PODS + "p1")
    assert [kv.key for kv in items] == [PODS + "p2", PODS + "p3"] and more is False


async def test_list_pages_at_a_revision_see_one_snapshot(harness: Harness, store: Store) -> None:
    kvs = [await store.create(f"{PODS}p{i}", f"v{i}".encode()) for i in range(6)]
    first, revision, more = await store.list(PODS, limit=3)
    assert first == kvs[:3] and more is True
    # Changes after the first page: none may show in the next page asked at that revision.
    await store.update(kvs[4].key, b"changed", kvs[4].mod_revision)
    await store.delete(kvs[5].key)
    await store.create(PODS + "p3a", b"new")
    await store.delete(kvs[0].key)
    await store.update(kvs[3].key, b"twice", kvs[3].mod_revision)
    await store.update(kvs[3].key, b"thrice", 0)
    await store.delete(kvs[1].key)
    await store.create(kvs[1].key, b"reborn")
    second, at, more = await store.list(PODS, limit=3, start_after=first[-1].key, revision=revision)
    assert (second, at, more) == (kvs[3:], revision, False)
    everything, _, _ = await store.list(PODS, revision=revision)
    assert everything == kvs
    now, _, _ = await store.list(PODS)
    assert [kv.key.removeprefix(PODS) for kv in now] == ["p1", "p2", "p3", "p3a", "p4"]
    await harness.compact(store, revision + 2)
    with pytest.raises(CompactedError):
        await store.list(PODS, limit=3, start_after=first[-1].key, revision=revision)


async def test_list_at_future_revision_is_refused(store: Store) -> None:
    with pytest.raises(FutureRevisionError):
        await store.list(PODS, revision=100)


# --- watch ------------------------------------------------------------------------------------


async def test_watch_replays_then_goes_live(store: Store) -> None:
    a = await store.create(PODS + "a", b"1")
    b = await store.create(PODS + "b", b"1")
    u = await store.update(PODS + "a", b"2", a.mod_revision)
    stream = aiter(store.watch(PODS, a.mod_revision))
    replay = await take(stream, 2)
    assert [(e.type, e.kv.key, e.revision) for e in replay] == [
        ("PUT", PODS + "b", b.mod_revision),
        ("PUT", PODS + "a", u.mod_revision),
    ]
    assert replay[0].prev is None
    assert replay[1].prev == a
    d = await store.delete(PODS + "b")
    (live,) = await take(stream, 1)
    assert live.type == "DELETE" and live.revision == d.mod_revision
    assert live.kv == KeyValue(PODS + "b", b"1", b.create_revision, d.mod_revision)
    assert live.prev == b
    await nothing_more(stream)


async def test_watch_filters_by_prefix(store: Store) -> None:
    stream = aiter(store.watch("/registry/pods/default/", 1))
    await store.create("/registry/pods/default2/x", b"no")
    await store.create("/registry/services/default/x", b"no")
    mine = await store.create("/registry/pods/default/x", b"yes")
    (event,) = await take(stream, 1)
    assert event.kv == mine
    await nothing_more(stream)


async def test_watch_from_current_revision_sees_only_new(store: Store) -> None:
    await store.create(PODS + "old", b"1")
    stream = aiter(store.watch(PODS, await store.current_revision()))
    new = await store.create(PODS + "new", b"1")
    (event,) = await take(stream, 1)
    assert event.kv == new


async def test_watch_during_writes_has_no_gap_or_duplicate(store: Store) -> None:
    # Writers run while the watch replays; the watch must see exactly revisions R+1..end.
    for i in range(50):
        await store.create(f"{PODS}seed-{i}", b"v")
    start = await store.current_revision() - 30

    async def writer() -> None:
        for i in range(200):
            await store.create(f"{PODS}live-{i}", b"v")

    task = asyncio.create_task(writer())
    await asyncio.sleep(0)
    stream = aiter(store.watch(PODS, start))
    await task
    end = await store.current_revision()
    events = await take(stream, end - start, timeout=10)
    assert [e.revision for e in events] == list(range(start + 1, end + 1))
    await nothing_more(stream)


async def test_watches_started_amid_writes_see_every_later_revision(store: Store) -> None:
    # Each watch starts at a revision read while ten writers run (some a little in the past),
    # so some replay history and some go straight to live: all must see R+1..end exactly.
    running = True

    async def writer(w: int) -> None:
        i = 0
        while running:
            await store.create(f"{PODS}w{w}-{i}", b"v")
            i += 1

    writers = [asyncio.create_task(writer(w)) for w in range(10)]
    watches = []
    for n in range(20):
        await asyncio.sleep(0.01)
        start = max(1, await store.current_revision() - n % 3)
        stream = aiter(store.watch(PODS, start))
        watches.append((start, stream, asyncio.ensure_future(anext(stream))))
    running = False
    await asyncio.gather(*writers)
    end = await store.current_revision()
    for start, stream, first in watches:
        events = [await asyncio.wait_for(first, 10), *await take(stream, end - start - 1, 20)]
        assert [e.revision for e in events] == list(range(start + 1, end + 1))


async def test_cancelled_wait_on_a_watch_loses_nothing(store: Store) -> None:
    # Kubernetes-style loops wait with a timeout: wait_for(anext(watch), t) must not end it.
    a = await store.create(PODS + "a", b"1")
    stream = aiter(store.watch(PODS, 1))
    (replayed,) = await take(stream, 1)
    assert replayed.kv == a
    for _ in range(3):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.1)
    b = await store.create(PODS + "b", b"1")
    c = await store.create(PODS + "c", b"1")
    assert [e.kv for e in await take(stream, 2)] == [b, c]


async def test_many_watchers_all_receive(store: Store) -> None:
    streams = [aiter(store.watch(PODS, 1)) for _ in range(100)]
    pending = [asyncio.ensure_future(anext(s)) for s in streams]
    kv = await store.create(PODS + "a", b"1")
    events = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert all(e.kv == kv for e in events)


async def test_watch_future_revision(store: Store) -> None:
    await store.create(PODS + "a", b"1")
    with pytest.raises(FutureRevisionError):
        await anext(aiter(store.watch(PODS, 100)))


async def test_watch_compacted_revision(harness: Harness, store: Store) -> None:
    kvs = [await store.create(f"{PODS}p{i}", b"v") for i in range(5)]
    await harness.compact(store, kvs[2].mod_revision)
    with pytest.raises(CompactedError):
        await anext(aiter(store.watch(PODS, kvs[0].mod_revision)))
    stream = aiter(store.watch(PODS, kvs[2].mod_revision))
    events = await take(stream, 2)
    assert [e.kv for e in events] == kvs[3:]
    # Compaction drops history, never the current value of a live key.
    assert [kv.key for kv in (await store.list(PODS))[0]] == [kv.key for kv in kvs]
    assert await store.get(kvs[0].key) == kvs[0]
    assert (await store.stats())["compacted_revision"] == kvs[2].mod_revision


async def test_history_expires_after_history_seconds(harness: Harness) -> None:
    store = await harness.open(history_seconds=0.3)
    first = await store.create(PODS + "a", b"1")
    await store.create(PODS + "b", b"1")
    deadline = asyncio.get_running_loop().time() + 10
    while (await store.stats())["compacted_revision"] < first.mod_revision:
        assert asyncio.get_running_loop().time() < deadline, "history was never compacted"
        await asyncio.sleep(0.05)
    with pytest.raises(CompactedError):
        await anext(aiter(store.watch(PODS, 1)))
    assert await store.get(PODS + "a") == first
    assert (await store.stats())["keys"] == 2


async def test_close_ends_watches(harness: Harness) -> None:
    store = await harness.open()
    await store.create(PODS + "a", b"1")
    received: list[WatchEvent] = []
    live = asyncio.Event()

    async def consume() -> None:
        async for event in store.watch(PODS, 1):
            received.append(event)
            live.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(live.wait(), 10)  # the watch runs and waits for more
    await store.close()
    await asyncio.wait_for(task, 5)  # ends cleanly, no exception
    assert [e.kv.key for e in received] == [PODS + "a"]


# --- restart, stats, concurrency ----------------------------------------------------------


async def test_restart_keeps_keys_revisions_and_history(harness: Harness, store: Store) -> None:
    a = await store.create(PODS + "a", b"1")
    b = await store.create(PODS + "b", b"2")
    await store.update(PODS + "a", b"3", a.mod_revision)
    await store.delete(PODS + "b", b.mod_revision)
    before = await store.list(PODS)
    store = await harness.reopen(store)
    assert await store.list(PODS) == before
    assert await store.current_revision() == 5
    events = await take(aiter(store.watch(PODS, 1)), 4)
    assert [(e.type, e.revision) for e in events] == [
        ("PUT", 2), ("PUT", 3), ("PUT", 4), ("DELETE", 5)
    ]
    c = await store.create(PODS + "c", b"4")
    assert c.mod_revision == 6


async def test_revisions_never_repeat_after_delete_all_and_compact(
    harness: Harness, store: Store
) -> None:
    kv = await store.create(PODS + "a", b"1")
    gone = await store.delete(PODS + "a", kv.mod_revision)
    await harness.compact(store, gone.mod_revision)
    store = await harness.reopen(store)
    assert await store.current_revision() == gone.mod_revision
    again = await store.create(PODS + "a", b"2")
    assert again.mod_revision == gone.mod_revision + 1
    with pytest.raises(CompactedError):
        await anext(aiter(store.watch(PODS, 1)))


async def test_stats(store: Store) -> None:
    await store.create(PODS + "a", b"1")
    await store.create(PODS + "b", b"1")
    await store.delete(PODS + "b")
    stats = await store.stats()
    assert stats["keys"] == 1
    assert stats["revision"] == 4
    assert stats["compacted_revision"] >= 0
    assert stats["db_size_bytes"] > 0


async def test_concurrent_cas_exactly_one_wins_per_revision(store: Store) -> None:
    kv = await store.create(PODS + "hot", b"0")
    for round_ in range(5):
        results = await asyncio.gather(
            *(store.update(PODS + "hot", f"{round_}-{i}".encode(), kv.mod_revision)
              for i in range(40)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, KeyValue)]
        losers = [r for r in results if not isinstance(r, KeyValue)]
        assert len(winners) == 1
        assert all(isinstance(r, ConflictError) for r in losers)
        assert winners[0].mod_revision == kv.mod_revision + 1
        kv = winners[0]
        assert await store.get(PODS + "hot") == kv
    assert await store.current_revision() == kv.mod_revision == 7


async def test_concurrent_creates_get_distinct_consecutive_revisions(store: Store) -> None:
    kvs = await asyncio.gather(*(store.create(f"{PODS}c{i}", b"v") for i in range(200)))
    assert sorted(kv.mod_revision for kv in kvs) == list(range(2, 202))
    items, revision, _ = await store.list(PODS)
    assert len(items) == 200 and revision == 201
