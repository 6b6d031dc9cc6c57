"""Helpers for the agent's end-to-end tests: a `dockyard server` WITH its agent, isolated.

Each server gets its own data dir, run dir, bridge name, pod CIDR and free ports, and busybox
in its image store; `stop_and_check` deletes every pod, stops the server by PID and asserts
that nothing is left on the host (mounts, runc containers, bridge, iptables rules, cgroups,
network namespaces). This module holds no tests.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import Runtime
from tests.integration.runtime_fixtures import leftovers

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"


@dataclass
class AgentServer:
    """A dockyard server with its local agent, started by a test."""

    base: Path
    bridge: str
    pod_cidr: str
    node: str
    process: subprocess.Popen[str] | None = None
    url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def args(self) -> list[str]:
        return [DOCKYARD, "server", "--data-dir", str(self.data_dir), "--port", "0",
                "--run-dir", str(self.run_dir), "--bridge", self.bridge, "--pod-cidr",
                self.pod_cidr, "--node-name", self.node, "--node-ip", "127.0.0.1",
                "--agent-port", "0", "--allow-host-path", str(self.base / "host")]  # fmt: skip

    def start(self) -> None:
        """Start (or restart) the server process and wait until it is ready."""
        log = open(self.base / "server.log", "a")  # noqa: SIM115
        self.process = subprocess.Popen(self.args(), stdout=subprocess.PIPE, stderr=log,
                                        text=True)  # fmt: skip
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if "ready at" in line:
                self.url = line.strip().rsplit(" ", 1)[-1]
                return
        self.process.kill()
        raise RuntimeError(f"server did not start; see {self.base / 'server.log'}")

    def stop(self) -> None:
        """Stop the server process (by PID) and wait for it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run kubectl against this server."""
        cmd = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
               str(self.base / "kubecache"), *args]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, input=stdin,
                                timeout=timeout)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        """Return an object as JSON."""
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def apply(self, manifest: str) -> None:
        """kubectl apply a YAML manifest."""
        self.kubectl("apply", "-f", "-", stdin=manifest)

    def runtime(self) -> Runtime:
        """Return a Runtime over this agent's dirs (to inspect what is on the host)."""
        return Runtime(run_dir=self.run_dir, data_dir=self.data_dir, bridge=self.bridge,
                       pod_cidr=self.pod_cidr)  # fmt: skip

    def container_pid(self, pod_uid: str, name: str) -> int:
        """Return the host pid of a pod's running container."""
        async def find() -> int:
            runtime = self.runtime()
            for c in await runtime.list_containers():
                if c.labels.get("io.kubernetes.pod.uid") == pod_uid and c.name == name \
                        and c.state == "running":
                    return c.pid
            raise AssertionError(f"no running container {name} of pod {pod_uid}")

        return asyncio.run(find())

    def stop_and_check(self) -> None:
        """Delete every pod, stop the server, and assert nothing is left on the host."""
        if self.process is not None and self.process.poll() is None:
            self.kubectl("delete", "pods", "--all", "-A", "--grace-period=1", "--wait=true",
                         check=False, timeout=120)  # fmt: skip
        self.stop()
        assert leftovers(self.runtime()) == []


def new_server(base: Path, node: str = "node-1") -> AgentServer:
    """Return an AgentServer with busybox in its store, unique bridge and CIDR, started."""
    base.mkdir(parents=True, exist_ok=True)
    (base / "host").mkdir(exist_ok=True)
    bootstrap_busybox(ImageStore(base / "data"))
    server = AgentServer(base, f"dya{secrets.token_hex(4)}",
                         f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24", node)
    server.start()
    return server


def wait_until(check: Callable[[], Any], timeout: float = 60, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; return that, or fail after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


def container_status(pod: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Return a container's status entry from a pod."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if name is None or status["name"] == name:
            result: dict[str, Any] = status
            return result
    return {}
