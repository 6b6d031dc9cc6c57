"""The namespace cache with two api servers' storages sharing one real etcd.

One server's namespace writes reach the other only through the watch: a create there in a
namespace made a moment ago must still succeed (a miss reads etcd), and a namespace the first
marked terminating must be refused there once the watch delivers it, at once on the first.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dockyard.api.status import StatusError
from dockyard.api.storage import DeleteOptions, ResourceStorage
from dockyard.objects.resources import ResourceInfo, lookup
from dockyard.store.etcd import EtcdStore
from tests.etcds import RunningEtcd, etcd_installed

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not etcd_installed(), reason="apt-get install etcd-server"),
]


def info(plural: str) -> ResourceInfo:
    found = lookup("", "v1", plural)
    assert found is not None
    return found


NAMESPACES, CONFIGMAPS = info("namespaces"), info("configmaps")


@pytest.fixture
async def servers(etcd: RunningEtcd) -> AsyncIterator[tuple[ResourceStorage, ResourceStorage]]:
    stores = [await EtcdStore.open([etcd.url]) for _ in range(2)]
    storages = [ResourceStorage(store) for store in stores]
    for storage in storages:
        storage.namespaces.start()
    try:
        await wait_for(lambda: all(s.namespaces.synced for s in storages))
        yield storages[0], storages[1]
    finally:
        for storage in storages:
            await storage.namespaces.stop()
        for store in stores:
            await store.close()


async def wait_for(condition: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def test_namespace_made_on_one_server_takes_creates_on_the_other_at_once(
    servers: tuple[ResourceStorage, ResourceStorage],
) -> None:
    a, b = servers
    await a.create(NAMESPACES, None, {"metadata": {"name": "team"}})
    made = await b.create(CONFIGMAPS, "team", configmap("c"))  # before any watch delivery
    assert made["metadata"]["namespace"] == "team"


async def test_terminating_on_one_server_is_refused_on_both(
    servers: tuple[ResourceStorage, ResourceStorage],
) -> None:
    a, b = servers
    await a.create(NAMESPACES, None, {"metadata": {"name": "going"}})
    await b.create(CONFIGMAPS, "going", configmap("c0"))
    await a.delete(NAMESPACES, None, "going", DeleteOptions())
    with pytest.raises(StatusError) as on_a:
        await a.create(CONFIGMAPS, "going", configmap("c1"))
    assert on_a.value.code == 403

    def b_knows() -> bool:
        state = b.namespaces._states.get("going")
        return state is not None and state.terminating

    await wait_for(b_knows)
    with pytest.raises(StatusError) as on_b:
        await b.create(CONFIGMAPS, "going", configmap("c2"))
    assert on_b.value.code == 403
