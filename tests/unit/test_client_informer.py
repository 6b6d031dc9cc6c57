"""Informer logic against a FakeResourceClient: sync, events, reconnect, 410 re-list diffing.

The fake keeps objects, a revision counter and an event history like a watch cache: a watch
from revision R replays later events, a compacted history answers 410 Gone, and the test can
drop every stream or make the "server" unreachable. The real server is exercised by
tests/e2e/test_client_informer.py; these tests pin the informer's own logic.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest

from dockyard.client.api import ObjectList, WatchEvent
from dockyard.client.errors import GoneError, ServerUnreachableError
from dockyard.client.informer import (
    Backoff,
    Informer,
    InformerFactory,
    diff_cache,
    index_by_node_name,
    object_key,
    split_key,
)
from dockyard.client.workqueue import WorkQueue

pytestmark = pytest.mark.unit

Obj = dict[str, Any]


def pod(name: str, rv: int, ns: str = "default", node: str = "") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)},
            "spec": {"nodeName": node}}


class FakeWatch:
    """A watch on FakeResourceClient: replays history after its revision, then live events."""

    def __init__(self, fake: FakeResourceClient, rv: int) -> None:
        self.fake = fake
        self.start_rv = rv
        self.resource_version: str | None = str(rv)
        self.events_seen = 0
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self.opened = False

    async def __aenter__(self) -> FakeWatch:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self in self.fake.watchers:
            self.fake.watchers.remove(self)

    def __aiter__(self) -> FakeWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        if not self.opened:
            self.opened = True
            if self.fake.unreachable:
                raise ServerUnreachableError("https://fake", "Connection refused")
            if self.start_rv < self.fake.compacted:
                raise GoneError(410, "Expired", f"too old resource version: {self.start_rv}")
            for rv, event in self.fake.history:
                if rv > self.start_rv:
                    self.queue.put_nowait(event)
            self.fake.watchers.append(self)
        event = await self.queue.get()
        if event is None:
            raise StopAsyncIteration
        self.events_seen += 1
        self.resource_version = event.object["metadata"]["resourceVersion"]
        return event


class FakeResourceClient:
    """Stands in for ResourceClient.list/watch with a tiny revisioned store."""

    plural = "pods"

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.rv = 0
        self.history: list[tuple[int, WatchEvent]] = []
        self.compacted = 0
        self.watchers: list[FakeWatch] = []
        self.unreachable = False
        self.list_calls = 0
        self.list_failures: list[Exception] = []

    def put(self, name: str, node: str = "") -> Obj:
        self.rv += 1
        obj = pod(name, self.rv, node=node)
        kind = "MODIFIED" if object_key(obj) in self.objects else "ADDED"
        self.objects[object_key(obj)] = obj
        self._emit(kind, obj)
        return obj

    def remove(self, name: str) -> None:
        self.rv += 1
        obj = copy.deepcopy(self.objects.pop(f"default/{name}"))
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._emit("DELETED", obj)

    def _emit(self, kind: str, obj: Obj) -> None:
        event = WatchEvent(kind, copy.deepcopy(obj))
        self.history.append((self.rv, event))
        for w in self.watchers:
            w.queue.put_nowait(event)

    def drop_streams(self) -> None:
        for w in list(self.watchers):
            w.queue.put_nowait(None)
        self.watchers.clear()

    def compact(self) -> None:
        self.compacted = self.rv
        self.history.clear()

    async def list(self, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, resource_version: str | None = None) -> ObjectList:
        self.list_calls += 1
        if self.list_failures:
            raise self.list_failures.pop(0)
        items = [copy.deepcopy(o) for o in self.objects.values()]
        return ObjectList(items, str(self.rv), "PodList", "v1")

    def watch(self, resource_version: str | None = None, **_: Any) -> FakeWatch:
        return FakeWatch(self, int(resource_version or 0))


class Recorder:
    """Handlers that log what they were told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def on_add(self, obj: Obj) -> None:
        self.seen.append(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old: Obj, new: Obj) -> None:
        self.seen.append(("update", new["metadata"]["name"],
                          f"{old['metadata']['resourceVersion']}->"
                          f"{new['metadata']['resourceVersion']}"))

    def on_delete(self, obj: Obj) -> None:
        self.seen.append(("delete", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def register(self, informer: Informer) -> None:
        informer.add_handler(self.on_add, self.on_update, self.on_delete)


async def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def fake() -> FakeResourceClient:
    return FakeResourceClient()


async def started(fake: FakeResourceClient, rec: Recorder, **kw: Any) -> Informer:
    inf = Informer(fake, **kw)  # type: ignore[arg-type]
    inf.backoff = Backoff(0.01, 0.05)
    rec.register(inf)
    await inf.start()
    assert await inf.wait_for_sync(2)
    return inf


def test_keys() -> None:
    assert object_key(pod("a", 1, ns="ns")) == "ns/a"
    assert object_key({"metadata": {"name": "node-1"}}) == "node-1"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("node-1") == (None, "node-1")


def test_diff_cache_reports_only_what_changed() -> None:
    cache = {"default/a": pod("a", 1), "default/b": pod("b", 2), "default/c": pod("c", 3)}
    fresh, diff = diff_cache(cache, [pod("a", 1), pod("b", 7), pod("d", 8)])
    assert sorted(fresh) == ["default/a", "default/b", "default/d"]
    assert [o["metadata"]["name"] for o in diff.added] == ["d"]
    assert [(o["metadata"]["resourceVersion"], n["metadata"]["resourceVersion"])
            for o, n in diff.updated] == [("2", "7")]
    assert [o["metadata"]["name"] for o in diff.deleted] == ["c"]


def test_backoff_doubles_to_cap_and_resets() -> None:
    b = Backoff()
    assert [b.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    b.reset()
    assert b.next() == 1


async def test_sync_then_watch_events_reach_handlers_and_cache(fake: FakeResourceClient) -> None:
    fake.put("a")
    fake.put("b")
    rec = Recorder()
    inf = await started(fake, rec)
    try:
        assert rec.seen == [("add", "a", "1"), ("add", "b", "2")]
        assert inf.resource_version == "2"
        fake.put("c")
        fake.put("a")
        fake.remove("b")
        await eventually(lambda: len(rec.seen) == 5)
        assert rec.seen[2:] == [("add", "c", "3"), ("update", "a", "1->4"), ("delete", "b", "5")]
        assert sorted(inf.keys()) == ["default/a", "default/c"]
        got = inf.get("default", "a")
        assert got is not None and got["metadata"]["resourceVersion"] == "4"
        assert inf.get("default", "b") is None
        assert len(inf.list("default")) == 2 and inf.list("other") == []
        assert fake.list_calls == 1
    finally:
        await inf.stop()


async def test_dropped_watch_resumes_from_last_resource_version(
    fake: FakeResourceClient,
) -> None:
    fake.put("a")
    rec = Recorder()
    inf = await started(fake, rec)
    try:
        fake.put("b")
        await eventually(lambda: len(rec.seen) == 2)
        fake.drop_streams()
        fake.put("c")  # happens between the streams; the re-watch replays it
        await eventually(lambda: len(rec.seen) == 3)
        assert rec.seen == [("add", "a", "1"), ("add", "b", "2"), ("add", "c", "3")]
        assert fake.list_calls == 1  # no re-list needed
    finally:
        await inf.stop()


async def test_gone_relists_and_diffs_what_changed_while_away(fake: FakeResourceClient) -> None:
    for name in "abc":
        fake.put(name)
    rec = Recorder()
    inf = await started(fake, rec)
    try:
        fake.unreachable = True
        fake.drop_streams()
        fake.put("a")       # modified while away
        fake.remove("b")    # deleted while away
        fake.put("d")       # added while away
        fake.compact()      # the informer's resourceVersion is now too old: 410
        fake.unreachable = False
        await eventually(lambda: len(rec.seen) == 6)
        assert sorted(rec.seen[3:]) == [("add", "d", "6"), ("delete", "b", "2"),
                                        ("update", "a", "1->4")]
        assert fake.list_calls == 2
        assert sorted(inf.keys()) == ["default/a", "default/c", "default/d"]
        fake.put("e")  # and it keeps watching from the new list's resourceVersion
        await eventually(lambda: len(rec.seen) == 7)
        assert rec.seen[-1] == ("add", "e", "7")
    finally:
        await inf.stop()


async def test_list_failure_backs_off_then_syncs(fake: FakeResourceClient) -> None:
    fake.put("a")
    fake.list_failures = [ServerUnreachableError("https://fake"), RuntimeError("boom")]
    rec = Recorder()
    inf = await started(fake, rec)
    try:
        assert fake.list_calls == 3 and rec.seen == [("add", "a", "1")]
    finally:
        await inf.stop()


async def test_failing_and_async_handlers(fake: FakeResourceClient) -> None:
    fake.put("a")
    got: list[str] = []

    def broken(obj: Obj) -> None:
        raise RuntimeError("handler bug")

    async def slow(obj: Obj) -> None:
        await asyncio.sleep(0)
        got.append(obj["metadata"]["name"])

    inf = Informer(fake)  # type: ignore[arg-type]
    inf.add_handler(on_add=broken)
    inf.add_handler(on_add=slow)
    await inf.start()
    try:
        assert await inf.wait_for_sync(2)
        fake.put("b")
        await eventually(lambda: got == ["a", "b"])
    finally:
        await inf.stop()


async def test_late_handler_gets_existing_objects(fake: FakeResourceClient) -> None:
    fake.put("a")
    fake.put("b")
    inf = await started(fake, Recorder())
    try:
        late = Recorder()
        late.register(inf)
        await eventually(lambda: len(late.seen) == 2)
        assert sorted(late.seen) == [("add", "a", "1"), ("add", "b", "2")]
    finally:
        await inf.stop()


async def test_resync_calls_update_for_every_cached_object(fake: FakeResourceClient) -> None:
    fake.put("a")
    rec = Recorder()
    inf = await started(fake, rec, resync_period=0.02)
    try:
        await eventually(lambda: rec.seen.count(("update", "a", "1->1")) >= 2)
    finally:
        await inf.stop()


async def test_index_follows_cache(fake: FakeResourceClient) -> None:
    fake.put("a", node="n1")
    fake.put("b", node="n2")
    inf = await started(fake, Recorder())
    try:
        inf.add_index("node", index_by_node_name)
        assert [o["metadata"]["name"] for o in inf.by_index("node", "n1")] == ["a"]
        fake.put("a", node="n2")
        fake.put("c")
        await eventually(lambda: len(inf.by_index("node", "n2")) == 2)
        assert inf.by_index("node", "n1") == []
        assert [o["metadata"]["name"] for o in inf.by_index("node", "")] == ["c"]
        fake.remove("b")
        await eventually(lambda: len(inf.by_index("node", "n2")) == 1)
    finally:
        await inf.stop()


async def test_stop_ends_tasks_and_keeps_cache(fake: FakeResourceClient) -> None:
    fake.put("a")
    inf = await started(fake, Recorder())
    await inf.stop()
    fake.put("b")
    await asyncio.sleep(0.02)
    assert inf.keys() == ["default/a"] and inf.has_synced


async def test_enqueue_to_puts_keys_of_changed_objects_on_a_queue(
    fake: FakeResourceClient,
) -> None:
    fake.put("a")
    queue = WorkQueue()
    inf = Informer(fake)  # type: ignore[arg-type]
    inf.enqueue_to(queue)
    await inf.start()
    try:
        assert await inf.wait_for_sync(2)
        assert await queue.get() == "default/a"
        fake.put("a")  # updated while its key is being processed: queued again after done()
        fake.put("b")
        await eventually(lambda: len(queue) == 1)
        assert await queue.get() == "default/b"
        queue.done("default/a")
        fake.remove("b")
        await eventually(lambda: len(queue) == 1)
        assert await queue.get() == "default/a"
        queue.done("default/b")
        await eventually(lambda: len(queue) == 1)  # the delete of b
        assert await queue.get() == "default/b"
    finally:
        await inf.stop()


class FakeApi:
    """Stands in for ApiClient.resource: one FakeResourceClient per resource."""

    def __init__(self) -> None:
        self.resources: dict[tuple[str, str, str | None], FakeResourceClient] = {}

    def resource(self, api_version: str, plural: str,
                 namespace: str | None = None) -> FakeResourceClient:
        return self.resources.setdefault((api_version, plural, namespace), FakeResourceClient())


async def test_informer_factory_shares_one_informer_per_resource() -> None:
    api = FakeApi()
    factory = InformerFactory(api)  # type: ignore[arg-type]
    pods = factory.informer("v1", "pods")
    assert factory.informer("v1", "pods") is pods
    assert factory.informer("v1", "pods", label_selector="app=web") is not pods
    api.resources[("v1", "pods", None)].put("a")
    await factory.start()
    try:
        assert await factory.wait_for_sync(2)
        assert pods.keys() == ["default/a"]
    finally:
        await factory.stop()


async def test_synced_only_after_async_handlers_saw_the_first_list(
    fake: FakeResourceClient,
) -> None:
    for name in "abc":
        fake.put(name)
    seen: list[str] = []

    async def slow_add(obj: Obj) -> None:
        await asyncio.sleep(0.01)
        seen.append(obj["metadata"]["name"])

    inf = Informer(fake)  # type: ignore[arg-type]
    inf.add_handler(on_add=slow_add)
    await inf.start()
    try:
        assert await inf.wait_for_sync(2)
        assert seen == ["a", "b", "c"]
    finally:
        await inf.stop()
