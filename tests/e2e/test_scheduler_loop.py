"""The live scheduler inside `dockyard server`: pending pods get bound, or told why not.

Nodes here are Node objects registered through the API (as an agent would register them); no
containers run, so only placement is under test.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.servers import RunningServer

pytestmark = pytest.mark.e2e
PODS = "/api/v1/namespaces/default/pods"


def call(server: RunningServer, method: str, path: str, obj: Any = None,
         content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    code, raw, _ = server.request(method, path, None if obj is None else json.dumps(obj).encode(),
                                  content_type=content_type)
    return code, json.loads(raw) if raw.strip() else {}


def node(name: str, cpu: str, memory: str, taints: list[dict[str, str]] | None = None
         ) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"taints": taints or []},
        "status": {
            "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, cpu: str, priority: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{
        "name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]}
    if priority:
        spec["priority"] = priority
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def register(server: RunningServer, obj: dict[str, Any]) -> None:
    status = obj.pop("status")
    code, created = call(server, "POST", "/api/v1/nodes", obj)
    assert code == 201, created
    created["status"] = status
    code, answer = call(server, "PUT", f"/api/v1/nodes/{obj['metadata']['name']}/status",
                        created)
    assert code == 200, answer


def node_of(server: RunningServer, name: str) -> str:
    return str(call(server, "GET", f"{PODS}/{name}")[1]["spec"].get("nodeName") or "")


def test_pods_are_bound_and_spread_and_unfit_pods_are_told_why(
    dockyard_server: RunningServer,
) -> None:
    register(dockyard_server, node("small", "1", "2Gi"))
    register(dockyard_server, node("big", "4", "8Gi"))
    register(dockyard_server, node("tainted", "8", "8Gi",
                                   [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]))
    for i in range(3):
        assert call(dockyard_server, "POST", PODS, pod(f"web-{i}", "500m"))[0] == 201
    nodes = [wait_for(lambda i=i: node_of(dockyard_server, f"web-{i}")) for i in range(3)]
    assert "tainted" not in nodes and set(nodes) <= {"small", "big"}
    _, bound = call(dockyard_server, "GET", f"{PODS}/web-0")
    assert {c["type"]: c["status"] for c in bound["status"]["conditions"]}["PodScheduled"] == "True"

    assert call(dockyard_server, "POST", PODS, pod("huge", "6"))[0] == 201

    def unschedulable() -> str:
        conditions = call(dockyard_server, "GET", f"{PODS}/huge")[1]["status"].get("conditions")
        for c in conditions or []:
            if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                return str(c["message"])
        return ""

    message = wait_for(unschedulable)
    assert message.startswith("0/3 nodes are available:")
    assert "2 Insufficient cpu" in message and "1 node(s) had untolerated taint" in message
    _, events = call(dockyard_server, "GET", "/api/v1/namespaces/default/events"
                     "?fieldSelector=involvedObject.name%3Dhuge")
    assert any(e["reason"] == "FailedScheduling" for e in events["items"])

    # the cluster changes: a node big enough arrives, and the held pod is retried
    register(dockyard_server, node("bigger", "8", "16Gi"))
    assert wait_for(lambda: node_of(dockyard_server, "huge")) == "bigger"
