"""Kind dispatch and the write strategy: status kept, generation bumped, unknown kinds."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dockyard.objects.kinds import (
    handlers_for,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
)
from dockyard.objects.resources import RESOURCES

pytestmark = pytest.mark.unit


def deployment(replicas: int = 1, status: dict[str, Any] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
        "spec": {"replicas": replicas},
    }
    if status is not None:
        obj["status"] = status
    return obj


@pytest.mark.parametrize("kind", sorted({r.kind for r in RESOURCES}))
def test_every_served_kind_has_handlers(kind: str) -> None:
    handlers = handlers_for(kind)
    assert callable(handlers.apply_defaults)
    assert handlers.validate({"kind": kind, "metadata": {}}) != []  # a name is always required


def test_unknown_kind_gets_metadata_validation_only() -> None:
    handlers = handlers_for("Widget")
    ok = {"kind": "Widget", "metadata": {"name": "w", "namespace": "d"}, "spec": {"x": 1}}
    assert handlers.validate(ok) == []
    bad = copy.deepcopy(ok)
    bad["metadata"]["name"] = "Bad_Name"
    assert [e.field for e in handlers.validate(bad)] == ["metadata.name"]
    moved = copy.deepcopy(ok)
    moved["metadata"]["namespace"] = "other"
    assert [e.field for e in handlers.validate_update(moved, ok)] == ["metadata.namespace"]


def test_create_drops_status_and_sets_generation() -> None:
    obj = deployment(status={"replicas": 9})
    prepare_for_create(obj)
    assert obj["status"] == {}  # Kubernetes' zero DeploymentStatus serialises to {}
    assert obj["metadata"]["generation"] == 1


def test_create_keeps_a_node_status() -> None:
    node = {"kind": "Node", "metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"}}}
    prepare_for_create(node)
    assert node["status"] == {"capacity": {"cpu": "2"}}


def test_configmap_create_keeps_everything() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    prepare_for_create(cm)
    assert cm["data"] == {"a": "1"} and cm["metadata"]["generation"] == 1


def test_service_update_keeps_allocated_cluster_ip() -> None:
    old = {
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}],
        },
        "status": {"loadBalancer": {}},
    }
    new = {
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]},
    }
    prepare_for_update(new, old)
    assert new["spec"]["clusterIP"] == "10.96.0.5"
    assert new["spec"]["clusterIPs"] == ["10.96.0.5"]
    assert new["spec"]["ports"][0]["nodePort"] == 30080


def test_create_gives_a_pod_pending_phase() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Running"}}
    prepare_for_create(pod)
    assert pod["status"]["phase"] == "Pending"


def test_update_keeps_stored_status_and_bumps_generation_on_spec_change() -> None:
    old = deployment(1, {"replicas": 1})
    old["metadata"]["generation"] = 3
    new = deployment(4, {"replicas": 100})
    prepare_for_update(new, old)
    assert new["status"] == {"replicas": 1}
    assert new["metadata"]["generation"] == 4  # 3 + 1: spec.replicas changed
    same = deployment(1)
    prepare_for_update(same, old)
    assert same["metadata"]["generation"] == 3  # spec unchanged


def test_status_update_keeps_stored_spec() -> None:
    old = deployment(1, {"replicas": 0})
    new = deployment(7, {"replicas": 1})
    new["metadata"]["resourceVersion"] = "5"
    prepare_for_status_update(new, old)
    assert new["spec"] == {"replicas": 1}
    assert new["status"] == {"replicas": 1}
    assert new["metadata"]["resourceVersion"] == "5"


def test_configmap_has_no_status_handling() -> None:
    old = {"kind": "ConfigMap", "metadata": {"name": "c", "generation": 1}, "data": {"a": "1"}}
    new = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2"}, "status": {"x": 1}}
    prepare_for_update(new, old)
    assert new["status"] == {"x": 1}
    assert new["metadata"]["generation"] == 2


def test_defaults_before_prepare_keep_generation_on_a_no_op_update() -> None:
    stored = deployment(2)
    stored["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    handlers_for("Deployment").apply_defaults(stored)
    stored["metadata"]["generation"] = 1
    sent = deployment(2)  # what a client sends: no defaults filled in
    sent["spec"]["selector"] = {"matchLabels": {"app": "web"}}
    handlers_for("Deployment").apply_defaults(sent)
    prepare_for_update(sent, stored)
    assert sent["metadata"]["generation"] == 1
