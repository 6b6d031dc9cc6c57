"""The controllers with real nodes: a node dies and its pods come back elsewhere; cpu load
scales a Deployment out through the HorizontalPodAutoscaler and back in.

Real parts only: a `dockyard server` with its local agent (node-1), a second node joined with
`dockyard agent` (node-2), runc containers, the agents' cgroup readings as metrics, kubectl.
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import Runtime
from tests.e2e.test_agent_support import DOCKYARD, KUBECTL, AgentServer, wait_until
from tests.integration.runtime_fixtures import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class StoryServer(AgentServer):
    """A server whose node lifecycle reacts in seconds: a grace of 25 s (two of the agents'
    10 s Lease renewals and a margin), and pods that its admission gives no toleration once
    their node is unreachable or not ready (0 s)."""

    def args(self) -> list[str]:
        return [*super().args(), "--node-monitor-grace-period", "25",
                "--default-unreachable-toleration-seconds", "0",
                "--default-not-ready-toleration-seconds", "0"]


def cidr() -> str:
    return f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StoryServer]:
    base = tmp_path / "s"
    (base / "host").mkdir(parents=True)
    bootstrap_busybox(ImageStore(base / "data"))
    srv = StoryServer(base, f"dys{secrets.token_hex(4)}", cidr(), "node-1")
    srv.start()
    try:
        yield srv
    finally:
        # workloads first, or their controllers recreate the pods stop_and_check deletes
        srv.kubectl("delete", "hpa,deployments", "--all", "--wait=true", check=False,
                    timeout=120)
        srv.stop_and_check()


class SecondNode:
    """`dockyard agent` joining the server as node-2, in its own dirs and bridge."""

    def __init__(self, server: AgentServer, base: Path, busybox: bool = True) -> None:
        self.base = base
        base.mkdir(parents=True, exist_ok=True)
        self.bridge = f"dyn{secrets.token_hex(4)}"
        self.cidr = cidr()
        if busybox:
            bootstrap_busybox(ImageStore(base / "data"))
        self.args = [
            DOCKYARD, "agent", "--server", server.url, "--token",
            (server.data_dir / "node-token").read_text().strip(), "--ca-file",
            str(server.data_dir / "pki" / "ca.crt"), "--node-name", "node-2", "--data-dir",
            str(base / "data"), "--run-dir", str(base / "run"), "--bridge", self.bridge,
            "--pod-cidr", self.cidr, "--node-ip", "127.0.0.1", "--port", "0",
        ]  # fmt: skip
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        log = open(self.base / "agent.log", "a")  # noqa: SIM115
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        assert "ready" in self.process.stdout.readline()

    def kill(self) -> None:
        """Kill the agent as a machine dies: no goodbye, containers left behind."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)

    def runtime(self) -> Runtime:
        return Runtime(run_dir=self.base / "run", data_dir=self.base / "data",
                       bridge=self.bridge, pod_cidr=self.cidr)  # fmt: skip


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox:latest
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"""


def mounts_under(base: Path) -> list[str]:
    with open("/proc/mounts") as mounts:
        return [line for line in mounts if f" {base}/" in line]


def nodes_of(server: AgentServer, selector: str) -> list[str]:
    out = server.kubectl("get", "pods", "-l", selector, "-o",
                         "jsonpath={range .items[*]}{.spec.nodeName} {.status.phase} "
                         "{.metadata.deletionTimestamp}{'\\n'}{end}").stdout
    return [line.split()[0] for line in out.splitlines()
            if len(line.split()) == 2 and line.split()[1] == "Running"]


def test_pods_of_a_dead_node_are_recreated_on_another(server: StoryServer,
                                                      tmp_path: Path) -> None:
    node2 = SecondNode(server, tmp_path / "n2")
    node2.start()
    try:
        wait_until(lambda: server.kubectl("get", "node", "node-2", check=False).returncode == 0,
                   what="node-2 registered")
        server.kubectl("cordon", "node-1")  # so both replicas start on node-2
        server.apply(DEPLOYMENT)
        wait_until(lambda: nodes_of(server, "app=web") == ["node-2", "node-2"], 120,
                   "both replicas running on node-2")
        # The server's --default-*-toleration-seconds 0 reached the pods through admission.
        pod = json.loads(server.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)
        tolerations = pod["items"][0]["spec"]["tolerations"]
        for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"):
            assert {"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 0} in tolerations
        server.kubectl("uncordon", "node-1")
        node2.kill()
        wait_until(lambda: nodes_of(server, "app=web") == ["node-1", "node-1"], 180,
                   "both replicas recreated on node-1")
        node = server.get("node", "node-2", namespace="default")
        taints = {t["key"] for t in node["spec"].get("taints") or []}
        assert "node.kubernetes.io/unreachable" in taints
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
        assert ready == "Unknown"
        events = server.kubectl("get", "events", "-A").stdout
        assert "NodeNotReady" in events
    finally:
        # node-2 comes back once: an agent at start removes what is no longer bound to it.
        if node2.process is not None and node2.process.poll() is not None:
            node2.start()
            wait_until(lambda: not node2.runtime().list_sandboxes() and not mounts_under(
                node2.base), 90, "node-2 removed its orphaned sandboxes and their mounts")
        node2.stop()
        assert leftovers(node2.runtime()) == []


BURNER = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: burner}
spec:
  replicas: 1
  selector: {matchLabels: {app: burner}}
  template:
    metadata: {labels: {app: burner}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: busybox:latest
        # burns a core while /tmp/burn exists, idles otherwise
        command:
        - sh
        - -c
        - trap 'exit 0' TERM; while true; do if [ -f /tmp/burn ]; then :; else sleep 1; fi; done
        resources: {requests: {cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: burner}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burner}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"""


