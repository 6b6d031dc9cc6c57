"""Node lifecycle against a real `dockyard server`: heartbeats via Lease, taints, evictions.

With --no-agent there is no node agent, so a FakeNodeHeartbeat (a test double of the agent's
heartbeat) renews the node's Lease and posts Ready=True; stopping it is a node dying. The
controllers (grace period 2 s here) are the real ones, running in the test process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from dockyard.client import ConflictError
from dockyard.controllers.node_lifecycle import UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT
from tests.e2e.test_controllers_support import (
    Cluster,
    FakeNodeHeartbeat,
    Obj,
    cluster_fixture,
    eventually,
    replicaset,
    server_fixture,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


GRACE = 2.0

# Its admission gives every new pod a 1 s unreachable toleration.
server = server_fixture("--default-unreachable-toleration-seconds", "1")
cluster = cluster_fixture(kubelet=False, node_monitor_grace_period=GRACE)


@pytest.fixture
async def node(cluster: Cluster) -> AsyncIterator[FakeNodeHeartbeat]:
    heart = FakeNodeHeartbeat(cluster.api, f"n-{cluster.namespace}")
    await heart.register()
    try:
        yield heart
    finally:
        await heart.remove()


def bound_pod(name: str, node: str, tolerations: list[Obj] | None = None) -> Obj:
    spec: Obj = {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.25"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def get_node(c: Cluster, name: str) -> Obj:
    obj: Obj = await c.api.resource("v1", "nodes").get(name)
    return obj


def taint_keys(node: Obj) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node.get("spec", {}).get("taints") or []}


def ready(node: Obj) -> str:
    return next((x["status"] for x in node["status"].get("conditions") or []
                 if x["type"] == "Ready"), "")


async def test_healthy_node_stays_ready_and_untainted(cluster: Cluster,
                                                      node: FakeNodeHeartbeat) -> None:
    await asyncio.sleep(GRACE * 2)
    n = await get_node(cluster, node.name)
    assert ready(n) == "True"
    assert not taint_keys(n)


async def test_dead_node_is_tainted_and_its_pods_evicted(cluster: Cluster,
                                                         node: FakeNodeHeartbeat) -> None:
    c = cluster
    short = [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute",
              "tolerationSeconds": 2}]
    forever = [{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}]
    pods = c.rc("v1", "pods")
    await pods.create(bound_pod("short", node.name, short))
    kept = await pods.create(bound_pod("forever", node.name, forever))
    assert [t for t in kept["spec"]["tolerations"] if t["key"] == UNREACHABLE_TAINT] == forever
    default = await pods.create(bound_pod("default", node.name))
    # The api server's admission gave it the server's 1 s (not Kubernetes' 300 s), and left the
    # others' own unreachable tolerations alone.
    assert {(t["key"], t.get("tolerationSeconds")) for t in default["spec"]["tolerations"]} == {
        (UNREACHABLE_TAINT, 1), ("node.kubernetes.io/not-ready", 300)}
    await node.stop()  # the node dies

    async def unreachable() -> Obj | None:
        n = await get_node(c, node.name)
        return n if ready(n) == "Unknown" and (UNREACHABLE_TAINT, "NoExecute") in taint_keys(n) \
            else None

    n = await eventually(unreachable, timeout=GRACE + 10, what="Ready=Unknown and tainted")
    cond = next(x for x in n["status"]["conditions"] if x["type"] == "Ready")
    assert cond["reason"] == "NodeStatusUnknown"
    taint = next(t for t in n["spec"]["taints"] if t["effect"] == "NoExecute")
    assert taint["timeAdded"]

    async def evicted() -> bool:
        names = {p["metadata"]["name"] for p in await c.pods()}
        return names == {"forever"}

    await eventually(evicted, timeout=15, what="short and default pods evicted")
    await asyncio.sleep(1.0)
    assert {p["metadata"]["name"] for p in await c.pods()} == {"forever"}
    events = await c.api.resource("v1", "events", "default").list()
    assert any(e.get("reason") == "NodeNotReady"
               and e["involvedObject"].get("name") == node.name for e in events.items)
    assert await c.events("TaintManagerEviction")


async def test_recovered_node_loses_its_taints(cluster: Cluster,
                                               node: FakeNodeHeartbeat) -> None:
    c = cluster
    await node.stop()

    async def tainted() -> bool:
        return (UNREACHABLE_TAINT, "NoExecute") in taint_keys(await get_node(c, node.name))

    await eventually(tainted, timeout=GRACE + 10, what="tainted")
    node.start()
    await node.post_ready()

    async def clean() -> bool:
        n = await get_node(c, node.name)
        return ready(n) == "True" and not taint_keys(n)

    await eventually(clean, timeout=10, what="taints removed after recovery")


async def test_replicaset_recreates_pods_of_a_dead_node(cluster: Cluster,
                                                        node: FakeNodeHeartbeat) -> None:
    c = cluster
    await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 2))

    async def two() -> list[Obj]:
        pods = await c.pods("app=rs1")
        return pods if len(pods) == 2 else []

    originals = await eventually(two, what="2 pods")
    for pod in originals:  # bind them to the node, unless the server's scheduler already did
        with contextlib.suppress(ConflictError):
            await c.rc("v1", "pods").create_subresource(pod["metadata"]["name"], "binding", {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod["metadata"]["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node.name}})

    async def bound() -> bool:
        return all(p["spec"].get("nodeName") == node.name for p in await c.pods("app=rs1"))

    await eventually(bound, what="pods bound to the node")
    await node.stop()

    async def replaced() -> bool:
        pods = [p for p in await c.pods("app=rs1") if not p["metadata"].get("deletionTimestamp")]
        names = {p["metadata"]["name"] for p in pods}
        return len(pods) == 2 and not names & {p["metadata"]["name"] for p in originals}

    await eventually(replaced, timeout=GRACE + 20, what="replacements for evicted pods")


async def test_cordon_adds_unschedulable_taint(cluster: Cluster,
                                               node: FakeNodeHeartbeat) -> None:
    c = cluster
    await c.kubectl("cordon", node.name)

    async def cordoned() -> bool:
        return (UNSCHEDULABLE_TAINT, "NoSchedule") in taint_keys(await get_node(c, node.name))

    await eventually(cordoned, what="unschedulable taint")
    await c.kubectl("uncordon", node.name)

    async def uncordoned() -> bool:
        return not taint_keys(await get_node(c, node.name))

    await eventually(uncordoned, what="taint removed")
