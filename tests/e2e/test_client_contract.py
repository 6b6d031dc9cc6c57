"""One contract, two implementations: the real `dockyard server` and FakeApiClient.

Every test runs against both, so FakeApiClient (used by the loops' fast unit tests) answers
as the server does for what it models.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.client import (
    AlreadyExistsError,
    ApiClient,
    ConflictError,
    InvalidError,
    NotFoundError,
    load_kubeconfig,
)
from dockyard.client.fake import FakeApiClient
from tests.e2e.test_client_support import (
    configmap,
    deployment,
    pod,
    quiet_server_fixture,
    take,
    unique,
)

pytestmark = pytest.mark.e2e

quiet_server = quiet_server_fixture()


@pytest.fixture(params=["server", "fake"])
async def api(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "fake":
        yield FakeApiClient()
        return
    server = request.getfixturevalue("quiet_server")
    async with ApiClient(load_kubeconfig(str(server.kubeconfig))) as client:
        yield client


async def test_create_fills_metadata(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("meta")
    created = await cms.create(configmap(name, a="1"))
    meta = created["metadata"]
    assert meta["name"] == name and meta["namespace"] == "default"
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert created["kind"] == "ConfigMap" and created["apiVersion"] == "v1"
    assert (await cms.get(name))["metadata"]["uid"] == meta["uid"]
    generated = await cms.create({"metadata": {"generateName": "gen-"}})
    assert generated["metadata"]["name"].startswith("gen-")
    assert len(generated["metadata"]["name"]) > len("gen-")
    with pytest.raises(InvalidError):
        await cms.create({"metadata": {}})
    with pytest.raises(AlreadyExistsError):
        await cms.create(configmap(name))


async def test_update_is_compare_and_swap(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("cas")
    first = await cms.create(configmap(name, a="1"))
    second = await cms.update({**first, "data": {"a": "2"}})
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    with pytest.raises(ConflictError):
        await cms.update({**first, "data": {"a": "3"}})
    unconditional = {**second, "metadata": {k: v for k, v in second["metadata"].items()
                                            if k != "resourceVersion"}, "data": {"a": "4"}}
    assert (await cms.update(unconditional))["data"] == {"a": "4"}
    with pytest.raises(NotFoundError):
        await cms.update(configmap(unique("missing")))


async def test_no_op_update_keeps_resource_version(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    created = await cms.create(configmap(unique("noop"), a="1"))
    again = await cms.update(created)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_status_and_spec_are_written_separately(api: Any) -> None:
    deployments = api.resource("apps/v1", "deployments", "default")
    created = await deployments.create(deployment(unique("split")))
    assert created["metadata"]["generation"] == 1
    assert not created.get("status")
    with_status = {**created, "status": {"replicas": 5},
                   "spec": {**created["spec"], "replicas": 2}}
    updated = await deployments.update(with_status)
    assert updated["spec"]["replicas"] == 2 and not updated.get("status")
    assert updated["metadata"]["generation"] == 2  # spec changed
    status_write = {**updated, "status": {"replicas": 7},
                    "spec": {**updated["spec"], "replicas": 9}}
    status_only = await deployments.update_status(status_write)
    assert status_only["status"] == {"replicas": 7} and status_only["spec"]["replicas"] == 2
    assert status_only["metadata"]["generation"] == 2  # status writes leave generation alone


async def test_merge_and_json_patches(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("patch")
    await cms.create(configmap(name, a="1", b="2"))
    merged = await cms.patch(name, {"data": {"a": None, "c": "3"}}, "merge")
    assert merged["data"] == {"b": "2", "c": "3"}
    patched = await cms.patch(name, [{"op": "replace", "path": "/data/b", "value": "22"}], "json")
    assert patched["data"] == {"b": "22", "c": "3"}
    with pytest.raises(InvalidError):
        await cms.patch(name, [{"op": "test", "path": "/data/b", "value": "nope"}], "json")
    with pytest.raises(NotFoundError):
        await cms.patch(unique("missing"), {"data": {}}, "merge")


async def test_patch_carrying_a_stale_resource_version_conflicts(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("stale")
    first = await cms.create(configmap(name, a="1"))
    await cms.patch(name, {"data": {"a": "2"}}, "merge")
    with pytest.raises(ConflictError):
        await cms.patch(name, {"metadata": {"resourceVersion": first["metadata"][
            "resourceVersion"]}, "data": {"a": "3"}}, "merge")


async def test_delete_preconditions_and_finalizers(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("fin")
    created = await cms.create({**configmap(name), "metadata": {"name": name,
                                                                "finalizers": ["test/hold"]}})
    with pytest.raises(ConflictError):
        await cms.delete(name, preconditions={"uid": "not-the-uid"})
    await cms.delete(name, preconditions={"uid": created["metadata"]["uid"]})
    held = await cms.get(name)  # a finalizer holds it: marked, not removed
    assert held["metadata"]["deletionTimestamp"]
    held["metadata"]["finalizers"] = []
    await cms.update(held)
    with pytest.raises(NotFoundError):
        await cms.get(name)


async def test_pod_binding_and_graceful_deletion(api: Any) -> None:
    pods = api.resource("v1", "pods", "default")
    unbound, bound = unique("free"), unique("bound")
    await pods.create(pod(unbound))
    await pods.create(pod(bound))
    await pods.create_subresource(bound, "binding", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": bound},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}})
    assert (await pods.get(bound))["spec"]["nodeName"] == "node-a"
    with pytest.raises(ConflictError):
        await pods.create_subresource(bound, "binding", {"target": {"name": "node-b"}})
    await pods.delete(unbound)
    with pytest.raises(NotFoundError):
        await pods.get(unbound)  # no node: nothing to wait for
    await pods.delete(bound)
    assert (await pods.get(bound))["metadata"]["deletionTimestamp"]  # waits for its agent
    await pods.delete(bound, grace_period_seconds=0)  # what the agent sends when done
    with pytest.raises(NotFoundError):
        await pods.get(bound)


async def test_scale_subresource(api: Any) -> None:
    deployments = api.resource("apps/v1", "deployments", "default")
    name = unique("scale")
    await deployments.create(deployment(name, replicas=2))
    scale = await deployments.get_subresource(name, "scale")
    assert scale["kind"] == "Scale" and scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == f"app={name}"
    scaled = await deployments.patch(name, {"spec": {"replicas": 5}}, "merge",
                                     subresource="scale")
    assert scaled["spec"]["replicas"] == 5
    assert (await deployments.get(name))["spec"]["replicas"] == 5


async def test_list_with_selectors(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    suite = unique("sel")
    for i, tier in enumerate(["web", "web", "db"]):
        await cms.create(configmap(f"{suite}-{i}", {"suite": suite, "tier": tier}))
    web = await cms.list(label_selector=f"suite={suite},tier=web")
    assert sorted(o["metadata"]["name"] for o in web.items) == [f"{suite}-0", f"{suite}-1"]
    not_web = await cms.list(label_selector=f"suite={suite},tier!=web")
    assert [o["metadata"]["name"] for o in not_web.items] == [f"{suite}-2"]
    one = await cms.list(field_selector=f"metadata.name={suite}-1")
    assert [o["metadata"]["name"] for o in one.items] == [f"{suite}-1"]
    assert int(web.resource_version) > 0


async def test_watch_replays_from_resource_version(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("watch")
    start = (await cms.list(field_selector=f"metadata.name={name}")).resource_version
    await cms.create(configmap(name, a="1"))
    await cms.patch(name, {"data": {"a": "2"}}, "merge")
    await cms.delete(name)
    events = await asyncio.wait_for(take(cms.watch(
        resource_version=start, field_selector=f"metadata.name={name}", timeout_seconds=30), 3),
        15)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1].object["data"] == {"a": "2"}


async def test_watch_sees_objects_enter_and_leave_a_selection(api: Any) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("move")
    start = (await cms.list(field_selector=f"metadata.name={name}")).resource_version
    await cms.create(configmap(name, {"role": "other"}))
    await cms.patch(name, {"metadata": {"labels": {"role": name}}}, "merge")  # enters
    await cms.patch(name, {"data": {"x": "1"}}, "merge")  # changes inside
    await cms.patch(name, {"metadata": {"labels": {"role": "other"}}}, "merge")  # leaves
    events = await asyncio.wait_for(take(cms.watch(
        resource_version=start, label_selector=f"role={name}", timeout_seconds=30), 3), 15)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_without_resource_version_lists_first_and_ends_at_timeout(
    api: Any,
) -> None:
    cms = api.resource("v1", "configmaps", "default")
    suite = unique("w0")
    await cms.create(configmap(f"{suite}-a", {"suite": suite}))
    events = []
    async with cms.watch(label_selector=f"suite={suite}", timeout_seconds=1) as watch:
        async for event in watch:  # ends by itself after timeout_seconds
            events.append(event)
    assert [(e.type, e.object["metadata"]["name"]) for e in events] == [("ADDED", f"{suite}-a")]
