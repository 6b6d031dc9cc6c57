"""Endpoints controller's pure decisions: readiness, named target ports per pod, grouping."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.controllers.endpoints import desired_endpoints, desired_subsets, resolve_target_port

pytestmark = pytest.mark.unit


def pod(name: str, ip: str, ready: bool = True, labels: dict[str, str] | None = None,
        ports: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                     "labels": labels if labels is not None else {"app": "web"}, **extra},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False"}]},
    }


def service(ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": ports, **spec}}


HTTP = [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}]


def test_named_target_port_resolves_per_pod() -> None:
    a = pod("a", "10.0.0.2", ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", "10.0.0.3", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", "10.0.0.4")  # no port named web: serves nothing for this service
    subsets = desired_subsets(service(HTTP), [b, a, c])
    assert [(s["addresses"][0]["ip"], s["ports"][0]["port"]) for s in subsets] == [
        ("10.0.0.2", 8080), ("10.0.0.3", 9090)]
    assert resolve_target_port(c, HTTP[0]) is None
    assert resolve_target_port(c, {"port": 80, "targetPort": 8000}) == 8000


def test_not_ready_pods_are_listed_apart_and_others_left_out() -> None:
    ports = [{"port": 80, "targetPort": 80, "protocol": "TCP"}]
    pods = [pod("a", "10.0.0.2"), pod("b", "10.0.0.3", ready=False),
            pod("other", "10.0.0.9", labels={"app": "db"}),
            pod("gone", "10.0.0.8", deletionTimestamp="2024-01-01T00:00:00Z")]
    [subset] = desired_subsets(service(ports), pods)
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.2"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.0.0.3"]
    assert subset["addresses"][0]["targetRef"]["name"] == "a"
    assert subset["addresses"][0]["nodeName"] == "n1"
    published = desired_subsets(service(ports, publishNotReadyAddresses=True), pods)
    assert len(published[0]["addresses"]) == 2


def test_headless_label_and_stable_output() -> None:
    ports = [{"port": 80, "targetPort": 80, "protocol": "TCP"}]
    pods = [pod("a", "10.0.0.2"), pod("b", "10.0.0.3")]
    one = desired_endpoints(service(ports, clusterIP="None"), pods, None)
    two = desired_endpoints(service(ports, clusterIP="None"), list(reversed(pods)), one)
    assert one["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    assert one["subsets"] == two["subsets"]
