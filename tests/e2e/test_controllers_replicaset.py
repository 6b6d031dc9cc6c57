"""ReplicaSets and the garbage collector against a real `dockyard server`.

The real ControllerManager runs in the test process; a FakeKubelet (see
test_controllers_support) marks pods Ready and confirms graceful deletions, standing in for
the node agent the --no-agent fixture server lacks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.client import NotFoundError
from tests.e2e.test_controllers_support import (
    Cluster,
    Obj,
    cluster_fixture,
    deployment,
    eventually,
    replicaset,
    server_fixture,
    start_cluster,
    stop_cluster,
)
from tests.servers import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

server = server_fixture()
cluster = cluster_fixture()


def bare_pod(name: str, labels: dict[str, str], node: str | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "web", "image": "nginx:1.25"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": spec}


async def count_pods(c: Cluster, n: int, selector: str = "app=rs1") -> bool:
    pods = [p for p in await c.pods(selector) if not p["metadata"].get("deletionTimestamp")]
    return len(pods) == n


async def rs_status(c: Cluster, name: str) -> Obj:
    obj = await c.rc("apps/v1", "replicasets").get(name)
    return obj.get("status") or {}


async def gone(c: Cluster, api_version: str, plural: str, name: str) -> bool:
    try:
        await c.rc(api_version, plural).get(name)
    except NotFoundError:
        return True
    return False


# --- ReplicaSet ----------------------------------------------------------------------------


async def test_adopts_matching_orphans_and_creates_the_rest(cluster: Cluster) -> None:
    c = cluster
    await c.rc("v1", "pods").create(bare_pod("orphan", {"app": "rs1"}))
    rs = await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 3))
    await eventually(lambda: count_pods(c, 3), what="3 pods")
    orphan = await c.rc("v1", "pods").get("orphan")
    [ref] = orphan["metadata"]["ownerReferences"]
    assert ref["uid"] == rs["metadata"]["uid"] and ref["controller"] is True
    created = [p for p in await c.pods("app=rs1") if p["metadata"]["name"] != "orphan"]
    assert len(created) == 2
    assert all(p["metadata"]["generateName"] == "rs1-" for p in created)


async def test_releases_pods_that_stop_matching(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 2))
    await eventually(lambda: count_pods(c, 2))
    victim = (await c.pods("app=rs1"))[0]["metadata"]["name"]
    await c.rc("v1", "pods").patch(victim, {"metadata": {"labels": {"app": "other"}}}, "merge")

    async def released() -> bool:
        pod = await c.rc("v1", "pods").get(victim)
        return not pod["metadata"].get("ownerReferences")

    await eventually(released, what="pod released")
    await eventually(lambda: count_pods(c, 2), what="replacement created")


async def test_status_counts_ready_available_and_labels(cluster: Cluster) -> None:
    c = cluster
    rs = replicaset("rs1", 3, minReadySeconds=2)
    rs["spec"]["template"]["metadata"]["labels"]["tier"] = "fe"
    created = await c.rc("apps/v1", "replicasets").create(rs)

    async def ready_not_available() -> Obj | None:
        s = await rs_status(c, "rs1")
        return s if s.get("readyReplicas") == 3 else None

    status = await eventually(ready_not_available, what="3 ready")
    assert status["fullyLabeledReplicas"] == 3
    assert status["observedGeneration"] == created["metadata"]["generation"]
    assert status.get("availableReplicas", 0) < 3  # not yet ready for minReadySeconds

    async def all_available() -> bool:
        return (await rs_status(c, "rs1")).get("availableReplicas") == 3

    await eventually(all_available, timeout=15, what="available after minReadySeconds")


async def test_replaces_deleted_and_failed_pods(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 2))
    await eventually(lambda: count_pods(c, 2))
    first, second = await c.pods("app=rs1")
    await c.rc("v1", "pods").delete(first["metadata"]["name"])
    failed = {**second, "status": {**second["status"], "phase": "Failed"}}
    await c.rc("v1", "pods").update_status(failed)

    async def two_running_new() -> bool:
        pods = await c.pods("app=rs1")
        live = [p for p in pods if p["status"].get("phase") != "Failed"]
        names = {p["metadata"]["name"] for p in live}
        return len(live) == 2 and first["metadata"]["name"] not in names

    await eventually(two_running_new, what="replacements for deleted and failed pods")


async def test_fast_scaling_never_overshoots(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 0))
    peak = 0
    done = asyncio.Event()

    async def watch_count() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, len(await c.pods("app=rs1")))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_count())
    for replicas in (10, 30, 30, 30):
        await c.rc("apps/v1", "replicasets").patch("rs1", {"spec": {"replicas": replicas}},
                                                   "merge", subresource="scale")
    await eventually(lambda: count_pods(c, 30), what="30 pods")
    await asyncio.sleep(1.0)  # let any duplicate creates land
    done.set()
    await watcher
    assert peak == 30
    assert len(await c.pods("app=rs1")) == 30


# --- garbage collector ---------------------------------------------------------------------


async def test_background_deletion_removes_replicasets_and_pods(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await eventually(lambda: count_pods(c, 2, "app=web"))
    await c.kubectl("delete", "deployment/web", "--wait=false")

    async def all_gone() -> bool:
        return not await c.replicasets() and not await c.pods("app=web")

    await eventually(all_gone, what="ReplicaSet and pods collected")


async def test_foreground_deletion_waits_for_blocking_dependents(cluster: Cluster) -> None:
    c = cluster
    assert c.kubelet is not None
    node = f"node-{c.namespace}"  # pods bound to a missing node would be collected at once
    await c.api.resource("v1", "nodes").create(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    rs = replicaset("rs1", 2)
    rs["spec"]["template"]["spec"]["nodeName"] = node  # bound: deletion needs the kubelet
    await c.rc("apps/v1", "replicasets").create(rs)
    await eventually(lambda: count_pods(c, 2), what="2 pods")
    c.kubelet.paused = True
    await c.rc("apps/v1", "replicasets").delete("rs1", propagation_policy="Foreground")

    async def pods_terminating() -> bool:
        pods = await c.pods("app=rs1")
        return len(pods) == 2 and all(p["metadata"].get("deletionTimestamp") for p in pods)

    await eventually(pods_terminating, what="dependents deleted first")
    held = await c.rc("apps/v1", "replicasets").get("rs1")
    assert held["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in held["metadata"]["finalizers"]
    c.kubelet.resume()
    await eventually(lambda: gone(c, "apps/v1", "replicasets", "rs1"),
                     what="owner gone once its dependents are")
    assert not await c.pods("app=rs1")
    await c.api.resource("v1", "nodes").delete(node)


async def test_orphan_deletion_keeps_pods_without_owner(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 2))
    await eventually(lambda: count_pods(c, 2))
    await c.kubectl("delete", "replicaset/rs1", "--cascade=orphan")
    await eventually(lambda: gone(c, "apps/v1", "replicasets", "rs1"), what="owner gone")

    async def orphaned() -> bool:
        pods = await c.pods("app=rs1")
        return len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods)

    await eventually(orphaned, what="pods kept without ownerReferences")
    await asyncio.sleep(0.5)
    assert len(await c.pods("app=rs1")) == 2  # and not collected afterwards


async def test_dependents_of_an_owner_deleted_while_controllers_were_down(
        server: RunningServer, tmp_path: Path) -> None:
    c = await start_cluster(server, tmp_path, kubelet=False)
    try:
        await c.rc("apps/v1", "replicasets").create(replicaset("rs1", 2))
        await eventually(lambda: count_pods(c, 2))
        await c.manager.stop()
        await c.rc("apps/v1", "replicasets").delete("rs1")  # no GC running
        assert len(await c.pods("app=rs1")) == 2
        from dockyard.controllers.manager import ControllerManager, ControllerOptions

        c.manager = ControllerManager(c.api, ControllerOptions())
        await c.manager.start()

        async def collected() -> bool:
            return not await c.pods("app=rs1")

        await eventually(collected, what="dangling pods collected after restart")
    finally:
        await stop_cluster(c)

