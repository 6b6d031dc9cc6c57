"""FakeApiClient's own behaviour; the contract it shares with the server is in
tests/e2e/test_client_contract.py (run against both)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from dockyard.client import GoneError, Informer, NotFoundError
from dockyard.client.fake import FakeApiClient, merge_patch

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("target", "patch", "result"),
    [  # the examples of RFC 7386, appendix A
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch(target, patch) == result


def test_merge_patch_does_not_modify_its_input() -> None:
    target = {"a": {"b": 1}}
    merge_patch(target, {"a": {"b": 2}})
    assert target == {"a": {"b": 1}}


async def test_unknown_resource_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        FakeApiClient().resource("v1", "widgets", "default")


async def test_unsupported_patch_types_say_so() -> None:
    cms = FakeApiClient().resource("v1", "configmaps", "default")
    await cms.create({"metadata": {"name": "x"}})
    with pytest.raises(NotImplementedError, match="strategic"):
        await cms.patch("x", {"data": {}}, "strategic")


async def test_returned_objects_are_copies() -> None:
    api = FakeApiClient()
    cms = api.resource("v1", "configmaps", "default")
    created = await cms.create({"metadata": {"name": "x"}, "data": {"a": "1"}})
    created["data"]["a"] = "changed by the caller"
    (await cms.get("x"))["data"]["a"] = "changed again"
    assert (await cms.get("x"))["data"] == {"a": "1"}


async def test_watch_from_before_compaction_is_gone() -> None:
    api = FakeApiClient()
    cms = api.resource("v1", "configmaps", "default")
    old = (await cms.list()).resource_version
    await cms.create({"metadata": {"name": "x"}})
    api.cluster.compact()
    with pytest.raises(GoneError) as e:
        async for _ in cms.watch(resource_version=old):
            pass
    assert e.value.status == 410 and e.value.reason == "Expired"


async def test_all_namespaces_and_cluster_scope() -> None:
    api = FakeApiClient()
    await api.resource("v1", "configmaps", "a").create({"metadata": {"name": "x"}})
    await api.resource("v1", "configmaps", "b").create({"metadata": {"name": "x"}})
    everywhere = await api.resource("v1", "configmaps").list()
    assert [o["metadata"]["namespace"] for o in everywhere.items] == ["a", "b"]
    node = await api.resource("v1", "nodes").create({"metadata": {"name": "n1"}})
    assert "namespace" not in node["metadata"]


async def eventually(cond: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_informer_over_the_fake_relists_after_compaction() -> None:
    api = FakeApiClient()
    cms = api.resource("v1", "configmaps", "default")
    await cms.create({"metadata": {"name": "a"}})
    await cms.create({"metadata": {"name": "b"}})
    deleted: list[str] = []
    informer = Informer(api.resource("v1", "configmaps"))  # type: ignore[arg-type]
    informer.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    await informer.start()
    try:
        assert await informer.wait_for_sync(2)
        api.cluster.drop_watches()  # the stream ends ...
        await cms.delete("b")
        await cms.create({"metadata": {"name": "c"}})
        api.cluster.compact()  # ... and its resourceVersion is gone: 410, re-list, diff
        await eventually(lambda: sorted(informer.keys()) == ["default/a", "default/c"])
        assert deleted == ["b"]
    finally:
        await informer.stop()
