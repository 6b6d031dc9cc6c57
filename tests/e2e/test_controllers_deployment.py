"""Deployments against a real `dockyard server` with the real controllers running in-process.

A FakeKubelet (see test_controllers_support) stands in for the node agent and marks pods
Ready, because the fixture server runs with --no-agent. Real kubectl drives rollout status,
history, undo, restart, scale and wait.
"""

from __future__ import annotations

import asyncio

import pytest

from dockyard.controllers.rollout import POD_TEMPLATE_HASH, REVISION
from tests.e2e.test_controllers_support import (
    Cluster,
    Obj,
    cluster_fixture,
    deployment,
    eventually,
    server_fixture,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

server = server_fixture()
cluster = cluster_fixture()


async def get_deploy(c: Cluster, name: str) -> Obj:
    obj: Obj = await c.rc("apps/v1", "deployments").get(name)
    return obj


async def available(c: Cluster, name: str, replicas: int) -> bool:
    d = await get_deploy(c, name)
    s = d.get("status") or {}
    return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and s.get("updatedReplicas") == replicas == s.get("availableReplicas")
            and s.get("replicas") == replicas)


def revisions(rss: list[Obj]) -> dict[str, str]:
    return {r["metadata"]["name"]: r["metadata"].get("annotations", {}).get(REVISION, "")
            for r in rss}


async def test_deployment_makes_a_hashed_replicaset_and_owned_pods(cluster: Cluster) -> None:
    c = cluster
    d = await c.rc("apps/v1", "deployments").create(deployment("web", 3))
    await eventually(lambda: available(c, "web", 3), what="3 available replicas")
    [rs] = await c.replicasets()
    pod_hash = rs["metadata"]["labels"][POD_TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH: pod_hash}
    assert rs["metadata"]["annotations"][REVISION] == "1"
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    pods = await c.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod["metadata"]["name"].startswith(f"web-{pod_hash}-")
        [ref] = pod["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
            "ReplicaSet", rs["metadata"]["uid"], True, True)
    status = (await get_deploy(c, "web"))["status"]
    conds = {x["type"]: (x["status"], x["reason"]) for x in status["conditions"]}
    assert conds == {"Available": ("True", "MinimumReplicasAvailable"),
                     "Progressing": ("True", "NewReplicaSetAvailable")}
    assert (await get_deploy(c, "web"))["metadata"]["annotations"][REVISION] == "1"
    assert await eventually(lambda: c.events("SuccessfulCreate"), what="SuccessfulCreate")
    assert await eventually(lambda: c.events("ScalingReplicaSet"), what="ScalingReplicaSet")


async def test_scale_through_subresource_and_kubectl(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await eventually(lambda: available(c, "web", 2))
    await c.kubectl("scale", "deployment/web", "--replicas=5")
    await eventually(lambda: available(c, "web", 5), what="5 available after scale up")
    await c.rc("apps/v1", "deployments").patch("web", {"spec": {"replicas": 1}}, "merge",
                                               subresource="scale")
    await eventually(lambda: available(c, "web", 1), what="1 available after scale down")

    async def one_pod() -> bool:
        return len(await c.pods()) == 1

    await eventually(one_pod, what="surplus pods deleted")
    assert await eventually(lambda: c.events("SuccessfulDelete"), what="SuccessfulDelete")
    await c.kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=30s")


async def test_rolling_update_keeps_availability(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 4))  # surge 1, unavailable 1
    await eventually(lambda: available(c, "web", 4))
    lowest = 4
    done = asyncio.Event()

    async def watch_availability() -> None:
        nonlocal lowest
        while not done.is_set():
            pods = await c.pods()
            ready = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and any(
                x["type"] == "Ready" and x["status"] == "True"
                for x in (p.get("status") or {}).get("conditions") or []))
            lowest = min(lowest, ready)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_availability())
    await c.kubectl("set", "image", "deployment/web", "web=nginx:1.26")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    done.set()
    await watcher
    assert lowest >= 3  # replicas 4 - maxUnavailable 1
    rss = {r["metadata"]["name"]: r for r in await c.replicasets()}
    assert sorted(r["spec"]["replicas"] for r in rss.values()) == [0, 4]
    assert sorted(revisions(list(rss.values())).values()) == ["1", "2"]
    pods = await c.pods()
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.26"}


