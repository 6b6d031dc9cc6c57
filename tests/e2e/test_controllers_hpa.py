"""HorizontalPodAutoscaler against a real `dockyard server` and the real controllers.

The replica calculator itself is unit-tested (tests/unit/test_controller_hpa.py); here the HPA
reads real Scale subresources and writes them, and reports a missing resource metrics API the
way Kubernetes does. Metric-driven scaling with real usage needs the agents' metrics behind
``metrics.k8s.io`` and is proven in the end-to-end suite with agents.
"""

from __future__ import annotations

import pytest

from dockyard.client import NotFoundError
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
cluster = cluster_fixture(hpa_sync_period=0.5)


def hpa(name: str, target: str, min_replicas: int, max_replicas: int) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": 50}}}]}}


async def hpa_status(c: Cluster, name: str) -> Obj:
    obj = await c.rc("autoscaling/v2", "horizontalpodautoscalers").get(name)
    return obj.get("status") or {}


def condition(status: Obj, kind: str) -> Obj:
    return next((x for x in status.get("conditions") or [] if x["type"] == kind), {})


async def replicas(c: Cluster, name: str) -> int:
    return int((await c.rc("apps/v1", "deployments").get(name))["spec"]["replicas"])


async def metrics_api_served(c: Cluster) -> bool:
    try:
        await c.api.request("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{c.namespace}/pods")
    except NotFoundError:
        return False
    return True


async def test_missing_metrics_are_reported_and_nothing_scales(cluster: Cluster) -> None:
    # Without agents the metrics API (if served) has no readings for these pods; either way
    # the HPA must say so and leave the replicas alone.
    c = cluster
    served = await metrics_api_served(c)
    await c.rc("apps/v1", "deployments").create(deployment("web", 2))
    await c.rc("autoscaling/v2", "horizontalpodautoscalers").create(hpa("web", "web", 1, 5))

    async def failed() -> Obj | None:
        status = await hpa_status(c, "web")
        cond = condition(status, "ScalingActive")
        return status if cond.get("reason") == "FailedGetResourceMetric" else None

    status = await eventually(failed, what="ScalingActive=False FailedGetResourceMetric")
    assert condition(status, "ScalingActive")["status"] == "False"
    message = condition(status, "ScalingActive")["message"]
    assert ("no metrics returned" if served else "unable to fetch metrics") in message
    assert status["currentReplicas"] == 2 and status["desiredReplicas"] == 2
    assert await replicas(c, "web") == 2
    assert await eventually(lambda: c.events("FailedGetResourceMetric"))


async def test_below_min_scales_up_through_scale_subresource(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 1))
    await c.rc("autoscaling/v2", "horizontalpodautoscalers").create(hpa("web", "web", 3, 5))

    async def scaled() -> bool:
        return await replicas(c, "web") == 3

    await eventually(scaled, what="deployment scaled to minReplicas")
    status = await eventually(lambda: hpa_status(c, "web"))
    assert status.get("lastScaleTime")
    assert status["desiredReplicas"] == 3
    assert condition(status, "AbleToScale").get("reason") == "SucceededRescale"
    [event] = await eventually(lambda: c.events("SuccessfulRescale"))
    assert event["message"] == \
        "New size: 3; reason: Current number of replicas below Spec.MinReplicas"


async def test_above_max_scales_down(cluster: Cluster) -> None:
    c = cluster
    await c.rc("apps/v1", "deployments").create(deployment("web", 6))
    await c.rc("autoscaling/v2", "horizontalpodautoscalers").create(hpa("web", "web", 1, 4))

    async def scaled() -> bool:
        return await replicas(c, "web") == 4

    await eventually(scaled, what="deployment scaled to maxReplicas")


async def test_missing_target_is_reported(cluster: Cluster) -> None:
    c = cluster
    await c.rc("autoscaling/v2", "horizontalpodautoscalers").create(hpa("web", "absent", 1, 4))

    async def failed() -> bool:
        return condition(await hpa_status(c, "web"), "AbleToScale").get("reason") == \
            "FailedGetScale"

    await eventually(failed, what="AbleToScale=False FailedGetScale")
