"""Table output: column sets per kind, cells as kubectl shows them, object inclusion."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dockyard.api.tables import format_hpa_metrics, table
from dockyard.objects.resources import RESOURCES, ResourceInfo, lookup

pytestmark = pytest.mark.unit

NOW = datetime(2024, 1, 3, 0, 0, 0, tzinfo=UTC)
CREATED = "2024-01-01T00:00:00Z"  # 2 days before NOW → AGE "2d"


def info(plural: str, group: str = "", version: str = "v1") -> ResourceInfo:
    found = lookup(group, version, plural)
    assert found is not None
    return found


def obj(kind: str, name: str = "x", **body: Any) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": "default",
        "creationTimestamp": CREATED,
        "labels": {"app": name},
    }
    return {"kind": kind, "metadata": meta, **body}


def columns(resource: ResourceInfo, wide: bool = False) -> list[str]:
    result = table(resource, [], resource_version="1", now=NOW)
    return [c["name"] for c in result["columnDefinitions"] if wide or c["priority"] == 0]


def cells(resource: ResourceInfo, item: dict[str, Any]) -> list[Any]:
    return list(table(resource, [item], resource_version="1", now=NOW)["rows"][0]["cells"])


@pytest.mark.parametrize(
    ("resource", "normal", "wide_extra"),
    [
        (
            info("pods"),
            ["Name", "Ready", "Status", "Restarts", "Age"],
            ["IP", "Node", "Nominated Node", "Readiness Gates"],
        ),
        (
            info("deployments", "apps"),
            ["Name", "Ready", "Up-to-date", "Available", "Age"],
            ["Containers", "Images", "Selector"],
        ),
        (
            info("replicasets", "apps"),
            ["Name", "Desired", "Current", "Ready", "Age"],
            ["Containers", "Images", "Selector"],
        ),
        (
            info("nodes"),
            ["Name", "Status", "Roles", "Age", "Version"],
            ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
        ),
        (
            info("services"),
            ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"],
            ["Selector"],
        ),
        (info("endpoints"), ["Name", "Endpoints", "Age"], []),
        (
            info("events"),
            ["Last Seen", "Type", "Reason", "Object", "Message"],
            ["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        (info("namespaces"), ["Name", "Status", "Age"], []),
        (info("configmaps"), ["Name", "Data", "Age"], []),
        (info("secrets"), ["Name", "Type", "Data", "Age"], []),
        (info("leases", "coordination.k8s.io"), ["Name", "Holder", "Age"], []),
        (
            info("horizontalpodautoscalers", "autoscaling", "v2"),
            ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
            [],
        ),
        (
            info("poddisruptionbudgets", "policy"),
            ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"],
            [],
        ),
        (
            info("priorityclasses", "scheduling.k8s.io"),
            ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
            [],
        ),
    ],
)
def test_columns(resource: ResourceInfo, normal: list[str], wide_extra: list[str]) -> None:
    assert columns(resource) == normal
    assert sorted(columns(resource, wide=True)) == sorted(normal + wide_extra)


def test_unknown_kinds_get_name_and_age() -> None:
    widget = ResourceInfo("example.com", "v1", "Widget", "widgets", "widget", True)
    assert columns(widget) == ["Name", "Age"]
    assert cells(widget, obj("Widget", "w")) == ["w", "2d"]


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.plural)
def test_every_row_has_one_cell_per_column(resource: ResourceInfo) -> None:
    result = table(
        resource, [obj(resource.kind), {"kind": resource.kind}], resource_version="9", now=NOW
    )
    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert result["metadata"] == {"resourceVersion": "9"}
    for row in result["rows"]:
        assert len(row["cells"]) == len(result["columnDefinitions"])
    for column in result["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}


def test_include_object_modes() -> None:
    pod = obj("Pod", "p", spec={"containers": []})
    partial = table(info("pods"), [pod], resource_version="1", now=NOW)["rows"][0]["object"]
    assert partial == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": pod["metadata"],
    }
    full = table(info("pods"), [pod], resource_version="1", include_object="Object", now=NOW)
    assert full["rows"][0]["object"] is pod
    none = table(info("pods"), [pod], resource_version="1", include_object="None", now=NOW)
    assert "object" not in none["rows"][0]
    with pytest.raises(ValueError, match="includeObject"):
        table(info("pods"), [pod], resource_version="1", include_object="All")
    paged = table(info("pods"), [], resource_version="1", continue_token="abc")
    assert paged["metadata"] == {"resourceVersion": "1", "continue": "abc"}


# --- pods ----------------------------------------------------------------------------------


def running_pod(**status: Any) -> dict[str, Any]:
    base = {
        "phase": "Running",
        "podIP": "10.244.0.7",
        "podIPs": [{"ip": "10.244.0.7"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": CREATED}},
            }
        ],
    }
    base.update(status)
    return obj(
        "Pod", "web-1", spec={"nodeName": "n1", "containers": [{"name": "app"}]}, status=base
    )


def test_pod_row_running() -> None:
    assert cells(info("pods"), running_pod()) == [
        "web-1",
        "1/1",
        "Running",
        "0",
        "2d",
        "10.244.0.7",
        "n1",
        "<none>",
        "<none>",
    ]


def test_pod_row_restarts_with_last_time() -> None:
    status = [
        {
            "name": "app",
            "ready": False,
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-02T23:55:00Z"}},
        }
    ]
    row = cells(info("pods"), running_pod(containerStatuses=status))
    assert row[1:4] == ["0/1", "CrashLoopBackOff", "3 (5m ago)"]


def test_pod_row_pending_and_gates() -> None:
    pod = obj(
        "Pod",
        "p",
        spec={
            "containers": [{"name": "a"}, {"name": "b"}],
            "readinessGates": [{"conditionType": "example.com/ok"}],
        },
        status={"phase": "Pending", "conditions": [{"type": "example.com/ok", "status": "True"}]},
    )
    assert cells(info("pods"), pod) == [
        "p",
        "0/2",
        "Pending",
        "0",
        "2d",
        "<none>",
        "<none>",
        "<none>",
        "1/1",
    ]


# --- workloads -----------------------------------------------------------------------------

TEMPLATE = {
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]
    }
}


def test_deployment_row() -> None:
    d = obj(
        "Deployment",
        "web",
        spec={"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
        status={"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    )
    assert cells(info("deployments", "apps"), d) == [
        "web",
        "2/3",
        3,
        2,
        "2d",
        "web,log",
        "nginx:1.27,busybox",
        "app=web",
    ]


def test_replicaset_row() -> None:
    rs = obj(
        "ReplicaSet",
        "web-abc",
        spec={
            "replicas": 3,
            "template": TEMPLATE,
            "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
        },
        status={"replicas": 3, "readyReplicas": 1},
    )
    assert cells(info("replicasets", "apps"), rs) == [
        "web-abc",
        3,
        3,
        1,
        "2d",
        "web,log",
        "nginx:1.27,busybox",
        "app=web,pod-template-hash=abc",
    ]


# --- nodes ---------------------------------------------------------------------------------


def node(unschedulable: bool = False, ready: str | None = "True", **labels: str) -> dict[str, Any]:
    n = obj(
        "Node",
        "n1",
        spec={"unschedulable": unschedulable},
        status={
            "conditions": [{"type": "Ready", "status": ready}] if ready else [],
            "addresses": [
                {"type": "InternalIP", "address": "192.168.1.10"},
                {"type": "Hostname", "address": "n1"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0-dockyard",
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "runc://1.1.5",
            },
        },
    )
    n["metadata"]["labels"] = labels
    return n


@pytest.mark.parametrize(
    ("item", "status", "roles"),
    [
        (node(), "Ready", "<none>"),
        (node(unschedulable=True), "Ready,SchedulingDisabled", "<none>"),
        (node(ready="False"), "NotReady", "<none>"),
        (node(ready=None), "Unknown", "<none>"),
        (
            node(**{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}),
            "Ready",
            "control-plane,edge",
        ),
    ],
)
def test_node_row(item: dict[str, Any], status: str, roles: str) -> None:
    assert cells(info("nodes"), item) == [
        "n1",
        status,
        roles,
        "2d",
        "v1.30.0-dockyard",
        "192.168.1.10",
        "<none>",
        "Debian GNU/Linux 12",
        "6.1.0",
        "runc://1.1.5",
    ]


# --- services and endpoints ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (
            {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "protocol": "TCP"}],
                "selector": {"app": "web"},
            },
            {},
            ["ClusterIP", "10.96.0.10", "<none>", "80/TCP", "2d", "app=web"],
        ),
        (
            {
                "type": "NodePort",
                "clusterIP": "10.96.0.11",
                "ports": [
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"},
                ],
            },
            {},
            ["NodePort", "10.96.0.11", "<none>", "80:30080/TCP,53/UDP", "2d", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": []},
            {},
            ["LoadBalancer", "10.96.0.12", "<pending>", "<none>", "2d", "<none>"],
        ),
        (
            {"type": "LoadBalancer", "clusterIP": "10.96.0.12", "ports": []},
            {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
            ["LoadBalancer", "10.96.0.12", "192.0.2.1", "<none>", "2d", "<none>"],
        ),
        (
            {"type": "ExternalName", "externalName": "db.example.com"},
            {},
            ["ExternalName", "<none>", "db.example.com", "<none>", "2d", "<none>"],
        ),
        (
            {"type": "ClusterIP", "clusterIP": "None", "externalIPs": ["192.0.2.9"]},
            {},
            ["ClusterIP", "None", "192.0.2.9", "<none>", "2d", "<none>"],
        ),
    ],
)
def test_service_row(spec: dict[str, Any], status: dict[str, Any], expected: list[Any]) -> None:
    assert cells(info("services"), obj("Service", "s", spec=spec, status=status)) == [
        "s",
        *expected,
    ]


@pytest.mark.parametrize(
    ("subsets", "expected"),
    [
        ([], "<none>"),
        (
            [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}],
            "10.0.0.1:80,10.0.0.2:80",
        ),
        (
            [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...",
        ),
        ([{"addresses": [{"ip": "10.0.0.1"}]}], "10.0.0.1"),  # headless without ports
        ([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}], "[fd00::1]:80"),
    ],
)
def test_endpoints_row(subsets: list[Any], expected: str) -> None:
    assert cells(info("endpoints"), obj("Endpoints", "web", subsets=subsets))[1] == expected


# --- events --------------------------------------------------------------------------------


def test_event_row() -> None:
    e = obj(
        "Event",
        "web-1.17a",
        type="Warning",
        reason="BackOff",
        message=" Back-off \n",
        involvedObject={"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        source={"component": "kubelet", "host": "n1"},
        count=4,
        firstTimestamp="2024-01-02T23:00:00Z",
        lastTimestamp="2024-01-02T23:59:30Z",
    )
    assert cells(info("events"), e) == [
        "30s",
        "Warning",
        "BackOff",
        "pod/web-1",
        "spec.containers{app}",
        "kubelet, n1",
        "Back-off",
        "60m",
        4,
        "web-1.17a",
    ]


def test_event_without_timestamps_uses_event_time_and_count_one() -> None:
    e = obj(
        "Event",
        "e",
        type="Normal",
        reason="Scheduled",
        message="ok",
        involvedObject={"kind": "Node"},
        eventTime="2024-01-02T23:59:55.000000Z",
        reportingComponent="default-scheduler",
    )
    assert cells(info("events"), e) == [
        "5s",
        "Normal",
        "Scheduled",
        "node",
        "",
        "default-scheduler",
        "ok",
        "5s",
        1,
        "e",
    ]


# --- simple kinds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "item", "expected"),
    [
        (
            info("namespaces"),
            obj("Namespace", "team", status={"phase": "Terminating"}),
            ["team", "Terminating", "2d"],
        ),
        (
            info("configmaps"),
            obj("ConfigMap", "c", data={"a": "1", "b": "2"}, binaryData={"c": "AA=="}),
            ["c", 3, "2d"],
        ),
        (
            info("secrets"),
            obj("Secret", "s", type="Opaque", data={"a": "MQ=="}),
            ["s", "Opaque", 1, "2d"],
        ),
        (
            info("leases", "coordination.k8s.io"),
            obj("Lease", "n1", spec={"holderIdentity": "n1"}),
            ["n1", "n1", "2d"],
        ),
        (
            info("priorityclasses", "scheduling.k8s.io"),
            obj("PriorityClass", "high", value=1000, globalDefault=True),
            ["high", 1000, True, "2d", ""],
        ),
        (
            info("poddisruptionbudgets", "policy"),
            obj(
                "PodDisruptionBudget",
                "web",
                spec={"minAvailable": "50%"},
                status={"disruptionsAllowed": 1},
            ),
            ["web", "50%", "N/A", 1, "2d"],
        ),
        (
            info("horizontalpodautoscalers", "autoscaling", "v2"),
            obj(
                "HorizontalPodAutoscaler",
                "web",
                spec={
                    "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                    "minReplicas": 1,
                    "maxReplicas": 5,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": 80},
                            },
                        }
                    ],
                },
                status={
                    "currentReplicas": 2,
                    "currentMetrics": [
                        {
                            "type": "Resource",
                            "resource": {"name": "cpu", "current": {"averageUtilization": 45}},
                        }
                    ],
                },
            ),
            ["web", "Deployment/web", "cpu: 45%/80%", "1", 5, 2, "2d"],
        ),
    ],
)
def test_simple_rows(resource: ResourceInfo, item: dict[str, Any], expected: list[Any]) -> None:
    assert cells(resource, item) == expected


@pytest.mark.parametrize(
    ("specs", "statuses", "expected"),
    [
        ([], [], "<none>"),
        (
            [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            [],
            "cpu: <unknown>/50%",
        ),
        (
            [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "100Mi"},
                    },
                }
            ],
            [{"type": "Resource", "resource": {"current": {"averageValue": "80Mi"}}}],
            "memory: 80Mi/100Mi",
        ),
        (
            [{"type": "Pods", "pods": {"target": {"type": "AverageValue", "averageValue": "1k"}}}]
            * 3,
            [],
            "<unknown>/1k, <unknown>/1k + 1 more...",
        ),
        (
            [
                {
                    "type": "External",
                    "external": {"target": {"type": "AverageValue", "averageValue": "30"}},
                }
            ],
            [],
            "<unknown>/30 (avg)",
        ),
        (
            [{"type": "Object", "object": {"target": {"type": "Value", "value": "2"}}}],
            [{"type": "Object", "object": {"current": {"value": "3"}}}],
            "3/2",
        ),
        ([{"type": "Magic"}], [], "<unknown type>"),
    ],
)
def test_hpa_targets(specs: list[Any], statuses: list[Any], expected: str) -> None:
    assert format_hpa_metrics(specs, statuses) == expected
