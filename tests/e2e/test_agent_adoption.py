"""Restarts and extra nodes: a restarted server adopts running containers, keeping their restart
counts; `dockyard agent` joins a second node with a join token and serves logs and exec for it.
"""

from __future__ import annotations

import os
import random
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import Runtime
from tests.e2e.test_agent_support import DOCKYARD, container_status, new_server, wait_until
from tests.integration.runtime_fixtures import leftovers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

POD = """
apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "echo started; exec sleep 3600"]
    readinessProbe: {exec: {command: ["true"]}, periodSeconds: 1}
"""


def test_server_restart_adopts_running_containers(tmp_path: Path) -> None:
    server = new_server(tmp_path / "s")
    try:
        server.apply(POD)
        wait_until(lambda: container_status(server.get("pod", "steady")).get("ready"))
        uid = server.get("pod", "steady")["metadata"]["uid"]
        os.kill(server.container_pid(uid, "c"), signal.SIGKILL)  # restartCount becomes 1
        wait_until(lambda: (s := container_status(server.get("pod", "steady")))
                   .get("restartCount") == 1 and s.get("ready"), what="a restart")  # fmt: skip
        before = container_status(server.get("pod", "steady"))
        pid = server.container_pid(uid, "c")
        server.stop()
        server.start()
        wait_until(lambda: server.kubectl("get", "node", check=False).returncode == 0)
        time.sleep(3)  # let the new agent sync and probe
        after = wait_until(lambda: (s := container_status(server.get("pod", "steady")))
                           .get("ready") and s, what="Ready after restart")  # fmt: skip
        assert after["containerID"] == before["containerID"]
        assert after["restartCount"] == 1
        assert server.container_pid(uid, "c") == pid  # the very same process
        assert server.kubectl("logs", "steady").stdout == "started\n"
        assert server.kubectl("exec", "steady", "--", "echo", "hi").stdout == "hi\n"
    finally:
        server.stop_and_check()


def test_dockyard_agent_joins_a_second_node(tmp_path: Path) -> None:
    server = new_server(tmp_path / "s")
    base = tmp_path / "n2"
    bootstrap_busybox(ImageStore(base / "data"))
    bridge = f"dyb{secrets.token_hex(4)}"
    cidr = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
    args = [DOCKYARD, "agent", "--server", server.url, "--token",
            (server.data_dir / "node-token").read_text().strip(), "--ca-file",
            str(server.data_dir / "pki" / "ca.crt"), "--node-name", "node-2", "--data-dir",
            str(base / "data"), "--run-dir", str(base / "run"), "--bridge", bridge,
            "--pod-cidr", cidr, "--node-ip", "127.0.0.1", "--port", "0"]  # fmt: skip

    def start_agent() -> subprocess.Popen[str]:
        log = open(base / "agent.log", "a")  # noqa: SIM115
        agent = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert agent.stdout is not None
        assert "ready" in agent.stdout.readline()
        return agent

    def stop_agent(agent: subprocess.Popen[str]) -> None:
        os.kill(agent.pid, signal.SIGTERM)
        agent.wait(timeout=30)

    agent = start_agent()
    try:
        wait_until(lambda: server.kubectl("get", "node", "node-2", check=False).returncode == 0)
        server.apply(POD.replace("spec:\n", "spec:\n  nodeName: node-2\n", 1))
        wait_until(lambda: container_status(server.get("pod", "steady")).get("ready"))
        pod = server.get("pod", "steady")
        assert pod["spec"]["nodeName"] == "node-2"
        assert pod["status"]["podIP"].startswith(cidr.rsplit(".", 1)[0])
        assert server.kubectl("logs", "steady").stdout == "started\n"
        assert server.kubectl("exec", "steady", "--", "hostname").stdout == "steady\n"
        token = (base / "data" / "agent" / "node-2" / "node-token").read_text().strip()
        assert token.startswith("dyn")  # the join token was traded for a node token
        before = container_status(pod)["containerID"]
        stop_agent(agent)
        agent = start_agent()  # a restarted agent adopts the running container
        time.sleep(3)
        assert container_status(server.get("pod", "steady"))["containerID"] == before
        server.kubectl("delete", "pod", "steady", "--grace-period=1", timeout=60)
    finally:
        stop_agent(agent)
        runtime = Runtime(run_dir=base / "run", data_dir=base / "data", bridge=bridge,
                          pod_cidr=cidr)  # fmt: skip
        assert leftovers(runtime) == []
        server.stop_and_check()
