"""The controllers as `dockyard server` runs them (wired in server.py), driven by real kubectl.

No ControllerManager in the test process here: only a FakeKubelet (see
test_controllers_support) that marks pods Ready, because the fixture server has no agent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.client import ApiClient
from tests.e2e.test_controllers_support import (
    KUBECTL,
    Cluster,
    FakeKubelet,
    FakeNodeHeartbeat,
    eventually,
    server_fixture,
)
from tests.servers import RunningServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


class _NoManager:
    async def stop(self) -> None:
        return None


# `dockyard server --no-agent` with its own scheduler and controllers (short node grace).
server = server_fixture("--node-monitor-grace-period", "2",
                        "--default-unreachable-toleration-seconds", "1", controllers=True)


@pytest.fixture
async def cluster(server: RunningServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    api = ApiClient.from_kubeconfig(str(server.kubeconfig))
    namespace = f"srv-{tmp_path.name[-8:].lower().replace('_', '-')}"
    await api.resource("v1", "namespaces").create(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kubelet = FakeKubelet(api, namespace)
    await kubelet.start()
    c = Cluster(server, api, namespace, _NoManager(), kubelet,  # type: ignore[arg-type]
                tmp_path / "cache")
    try:
        yield c
    finally:
        await kubelet.stop()
        await api.resource("v1", "namespaces").delete(namespace)
        await api.close()


async def test_server_controllers_roll_out_scale_and_undo(cluster: Cluster) -> None:
    c = cluster
    assert Path(KUBECTL).exists()
    await c.kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await c.kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=30s")
    await c.kubectl("scale", "deployment/web", "--replicas=5")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await c.kubectl("set", "image", "deployment/web", "nginx=nginx:1.26")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await c.kubectl("rollout", "undo", "deployment/web")
    await c.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    out = json.loads((await c.kubectl("get", "deployment/web", "-o", "json")).stdout)
    assert out["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert out["status"]["availableReplicas"] == 5
    assert out["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len(await c.replicasets()) == 2
    described = (await c.kubectl("describe", "deployment/web")).stdout
    assert "ScalingReplicaSet" in described and "deployment-controller" in described

    async def five_pods() -> bool:
        pods = [p for p in await c.pods("app=web") if not p["metadata"].get("deletionTimestamp")]
        return len(pods) == 5

    await eventually(five_pods, what="5 pods")


async def test_server_flags_reach_node_lifecycle(cluster: Cluster) -> None:
    c = cluster
    heart = FakeNodeHeartbeat(c.api, f"n-{c.namespace}")
    await heart.register()
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"nodeName": heart.name,
                        "containers": [{"name": "c", "image": "nginx:1.25"}]}}
        made = await c.rc("v1", "pods").create(pod)
        # the api server's admission wrote the flag's 1 s into the pod (not Kubernetes' 300 s)
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 1} in made["spec"]["tolerations"]
        await heart.stop()

        async def evicted() -> bool:
            return not await c.pods()

        # grace 2 s + the pod's toleration 1 s
        await eventually(evicted, timeout=20, what="pod evicted after the cluster default")
        node = await c.api.resource("v1", "nodes").get(heart.name)
        ready = next(x for x in node["status"]["conditions"] if x["type"] == "Ready")
        assert ready["status"] == "Unknown"
    finally:
        await heart.remove()
