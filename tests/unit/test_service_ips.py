"""ClusterIP/NodePort allocation through the api storage over a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.api import service_ips
from dockyard.api.status import StatusError
from dockyard.api.storage import DeleteOptions, ResourceStorage
from dockyard.objects.resources import lookup
from dockyard.store.sqlite import SQLiteStore

pytestmark = pytest.mark.unit
SERVICES = lookup("", "v1", "services")
NAMESPACES = lookup("", "v1", "namespaces")


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[ResourceStorage]:
    store = await SQLiteStore.open(tmp_path / "state.db")
    storage = ResourceStorage(store)
    assert NAMESPACES is not None
    await storage.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": "default"}})
    service_ips.configure(storage, "10.200.0.0/24", (30000, 30009))
    yield storage
    await store.close()


def service(name: str, **spec: Any) -> dict[str, Any]:
    body = {"ports": [{"port": 80}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}


async def create(storage: ResourceStorage, obj: dict[str, Any]) -> dict[str, Any]:
    assert SERVICES is not None
    return await storage.create(SERVICES, "default", obj)


async def test_concurrent_creates_get_distinct_addresses(storage: ResourceStorage) -> None:
    made = await asyncio.gather(*(create(storage, service(f"s{i}")) for i in range(40)))
    ips = [s["spec"]["clusterIP"] for s in made]
    assert len(set(ips)) == 40
    # .0 is the network, .1 is kept for the kubernetes service: the first handed out is .2
    assert min(ips, key=lambda ip: int(ip.rsplit(".", 1)[1])) == "10.200.0.2"
    assert all(s["spec"]["clusterIPs"] == [s["spec"]["clusterIP"]] for s in made)


async def test_headless_and_external_name_get_no_address(storage: ResourceStorage) -> None:
    headless = await create(storage, service("h", clusterIP="None"))
    assert headless["spec"]["clusterIP"] == "None"
    external = await create(storage, {"apiVersion": "v1", "kind": "Service",
                                      "metadata": {"name": "e"},
                                      "spec": {"type": "ExternalName", "externalName": "a.b"}})
    assert "clusterIP" not in external["spec"]


async def test_asked_address_is_claimed_once(storage: ResourceStorage) -> None:
    await create(storage, service("a", clusterIP="10.200.0.50"))
    with pytest.raises(StatusError) as err:
        await create(storage, service("b", clusterIP="10.200.0.50"))
    assert err.value.code == 422 and "already allocated" in str(err.value)
    with pytest.raises(StatusError) as outside:
        await create(storage, service("c", clusterIP="10.9.9.9"))
    assert "not in the valid range" in str(outside.value)


async def test_node_ports_allocated_and_asked(storage: ResourceStorage) -> None:
    first = await create(storage, service("n1", type="NodePort"))
    assert first["spec"]["ports"][0]["nodePort"] == 30000
    asked = await create(storage, service("n2", type="NodePort",
                                          ports=[{"port": 80, "nodePort": 30005}]))
    assert asked["spec"]["ports"][0]["nodePort"] == 30005
    with pytest.raises(StatusError):
        await create(storage, service("n3", type="NodePort",
                                      ports=[{"port": 80, "nodePort": 30005}]))


async def test_deleted_service_releases_its_address(
    storage: ResourceStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SERVICES is not None
    kept = await create(storage, service("kept", type="NodePort"))
    gone = await create(storage, service("gone", type="NodePort"))
    await storage.delete(SERVICES, "default", "gone", DeleteOptions())
    # Young claims are honoured (their create may be in flight); once past the grace period a
    # claim whose service is gone is taken over.
    again = await create(storage, service("again", type="NodePort"))
    assert again["spec"]["clusterIP"] != gone["spec"]["clusterIP"]
    monkeypatch.setattr(service_ips, "CLAIM_GRACE_SECONDS", 0.0)
    monkeypatch.setattr(service_ips, "SWEEP_SECONDS", 0.0)
    reused = await create(storage, service("reused", type="NodePort"))
    assert reused["spec"]["clusterIP"] == gone["spec"]["clusterIP"]
    assert reused["spec"]["ports"][0]["nodePort"] == gone["spec"]["ports"][0]["nodePort"]
    assert kept["spec"]["clusterIP"] not in (again["spec"]["clusterIP"],
                                             reused["spec"]["clusterIP"])


async def test_update_keeps_allocation(storage: ResourceStorage) -> None:
    assert SERVICES is not None
    made = await create(storage, service("u", type="NodePort"))

    def drop(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"].pop("clusterIP")
        obj["spec"].pop("clusterIPs")
        obj["spec"]["ports"] = [{"port": 80, "protocol": "TCP", "targetPort": 8080}]
        return obj

    updated = await storage.update(SERVICES, "default", "u", drop)
    assert updated["spec"]["clusterIP"] == made["spec"]["clusterIP"]
    assert updated["spec"]["ports"][0]["nodePort"] == made["spec"]["ports"][0]["nodePort"]


def test_lowest_free_ip_agrees_with_the_objects_helper() -> None:
    from dockyard.objects.service import next_free_ip

    for taken in (set(), {"10.1.0.2", "10.1.0.3"}, {f"10.1.0.{i}" for i in range(2, 255)}):
        assert service_ips.lowest_free_ip("10.1.0.0/24", taken) == next_free_ip(
            "10.1.0.0/24", taken)


async def test_update_hook_allocates_and_drops_node_ports(storage: ResourceStorage) -> None:
    assert SERVICES is not None
    made = await create(storage, service("t"))
    as_node_port = {**made, "spec": {**made["spec"], "type": "NodePort",
                                     "externalTrafficPolicy": "Cluster",
                                     "ports": [dict(made["spec"]["ports"][0])]}}
    await service_ips.admit_service_update(storage, SERVICES, as_node_port, made)
    assert as_node_port["spec"]["ports"][0]["nodePort"] == 30000
    back = {**as_node_port, "spec": {**as_node_port["spec"], "type": "ClusterIP",
                                     "ports": [dict(as_node_port["spec"]["ports"][0])]}}
    await service_ips.admit_service_update(storage, SERVICES, back, as_node_port)
    assert "nodePort" not in back["spec"]["ports"][0]
