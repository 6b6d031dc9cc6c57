"""End-to-end: the docker-style verbs (and top, status, drain) against a server WITH its agent.

One server per module with its local agent (own data dir, run dir, bridge, pod CIDR; busybox
in its image store, see test_agent_support); every test drives `dockyard` by subprocess. The
fixture deletes every pod, stops the server by PID and checks nothing is left on the host.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentServer, new_server, wait_until
from tests.e2e.test_cli_support import dockyard, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    srv = new_server(tmp_path_factory.mktemp("cli-docker"), node="cli-node")
    try:
        yield srv
    finally:
        srv.stop_and_check()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod(server: AgentServer, name: str) -> dict[str, Any] | None:
    result = dockyard(server.kubeconfig, "get", "pod", name, "-o", "json")
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_run_attached_exit_code_and_rm(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "--name", "once", "busybox", "echo",
                      "hello world")
    assert result.returncode == 0 and result.stdout == "hello world\n", result.stderr
    result = dockyard(server.kubeconfig, "run", "--rm", "--name", "fails", "busybox", "sh",
                      "-c", "echo bye; exit 3")
    assert result.returncode == 3 and result.stdout == "bye\n", result.stderr
    assert pod(server, "fails") is None  # --rm removed it
    rows = json.loads(ok(server.kubeconfig, "ps", "-a", "-o", "json"))
    [once] = [r for r in rows if r["name"] == "once"]
    assert once["status"].startswith("Exited (0)") and once["running"] is False
    assert "once" not in ok(server.kubeconfig, "ps", "-q").split()
    ok(server.kubeconfig, "rm", "once")


def test_run_detached_publishes_port_logs_exec(server: AgentServer) -> None:
    port = free_port()
    script = ("mkdir -p /www && echo hello-from-dockyard > /www/index.html && "
              "echo serving && httpd -f -p 8080 -h /www")
    out = ok(server.kubeconfig, "run", "-d", "--name", "web", "-p", f"{port}:8080",
             "-e", "GREETING=hi", "--memory", "64m", "busybox", "sh", "-c", script)
    assert out.strip() == "web"

    def page() -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=3) as resp:
                return str(resp.read().decode())
        except OSError:
            return None

    assert wait_until(page, 60, "the published port") == "hello-from-dockyard\n"
    rows = json.loads(ok(server.kubeconfig, "ps", "-o", "json"))
    [web] = [r for r in rows if r["name"] == "web"]
    assert web["ports"] == f"0.0.0.0:{port}->8080/tcp" and web["node"] == "cli-node"
    assert ok(server.kubeconfig, "logs", "web") == "serving\n"
    result = dockyard(server.kubeconfig, "exec", "web", "sh", "-c", "echo $GREETING; exit 4")
    assert result.returncode == 4 and result.stdout == "hi\n"
    result = dockyard(server.kubeconfig, "exec", "-i", "web", "cat", stdin="piped in\n")
    assert result.returncode == 0 and result.stdout == "piped in\n"
    result = dockyard(server.kubeconfig, "exec", "nosuch", "true")
    assert result.returncode == 125 and "No such container: nosuch" in result.stderr
    result = dockyard(server.kubeconfig, "rm", "web")
    assert result.returncode == 125 and "container is running" in result.stderr


def test_stop_start_restart_rm(server: AgentServer) -> None:
    ok(server.kubeconfig, "run", "-d", "--name", "sleeper", "busybox", "sleep", "3600")
    first_uid = pod(server, "sleeper")["metadata"]["uid"]  # type: ignore[index]
    assert ok(server.kubeconfig, "stop", "-t", "1", "sleeper").strip() == "sleeper"
    assert pod(server, "sleeper") is None
    rows = json.loads(ok(server.kubeconfig, "ps", "-a", "-o", "json"))
    [row] = [r for r in rows if r["name"] == "sleeper"]
    assert row["status"].startswith("Exited (stopped)")
    ok(server.kubeconfig, "start", "sleeper")
    started = pod(server, "sleeper")
    assert started is not None and started["metadata"]["uid"] != first_uid
    ok(server.kubeconfig, "restart", "-t", "1", "sleeper")
    assert pod(server, "sleeper")["metadata"]["uid"] != started["metadata"]["uid"]  # type: ignore[index]
    assert ok(server.kubeconfig, "rm", "-f", "sleeper").strip() == "sleeper"
    wait_until(lambda: pod(server, "sleeper") is None, 60, "the pod to go")
    result = dockyard(server.kubeconfig, "rm", "sleeper")
    assert result.returncode == 125 and "No such container: sleeper" in result.stderr


def test_run_replicas_makes_deployment_and_service(server: AgentServer) -> None:
    out = ok(server.kubeconfig, "run", "-d", "--replicas", "2", "--name", "app", "-p",
             "18081:8080", "busybox", "sleep", "3600")
    assert out.strip() == "app"
    deployment = json.loads(ok(server.kubeconfig, "get", "deploy", "app", "-o", "json"))
    assert deployment["spec"]["replicas"] == 2
    service = json.loads(ok(server.kubeconfig, "get", "svc", "app", "-o", "json"))
    assert service["spec"]["ports"][0]["port"] == 18081
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    ok(server.kubeconfig, "stop", "app")
    assert json.loads(ok(server.kubeconfig, "get", "deploy", "app", "-o", "json"))[
        "spec"]["replicas"] == 0
    ok(server.kubeconfig, "start", "app")
    assert json.loads(ok(server.kubeconfig, "get", "deploy", "app", "-o", "json"))[
        "spec"]["replicas"] == 2
    ok(server.kubeconfig, "rm", "-f", "app")
    assert dockyard(server.kubeconfig, "get", "svc", "app").returncode == 1


def test_logs_follow_until_exit(server: AgentServer) -> None:
    ok(server.kubeconfig, "run", "-d", "--name", "ticker", "busybox", "sh", "-c",
       "for i in 1 2 3; do echo tick $i; sleep 1; done")
    out = ok(server.kubeconfig, "logs", "-f", "ticker", timeout=60)
    assert out == "tick 1\ntick 2\ntick 3\n"
    assert ok(server.kubeconfig, "logs", "--tail", "1", "ticker") == "tick 3\n"
    ok(server.kubeconfig, "rm", "ticker")


def test_image_typo_and_interactive_run_errors(server: AgentServer) -> None:
    result = dockyard(server.kubeconfig, "run", "-d", "--name", "typo", "busybx")
    assert result.returncode == 125
    assert "image busybx not found — did you mean busybox?" in result.stderr
    assert pod(server, "typo") is None  # nothing left behind, as Docker
    result = dockyard(server.kubeconfig, "run", "-it", "busybox", "sh", stdin="")
    assert result.returncode == 125 and "the input device is not a TTY" in result.stderr


def test_stats_top_and_status(server: AgentServer) -> None:
    ok(server.kubeconfig, "run", "-d", "--name", "busy", "--memory", "32m", "busybox", "sh",
       "-c", "while true; do :; done")

    def busy_stats() -> list[Any] | None:
        result = dockyard(server.kubeconfig, "stats", "--no-stream", "-o", "json", "busy")
        return json.loads(result.stdout) if result.returncode == 0 else None

    [row] = wait_until(busy_stats, 90, "metrics of busy")
    assert row["memoryLimitBytes"] == 32 << 20
    wait_until(lambda: busy_stats()[0]["cpuPercent"] > 5, 60, "cpu use")  # type: ignore[index]
    table = ok(server.kubeconfig, "stats", "--no-stream")
    assert table.startswith("NAME") and "busy" in table
    top = ok(server.kubeconfig, "top", "pod", "busy")
    assert top.splitlines()[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    nodes = json.loads(ok(server.kubeconfig, "top", "node", "-o", "json"))
    assert [n["name"] for n in nodes] == ["cli-node"] and nodes[0]["cpuMillis"] > 0
    report = json.loads(ok(server.kubeconfig, "status", "-o", "json"))
    [node] = report["nodes"]
    assert node["ready"] and "busy" in [p["name"] for p in node["pods"]]
    assert node["cpu"]["usedMillis"] > 0 and node["memory"]["allocatableBytes"] > 0
    assert "cli-node  Ready" in ok(server.kubeconfig, "status")
    ok(server.kubeconfig, "rm", "-f", "busy")


DRAINABLE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: drained}
spec:
  replicas: 2
  selector: {matchLabels: {app: drained}}
  template:
    metadata: {labels: {app: drained}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: busybox, command: [sleep, "3600"]}
"""


def test_drain_evicts_and_uncordon(server: AgentServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=DRAINABLE)
    ok(server.kubeconfig, "rollout", "status", "deploy/drained", "--timeout", "120")
    before = json.loads(ok(server.kubeconfig, "get", "pods", "-l", "app=drained", "-o", "json"))
    names = {p["metadata"]["name"] for p in before["items"]}
    out = ok(server.kubeconfig, "drain", "cli-node", "--force", "--timeout", "120")
    assert out.splitlines()[0] == "node/cli-node cordoned"
    assert out.splitlines()[-1] == "node/cli-node drained"
    for name in names:
        assert f"pod/{name} evicted" in out
    after = json.loads(ok(server.kubeconfig, "get", "pods", "-l", "app=drained", "-o", "json"))
    for p in after["items"]:
        assert p["metadata"]["name"] not in names and not p["spec"].get("nodeName")
    ok(server.kubeconfig, "uncordon", "cli-node")
    ok(server.kubeconfig, "rollout", "status", "deploy/drained", "--timeout", "120")
    ok(server.kubeconfig, "delete", "deploy/drained", "--timeout", "60")
