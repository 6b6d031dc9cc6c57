"""Services end to end: a real `dockyard server` with its agent and proxy, driven by kubectl.

A Deployment of 3 busybox web servers, each answering with its own hostname, is exposed with
`kubectl expose --type=NodePort`; requests through the ClusterIP (from a pod, by DNS name) and
through the NodePort (from the host, 127.0.0.1) are spread over all three; a pod failing its
readiness probe stops receiving traffic; sessionAffinity ClientIP pins a client; scaling to 1
loses no request; the DNS name resolves in a pod and outside names are refused; kubectl
port-forward reaches a pod and a service. The module's server is checked to leave nothing
behind: no proxy chain or jump rule, route_localnet as it was, no containers, mounts or netns.
"""

from __future__ import annotations

import hashlib
import json
import random
import secrets
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from tests.e2e.test_agent_support import KUBECTL, AgentServer, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SERVICE_CIDR = f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24"
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir /w; hostname > /w/index.html; exec httpd -f -p 8080 -h /w"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: ["sh", "-c", "test ! -f /tmp/unready"]}
          periodSeconds: 1
        lifecycle:
          preStop: {exec: {command: ["sleep", "2"]}}
"""
CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: client, image: busybox, command: ["sleep", "3600"]}
"""


class ServiceServer(AgentServer):
    """An AgentServer with its own service CIDR."""

    def args(self) -> list[str]:
        return [*super().args(), "--service-cidr", SERVICE_CIDR]