def replicas(server: AgentServer) -> int:
    return int(server.get("deployment", "burner")["spec"]["replicas"])


class HpaWatch:
    """`kubectl get hpa NAME --watch -o json` in the background: every version the HPA had."""

    def __init__(self, server: AgentServer, name: str) -> None:
        self.path = server.base / f"hpa-{name}.watch.json"
        with open(self.path, "w") as out:
            self.process = subprocess.Popen(
                [KUBECTL, "--kubeconfig", str(server.kubeconfig), "--cache-dir",
                 str(server.base / "kubecache"), "get", "hpa", name, "--watch", "-o", "json"],
                stdout=out, stderr=subprocess.DEVNULL)

    def versions(self) -> list[dict[str, Any]]:
        """Return the versions seen so far, oldest first."""
        text, decoder, out, at = self.path.read_text(), json.JSONDecoder(), [], 0
        while (at := _skip_space(text, at)) < len(text):
            try:
                obj, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError:
                break  # the last object is still being written
            out.append(obj)
        return out

    def rescales(self) -> list[dict[str, Any]]:
        """Return the statuses written with a rescale (a new lastScaleTime), oldest first."""
        out, last = [], None
        for hpa in self.versions():
            status = hpa.get("status") or {}
            if status.get("lastScaleTime") and status["lastScaleTime"] != last:
                out.append(status)
            last = status.get("lastScaleTime")
        return out

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def cpu_utilization(status: dict[str, Any]) -> int:
    [metric] = status["currentMetrics"]
    assert metric["resource"]["name"] == "cpu"
    return int(metric["resource"]["current"]["averageUtilization"])


def rescale_messages(server: AgentServer) -> list[str]:
    events = json.loads(server.kubectl("get", "events", "-o", "json").stdout)["items"]
    return [e["message"] for e in events if e.get("reason") == "SuccessfulRescale"
            and e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"]


def test_cpu_load_scales_out_and_back(server: StoryServer) -> None:
    server.apply(BURNER)
    watch = HpaWatch(server, "burner")
    try:
        wait_until(lambda: nodes_of(server, "app=burner"), 120, "the burner running")
        pod = server.kubectl("get", "pods", "-l", "app=burner", "-o", "name").stdout.split()[0]
        server.kubectl("exec", pod, "--", "touch", "/tmp/burn")
        wait_until(lambda: replicas(server) == 3, 180, "the HPA scaling out to 3")
        wait_until(lambda: any(s["desiredReplicas"] == 3 for s in watch.rescales()), 30,
                   "the status of the rescale to 3")
        assert "New size: 3; reason: cpu resource utilization (percentage of request) above " \
               "target" in rescale_messages(server)
        ups = watch.rescales()
        for status in ups:  # 1 → 3 at once, or 1 → 2 → 3: every step was above the target
            assert status["desiredReplicas"] > status["currentReplicas"]
            assert cpu_utilization(status) > 50, status
        first = ups[0]
        if first["currentReplicas"] == 1:
            # one pod: ceil(1 × utilization / 50%) replicas, at most 3 (maxReplicas); the
            # status holds the utilization truncated to a whole percent, hence the +1 bound.
            u = cpu_utilization(first)
            assert min(math.ceil(u / 50), 3) <= first["desiredReplicas"] \
                <= min(math.ceil((u + 1) / 50), 3), first
        server.kubectl("exec", pod, "--", "rm", "/tmp/burn")
        wait_until(lambda: replicas(server) == 1, 180, "the HPA scaling back to 1")
        wait_until(lambda: watch.rescales()[-1]["desiredReplicas"] == 1, 30,
                   "the status of the rescale to 1")
        down = watch.rescales()[-1]
        assert down["currentReplicas"] > 1 and cpu_utilization(down) < 50, down
        assert "New size: 1; reason: All metrics below target" in rescale_messages(server)
    finally:
        watch.stop()


def test_a_node_pulls_images_from_the_cluster_registry(server: StoryServer,
                                                      tmp_path: Path) -> None:
    node2 = SecondNode(server, tmp_path / "n2", busybox=False)  # an empty image store
    node2.start()
    try:
        wait_until(lambda: server.kubectl("get", "node", "node-2", check=False).returncode == 0,
                   what="node-2 registered")
        server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: pulled}
spec:
  nodeName: node-2
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox:latest, command: [sh, -c, "echo from node-2; sleep 3600"]}
""")
        wait_until(lambda: server.get("pod", "pulled")["status"].get("phase") == "Running", 120,
                   "the pod running on node-2 with the image pulled from the server")
        events = server.kubectl("get", "events", "--field-selector",
                                "involvedObject.name=pulled").stdout
        assert 'Successfully pulled image "busybox:latest"' in events
        ImageStore(node2.base / "data").resolve("busybox:latest")
        server.kubectl("delete", "pod", "pulled", "--grace-period=1", timeout=60)
    finally:
        node2.stop()
        assert leftovers(node2.runtime()) == []
