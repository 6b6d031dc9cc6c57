"""The API client against a real `dockyard server`: CRUD, CAS, errors, watch, subresources."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from dockyard.client import (
    AlreadyExistsError,
    ApiClient,
    ConflictError,
    InvalidError,
    NotFoundError,
    ServerUnreachableError,
    UnauthorizedError,
    WatchEvent,
    load_kubeconfig,
    retry_on_conflict,
    wait_for,
)
from dockyard.client.config import ClientConfig
from tests.e2e.test_client_support import (
    configmap,
    deployment,
    next_events,
    pod,
    quiet_server_fixture,
    unique,
)
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

quiet_server = quiet_server_fixture()


@pytest.fixture
async def api(quiet_server: RunningServer) -> AsyncIterator[ApiClient]:
    async with ApiClient(load_kubeconfig(str(quiet_server.kubeconfig))) as client:
        yield client


async def test_configmap_crud_round_trip(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("crud")
    created = await cms.create(configmap(name, {"suite": name}, a="1"))
    assert created["metadata"]["name"] == name and created["metadata"]["resourceVersion"]
    got = await cms.get(name)
    assert got["data"] == {"a": "1"} and got["metadata"]["uid"] == created["metadata"]["uid"]

    listed = await cms.list(label_selector=f"suite={name}")
    assert [o["metadata"]["name"] for o in listed.items] == [name]
    assert listed.resource_version
    assert listed.items[0]["kind"] == "ConfigMap" and listed.items[0]["apiVersion"] == "v1"

    got["data"]["b"] = "2"
    updated = await cms.update(got)
    assert updated["data"] == {"a": "1", "b": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(got["metadata"]["resourceVersion"])

    merged = await cms.patch(name, {"data": {"c": "3", "a": None}}, "merge")
    assert merged["data"] == {"b": "2", "c": "3"}
    strategic = await cms.patch(name, {"metadata": {"labels": {"x": "y"}}}, "strategic")
    assert strategic["metadata"]["labels"] == {"suite": name, "x": "y"}
    jsonp = await cms.patch(name, [{"op": "replace", "path": "/data/b", "value": "22"}], "json")
    assert jsonp["data"]["b"] == "22"

    await cms.delete(name)
    with pytest.raises(NotFoundError) as e:
        await cms.get(name)
    assert e.value.status == 404 and e.value.reason == "NotFound"


async def test_create_existing_name_is_already_exists(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("dup")
    await cms.create(configmap(name))
    try:
        with pytest.raises(AlreadyExistsError) as e:
            await cms.create(configmap(name))
        assert e.value.status == 409 and e.value.reason == "AlreadyExists"
    finally:
        await cms.delete(name)


async def test_update_with_stale_resource_version_conflicts(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("cas")
    first = await cms.create(configmap(name, a="1"))
    try:
        await cms.update({**first, "data": {"a": "2"}})
        with pytest.raises(ConflictError) as e:
            await cms.update({**first, "data": {"a": "3"}})  # first's resourceVersion is stale
        assert not isinstance(e.value, AlreadyExistsError)
        assert e.value.status == 409 and e.value.reason == "Conflict"
        assert (await cms.get(name))["data"] == {"a": "2"}
    finally:
        await cms.delete(name)


async def test_delete_precondition_on_uid(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("pre")
    created = await cms.create(configmap(name))
    with pytest.raises(ConflictError):
        await cms.delete(name, preconditions={"uid": "00000000-0000-0000-0000-000000000000"})
    await cms.delete(name, preconditions={"uid": created["metadata"]["uid"]},
                     propagation_policy="Background")
    with pytest.raises(NotFoundError):
        await cms.get(name)


async def test_invalid_object_names_the_field(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    with pytest.raises(InvalidError) as e:
        await cms.create(configmap("Not_A_Valid_Name"))
    assert e.value.status == 422
    assert any(c.get("field") == "metadata.name" for c in e.value.causes), e.value.body


async def test_dry_run_create_persists_nothing(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("dry")
    answer = await cms.create(configmap(name), dry_run=True)
    assert answer["metadata"]["name"] == name
    with pytest.raises(NotFoundError):
        await cms.get(name)


async def test_list_follows_continue_tokens(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    suite = unique("page")
    names = [f"{suite}-{i}" for i in range(7)]
    for name in names:
        await cms.create(configmap(name, {"suite": suite}))
    try:
        first_page = await api.request("GET", cms.path(),
                                       params={"labelSelector": f"suite={suite}", "limit": 3})
        assert len(first_page["items"]) == 3 and first_page["metadata"].get("continue")
        listed = await cms.list(label_selector=f"suite={suite}", limit=3)
        assert sorted(o["metadata"]["name"] for o in listed.items) == names
    finally:
        for name in names:
            await cms.delete(name)


async def test_watch_from_resource_version_sees_changes_in_order(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("watch")
    start_rv = (await cms.list(field_selector=f"metadata.name={name}")).resource_version
    created = await cms.create(configmap(name, a="1"))
    await cms.patch(name, {"data": {"a": "2"}})
    await cms.delete(name)
    async with cms.watch(resource_version=start_rv, field_selector=f"metadata.name={name}",
                         timeout_seconds=30) as watch:
        events = await asyncio.wait_for(next_events(watch, 3), 15)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[0].object["metadata"]["uid"] == created["metadata"]["uid"]
    assert events[1].object["data"] == {"a": "2"}
    rvs = [int(e.object["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(start_rv)
    assert watch.resource_version == str(rvs[-1])


async def test_watch_ends_at_server_timeout(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    rv = (await cms.list(limit=1)).resource_version
    events = []
    async with cms.watch(resource_version=rv, field_selector="metadata.name=nothing-here",
                         timeout_seconds=1) as watch:
        async for event in watch:
            events.append(event)
    assert events == []


async def test_pod_binding_and_status_subresources(api: ApiClient) -> None:
    pods = api.resource("v1", "pods", "default")
    name = unique("bind")
    await pods.create(pod(name))
    try:
        await pods.create_subresource(name, "binding", {
            "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}})
        bound = await pods.get(name)
        assert bound["spec"]["nodeName"] == "node-a"
        status = await pods.get_subresource(name, "status")
        status["status"]["message"] = "seen by the client test"
        updated = await pods.update_status(status)
        assert updated["status"]["message"] == "seen by the client test"
    finally:
        await pods.delete(name, grace_period_seconds=0)


async def test_deployment_scale_subresource(api: ApiClient) -> None:
    deployments = api.resource("apps/v1", "deployments", "default")
    name = unique("scale")
    await deployments.create(deployment(name))
    try:
        scale = await deployments.get_subresource(name, "scale")
        assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
        scaled = await deployments.patch(name, {"spec": {"replicas": 4}}, "merge",
                                         subresource="scale")
        assert scaled["spec"]["replicas"] == 4
        assert (await deployments.get(name))["spec"]["replicas"] == 4
    finally:
        await deployments.delete(name)


async def test_server_side_apply_creates_then_updates(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("ssa")
    applied = await cms.patch(name, configmap(name, a="1"), "apply", field_manager="client-test")
    try:
        assert applied["data"] == {"a": "1"}
        again = await cms.patch(name, configmap(name, a="2"), "apply",
                                field_manager="client-test", force=True)
        assert again["data"] == {"a": "2"}
    finally:
        await cms.delete(name)


async def test_cluster_scoped_resource_and_raw_request(api: ApiClient) -> None:
    namespaces = api.resource("v1", "namespaces")
    names = [o["metadata"]["name"] for o in (await namespaces.list()).items]
    assert "default" in names
    versions = await api.request("GET", "/api")
    assert versions["kind"] == "APIVersions" and "v1" in versions["versions"]


async def test_wrong_token_is_unauthorized(quiet_server: RunningServer) -> None:
    config = load_kubeconfig(str(quiet_server.kubeconfig))
    config.token = "not-the-token"
    async with ApiClient(config) as api:
        with pytest.raises(UnauthorizedError) as e:
            await api.resource("v1", "configmaps", "default").list()
    assert e.value.status == 401


async def test_untrusted_server_certificate_is_a_tls_error(
    quiet_server: RunningServer,
) -> None:
    config = load_kubeconfig(str(quiet_server.kubeconfig))
    async with ApiClient(ClientConfig(server=config.server, token=config.token)) as api:
        with pytest.raises(ServerUnreachableError) as e:
            await api.resource("v1", "configmaps", "default").list()
    assert e.value.kind == "tls" and "certificate-authority" in str(e.value)


async def test_no_server_says_how_to_start_one() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = f"https://127.0.0.1:{port}"
    async with ApiClient(ClientConfig(server=server, insecure=True)) as api:
        with pytest.raises(ServerUnreachableError) as e:
            await api.resource("v1", "pods", "default").get("x")
    assert str(e.value).startswith(f"no server at {server} — start one with `dockyard server`")


async def test_concurrent_increments_with_retry_on_conflict(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("counter")
    await cms.create(configmap(name, n="0"))

    async def increment() -> None:
        current = await cms.get(name)  # fresh on every attempt
        current["data"]["n"] = str(int(current["data"]["n"]) + 1)
        await cms.update(current)  # 409 when another writer got in between

    try:
        await asyncio.gather(*(retry_on_conflict(increment, attempts=50) for _ in range(10)))
        # Compare-and-swap plus retry: no increment is lost to a concurrent writer.
        assert (await cms.get(name))["data"]["n"] == "10"
    finally:
        await cms.delete(name)


async def test_delete_collection_by_label(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    suite = unique("dc")
    for i in range(3):
        await cms.create(configmap(f"{suite}-{i}", {"suite": suite}))
    await cms.create(configmap(f"{suite}-other"))
    try:
        await cms.delete_collection(label_selector=f"suite={suite}")
        assert (await cms.list(label_selector=f"suite={suite}")).items == []
        assert (await cms.get(f"{suite}-other"))["metadata"]["name"] == f"{suite}-other"
    finally:
        await cms.delete(f"{suite}-other")


async def test_wait_for_condition_then_deletion(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    name = unique("wait")
    await cms.create(configmap(name, v="1"))
    waiter = asyncio.create_task(
        wait_for(cms, name, lambda o: o is not None and o["data"]["v"] == "3", timeout=15))
    await asyncio.sleep(0.2)
    await cms.patch(name, {"data": {"v": "2"}})
    assert not waiter.done()
    await cms.patch(name, {"data": {"v": "3"}})
    met = await waiter
    assert met is not None and met["data"] == {"v": "3"}
    gone = asyncio.create_task(wait_for(cms, name, lambda o: o is None, timeout=15))
    await cms.delete(name)
    assert await gone is None
    with pytest.raises(TimeoutError):
        await wait_for(cms, name, lambda o: o is not None, timeout=0.5)


async def test_closing_a_watch_from_another_task_ends_its_iteration(api: ApiClient) -> None:
    cms = api.resource("v1", "configmaps", "default")
    watch = cms.watch(field_selector="metadata.name=never-created", timeout_seconds=60)
    seen: list[WatchEvent] = []

    async def consume() -> None:
        async for event in watch:
            seen.append(event)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.5)  # the stream is open and idle
    await watch.aclose()
    await asyncio.wait_for(consumer, 5)  # ends quietly, no error
    assert seen == []
    assert [e async for e in watch] == []  # a closed watch does not reopen