def proxy_rules(bridge: str) -> list[str]:
    """Return every iptables line that belongs to the proxy of the server on this bridge."""
    tag = hashlib.sha256(bridge.encode()).hexdigest()[:6].upper()
    save = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return [line for line in save.splitlines() if f"DY-{tag}-" in line or f"proxy {tag}" in line]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    localnet = Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text()
    base = tmp_path_factory.mktemp("services-e2e")
    (base / "host").mkdir()
    bootstrap_busybox(ImageStore(base / "data"))
    srv = ServiceServer(base, f"dys{secrets.token_hex(4)}",
                        f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24", "node-1")
    srv.start()
    try:
        srv.apply(WEB)
        srv.apply(CLIENT)
        srv.kubectl("expose", "deployment", "web", "--port=80", "--target-port=http",
                    "--type=NodePort")
        wait_until(lambda: srv.get("deployment", "web")["status"].get("readyReplicas") == 3,
                   180, "3 web replicas ready")
        wait_until(lambda: srv.get("pod", "client")["status"].get("phase") == "Running", 120,
                   "client running")
        yield srv
    finally:
        srv.kubectl("delete", "deployment", "web", "--wait=true", check=False, timeout=120)
        srv.stop_and_check()
        assert proxy_rules(srv.bridge) == []
        assert Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text() == localnet


def service(server: AgentServer) -> tuple[str, int]:
    svc = server.get("service", "web")
    return svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as response:
        return str(response.read().decode().strip())


def web_pods(server: AgentServer) -> set[str]:
    out = server.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout
    return {p["metadata"]["name"] for p in json.loads(out)["items"]
            if not p["metadata"].get("deletionTimestamp")}


def ready_ips(server: AgentServer) -> list[str]:
    eps = server.get("endpoints", "web")
    return [a["ip"] for s in eps.get("subsets") or [] for a in s.get("addresses") or []]


def test_expose_allocates_address_and_node_port(server: AgentServer) -> None:
    cluster_ip, node_port = service(server)
    assert cluster_ip.startswith(SERVICE_CIDR.rsplit(".", 1)[0] + ".")
    assert 30000 <= node_port <= 32767
    table = server.kubectl("get", "svc,ep").stdout
    assert "service/web" in table and "NodePort" in table and f"80:{node_port}/TCP" in table
    assert "endpoints/web" in table and ":8080" in table
    assert len(ready_ips(server)) == 3


def test_cluster_ip_from_a_pod_by_dns_name_spreads_over_all(server: AgentServer) -> None:
    script = "for i in $(seq 60); do wget -q -O - http://web/ || echo FAIL; done"
    answers = server.kubectl("exec", "client", "--", "sh", "-c", script, timeout=120).stdout
    counts = Counter(answers.split())
    assert "FAIL" not in counts
    assert set(counts) == web_pods(server), counts


def test_node_port_and_cluster_ip_from_the_host_spread_over_all(server: AgentServer) -> None:
    cluster_ip, node_port = service(server)
    pods = web_pods(server)
    via_node_port = Counter(fetch(f"http://127.0.0.1:{node_port}/") for _ in range(60))
    via_cluster_ip = Counter(fetch(f"http://{cluster_ip}/") for _ in range(60))
    assert set(via_node_port) == pods, via_node_port
    assert set(via_cluster_ip) == pods, via_cluster_ip


def test_dns_name_resolves_in_a_pod_and_outside_names_are_refused(server: AgentServer) -> None:
    cluster_ip, _ = service(server)
    found = server.kubectl("exec", "client", "--", "nslookup",
                           "web.default.svc.cluster.local").stdout
    assert cluster_ip in found
    resolv = server.kubectl("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    outside = server.kubectl("exec", "client", "--", "nslookup", "example.com", check=False)
    assert outside.returncode != 0 and "REFUSED" in outside.stdout + outside.stderr


def test_pod_failing_readiness_gets_no_traffic(server: AgentServer) -> None:
    _, node_port = service(server)
    victim = sorted(web_pods(server))[0]
    victim_ip = server.get("pod", victim)["status"]["podIP"]
    server.kubectl("exec", victim, "--", "touch", "/tmp/unready")
    try:
        wait_until(lambda: victim_ip not in ready_ips(server), 30, "endpoint not ready")
        eps = server.get("endpoints", "web")
        assert victim_ip in [a["ip"] for s in eps["subsets"]
                             for a in s.get("notReadyAddresses") or []]
        time.sleep(1.0)  # the proxy follows endpoint changes within a second
        answers = Counter(fetch(f"http://127.0.0.1:{node_port}/") for _ in range(40))
        assert victim not in answers and len(answers) == 2, answers
    finally:
        server.kubectl("exec", victim, "--", "rm", "-f", "/tmp/unready")
    wait_until(lambda: victim_ip in ready_ips(server), 30, "endpoint ready again")


def test_session_affinity_client_ip_pins_a_client(server: AgentServer) -> None:
    _, node_port = service(server)
    server.kubectl("patch", "service", "web", "-p", '{"spec":{"sessionAffinity":"ClientIP"}}')
    try:
        time.sleep(1.5)
        answers = Counter(fetch(f"http://127.0.0.1:{node_port}/") for _ in range(20))
        assert len(answers) == 1, answers
    finally:
        server.kubectl("patch", "service", "web", "-p", '{"spec":{"sessionAffinity":"None"}}')
    time.sleep(1.5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("target", ["pod", "svc/web"])
def test_port_forward(server: AgentServer, target: str) -> None:
    pod = sorted(web_pods(server))[0]
    local = free_port()
    spec = f"pod/{pod}" if target == "pod" else target
    remote = "8080" if target == "pod" else "80"
    process = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(server.kubeconfig), "port-forward", spec,
         f"{local}:{remote}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert "Forwarding from" in process.stdout.readline()
        answers = {fetch(f"http://127.0.0.1:{local}/") for _ in range(3)}
        assert len(answers) == 1 and answers <= web_pods(server)
        if target == "pod":
            assert answers == {pod}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_scale_to_one_loses_no_request(server: AgentServer) -> None:
    _, node_port = service(server)
    failures: list[str] = []
    answers = Counter[str]()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answers[fetch(f"http://127.0.0.1:{node_port}/")] += 1
            except OSError as e:
                failures.append(str(e))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        server.kubectl("scale", "deployment", "web", "--replicas=1")
        wait_until(lambda: len(ready_ips(server)) == 1, 60, "one endpoint")
        # the removed pods run their preStop hook and terminate meanwhile
        wait_until(lambda: not server.kubectl("get", "pods", "-l", "app=web", "-o",
                                              "name").stdout.count("\n") > 1, 60, "one pod")
    finally:
        stop.set()
        thread.join()
    assert failures == [] and sum(answers.values()) > 20, (failures, answers)
    survivor = web_pods(server)
    time.sleep(1.0)
    assert {fetch(f"http://127.0.0.1:{node_port}/") for _ in range(10)} == survivor