async def test_broken_image_rollout_stops_and_old_pods_keep_serving(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(
        deployment("web", 4, progressDeadlineSeconds=3))
    await eventually(lambda: available(c, "web", 4))
    await c.kubectl("set", "image", "deployment/web", "web=registry.invalid/bad:1")

    async def timed_out() -> bool:
        status = (await get_deploy(c, "web")).get("status") or {}
        return any(x["type"] == "Progressing" and x["reason"] == "ProgressDeadlineExceeded"
                   and x["status"] == "False" for x in status.get("conditions") or [])

    await eventually(timed_out, timeout=30, what="ProgressDeadlineExceeded")
    rss = await c.replicasets()
    old = next(r for r in rss if r["metadata"]["annotations"][REVISION] == "1")
    new = next(r for r in rss if r["metadata"]["annotations"][REVISION] == "2")
    # replicas 4: maxUnavailable 1 → one old pod may go; maxSurge 1 → 2 new at most (5 total)
    assert old["spec"]["replicas"] == 3 and old["status"].get("availableReplicas") == 3
    assert new["spec"]["replicas"] == 2 and not new["status"].get("availableReplicas")
    status = (await get_deploy(c, "web"))["status"]
    assert status["availableReplicas"] == 3
    result = await c.kubectl("rollout", "status", "deployment/web", "--timeout=5s", check=False)
    assert result.returncode != 0 and "exceeded its progress deadline" in result.stderr


async def test_undo_reuses_the_old_replicaset_and_history_shows_causes(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await eventually(lambda: available(c, "web", 2))
    await c.kubectl("annotate", "deployment/web", "kubernetes.io/change-cause=first")
    await c.kubectl("set", "image", "deployment/web", "web=nginx:1.26")
    await c.kubectl("annotate", "deployment/web", "--overwrite",
                    "kubernetes.io/change-cause=second")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    first = {r["metadata"]["name"] for r in await c.replicasets()}
    assert len(first) == 2
    history = (await c.kubectl("rollout", "history", "deployment/web")).stdout
    assert "second" in history

    await c.kubectl("rollout", "undo", "deployment/web")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rss = await c.replicasets()
    assert {r["metadata"]["name"] for r in rss} == first  # no new ReplicaSet
    by_rev = {r["metadata"]["annotations"][REVISION]: r for r in rss}
    assert sorted(by_rev) == ["2", "3"]  # revision 1 moved to the new maximum, 3
    assert by_rev["3"]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert by_rev["3"]["spec"]["replicas"] == 2 and by_rev["2"]["spec"]["replicas"] == 0
    d = await get_deploy(c, "web")
    assert d["metadata"]["annotations"][REVISION] == "3"
    history = (await c.kubectl("rollout", "history", "deployment/web")).stdout
    assert "first" in history and "second" in history


async def test_restart_rolls_a_new_replicaset(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await eventually(lambda: available(c, "web", 2))
    before = {p["metadata"]["name"] for p in await c.pods()}
    await c.kubectl("rollout", "restart", "deployment/web")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")

    async def replaced() -> bool:
        pods = await c.pods()
        return len(pods) == 2 and not before & {p["metadata"]["name"] for p in pods}

    await eventually(replaced, what="all pods replaced")
    assert len(await c.replicasets()) == 2


async def test_recreate_scales_old_to_zero_before_new(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(
        deployment("web", 3, strategy={"type": "Recreate"}))
    await eventually(lambda: available(c, "web", 3))
    mixed = False
    done = asyncio.Event()

    async def watch_images() -> None:
        nonlocal mixed
        while not done.is_set():
            images = {p["spec"]["containers"][0]["image"] for p in await c.pods()}
            mixed = mixed or len(images) > 1
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch_images())
    await c.kubectl("set", "image", "deployment/web", "web=nginx:1.26")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    done.set()
    await watcher
    assert not mixed  # never old and new pods at the same time


async def test_pause_holds_the_rollout_and_resume_continues(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await eventually(lambda: available(c, "web", 2))
    await c.kubectl("rollout", "pause", "deployment/web")
    await c.kubectl("set", "image", "deployment/web", "web=nginx:1.26")

    async def paused_condition() -> bool:
        status = (await get_deploy(c, "web")).get("status") or {}
        return any(x["type"] == "Progressing" and x["reason"] == "DeploymentPaused"
                   for x in status.get("conditions") or [])

    await eventually(paused_condition, what="DeploymentPaused")
    assert len(await c.replicasets()) == 1
    await c.kubectl("rollout", "resume", "deployment/web")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert len(await c.replicasets()) == 2


async def test_revision_history_limit_deletes_old_replicasets(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 1, revisionHistoryLimit=1))
    for tag in ("1.26", "1.27", "1.28"):
        await c.kubectl("set", "image", "deployment/web", f"web=nginx:{tag}")
        await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")

    async def two_left() -> list[str]:
        rss = await c.replicasets()
        return sorted(revisions(rss).values()) if len(rss) == 2 else []

    assert await eventually(two_left, what="old ReplicaSets cleaned up") == ["3", "4"]
