"""The namespace cache behind namespaced creates, over the api storage and a real SQLite file.

What it must keep (see dockyard.api.namespace_cache): a create in a namespace created a moment
ago succeeds, a namespace this server marked terminating is refused by the very next create,
other writers' changes arrive through the watch, and no entry ever moves back in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dockyard.api.namespace_cache import NamespaceCache, NamespaceState
from dockyard.api.status import StatusError
from dockyard.api.storage import DeleteOptions, ResourceStorage
from dockyard.objects.resources import ResourceInfo, lookup
from dockyard.store.base import KeyValue
from dockyard.store.sqlite import SQLiteStore

pytestmark = pytest.mark.unit
Obj = dict[str, Any]


def info(plural: str) -> ResourceInfo:
    found = lookup("", "v1", plural)
    assert found is not None
    return found


NAMESPACES, CONFIGMAPS = info("namespaces"), info("configmaps")


class CountingStore(SQLiteStore):
    """The real SQLite store, counting its reads of single keys."""

    gets = 0

    async def get(self, key: str) -> KeyValue | None:
        self.gets += 1
        return await super().get(key)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[CountingStore]:
    opened = await CountingStore.open(tmp_path / "state.db")
    assert isinstance(opened, CountingStore)
    yield opened
    await opened.close()


@pytest.fixture
async def storage(store: CountingStore) -> AsyncIterator[ResourceStorage]:
    storage = ResourceStorage(store)
    storage.namespaces.start()
    await wait_for(lambda: storage.namespaces.synced)
    yield storage
    await storage.namespaces.stop()


async def wait_for(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
            "data": {"k": "v"}}


async def test_create_in_a_namespace_just_created_succeeds(storage: ResourceStorage) -> None:
    await storage.create(NAMESPACES, None, namespace("fresh"))
    made = await storage.create(CONFIGMAPS, "fresh", configmap("c"))
    assert made["metadata"]["namespace"] == "fresh"


async def test_namespace_written_behind_the_cache_is_read_from_the_store(
    storage: ResourceStorage, store: CountingStore
) -> None:
    # Another api server's create: the watch may not have delivered it yet; a miss reads.
    other = ResourceStorage(store)
    await other.create(NAMESPACES, None, namespace("elsewhere"))
    made = await storage.create(CONFIGMAPS, "elsewhere", configmap("c"))
    assert made["metadata"]["namespace"] == "elsewhere"


async def test_active_namespace_is_answered_from_memory(
    storage: ResourceStorage, store: CountingStore
) -> None:
    await storage.create(NAMESPACES, None, namespace("busy"))
    before = store.gets
    for i in range(5):
        await storage.create(CONFIGMAPS, "busy", configmap(f"c{i}"))
    assert store.gets == before


async def test_missing_namespace_is_refused(storage: ResourceStorage) -> None:
    with pytest.raises(StatusError) as caught:
        await storage.create(CONFIGMAPS, "nowhere", configmap("c"))
    assert caught.value.code == 404
    assert "nowhere" in str(caught.value)


async def test_terminating_namespace_is_refused_by_the_next_create(
    storage: ResourceStorage,
) -> None:
    await storage.create(NAMESPACES, None, namespace("doomed"))
    await storage.create(CONFIGMAPS, "doomed", configmap("before"))
    marked = await storage.delete(NAMESPACES, None, "doomed", DeleteOptions())
    assert marked["metadata"]["deletionTimestamp"]
    # No await in between: write-through, not the watch, made the cache know.
    with pytest.raises(StatusError) as caught:
        await storage.create(CONFIGMAPS, "doomed", configmap("after"))
    assert caught.value.code == 403
    assert "being terminated" in str(caught.value)


async def test_this_servers_writes_reach_the_cache_before_any_watch_event(
    store: CountingStore,
) -> None:
    storage = ResourceStorage(store)
    # A watch that has listed but delivers nothing more (the slowest watch possible): what the
    # cache learns now comes from write-through alone.
    storage.namespaces._synced = True
    await storage.create(NAMESPACES, None, namespace("lagging"))
    before = store.gets
    await storage.create(CONFIGMAPS, "lagging", configmap("c0"))
    assert store.gets == before  # known as active without a read
    await storage.delete(NAMESPACES, None, "lagging", DeleteOptions())
    with pytest.raises(StatusError) as caught:
        await storage.create(CONFIGMAPS, "lagging", configmap("c1"))
    assert caught.value.code == 403


async def test_other_writers_terminating_mark_arrives_through_the_watch(
    storage: ResourceStorage, store: CountingStore
) -> None:
    await storage.create(NAMESPACES, None, namespace("shared"))
    await storage.create(CONFIGMAPS, "shared", configmap("c0"))  # cached as active
    other = ResourceStorage(store)  # another api server over the same store
    await other.delete(NAMESPACES, None, "shared", DeleteOptions())

    def seen_terminating() -> bool:
        state = storage.namespaces._states.get("shared")
        return state is not None and state.terminating

    await wait_for(seen_terminating)
    with pytest.raises(StatusError) as caught:
        await storage.create(CONFIGMAPS, "shared", configmap("c1"))
    assert caught.value.code == 403


async def test_deleted_and_recreated_namespace_accepts_again(storage: ResourceStorage) -> None:
    await storage.create(NAMESPACES, None, namespace("again"))
    await storage.delete(NAMESPACES, None, "again", DeleteOptions())
    # Release it as the namespace cleaner does once it is empty: clear spec.finalizers.
    await storage.update(NAMESPACES, None, "again",
                         lambda ns: {**ns, "spec": {"finalizers": []}})
    with pytest.raises(StatusError) as caught:
        await storage.create(CONFIGMAPS, "again", configmap("c"))
    assert caught.value.code == 404
    await storage.create(NAMESPACES, None, namespace("again"))
    made = await storage.create(CONFIGMAPS, "again", configmap("c"))
    assert made["metadata"]["namespace"] == "again"


async def test_an_older_state_never_replaces_a_newer_one(store: CountingStore) -> None:
    cache = NamespaceCache(store)
    cache.observe("ns", NamespaceState(10, exists=True, terminating=True))
    cache.observe("ns", NamespaceState(7, exists=True, terminating=False))
    assert cache._states["ns"] == NamespaceState(10, exists=True, terminating=True)
    cache.observe_deleted("ns", 12)
    cache.observe("ns", NamespaceState(11, exists=True))  # a late PUT cannot resurrect it
    assert cache._states["ns"] == NamespaceState(12, exists=False)


async def test_without_the_watch_every_lookup_reads_the_store(store: CountingStore) -> None:
    storage = ResourceStorage(store)  # never started: tools and tests use it like this
    await storage.create(NAMESPACES, None, namespace("plain"))
    before = store.gets
    await storage.create(CONFIGMAPS, "plain", configmap("c"))
    assert store.gets == before + 1


async def test_a_cached_entry_the_store_no_longer_has_is_forgotten_on_listing(
    store: CountingStore,
) -> None:
    cache = NamespaceCache(store)
    cache.observe("ghost", NamespaceState(1, exists=True))
    cache.start()
    try:
        await wait_for(lambda: cache.synced)
        assert "ghost" not in cache._states
        assert await cache.lookup("ghost") is None
    finally:
        await cache.stop()


async def test_created_object_is_what_a_read_returns(storage: ResourceStorage) -> None:
    await storage.create(NAMESPACES, None, namespace("shape"))
    made = await storage.create(CONFIGMAPS, "shape", {
        "data": {"b": "2", "a": "1"}, "kind": "ConfigMap", "apiVersion": "v1",
        "metadata": {"labels": {"x": "y"}, "name": "c"},
    })
    read = await storage.get(CONFIGMAPS, "shape", "c")
    # Same content and the same key order, as encoded bytes show.
    assert orjson.dumps(made) == orjson.dumps(read)
