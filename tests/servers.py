"""Start real `dockyard server` processes for tests: free ports, temp data dirs, stop by PID."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DOCKYARD = str(Path(sys.executable).parent / "dockyard")


@dataclass
class RunningServer:
    """A dockyard server process started by a test."""

    data_dir: Path
    process: subprocess.Popen[str]
    url: str
    extra_args: list[str] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self, method: str, path: str, body: bytes | None = None, *,
        token: str | None = None, content_type: str = "application/json",
        accept: str = "application/json",
    ) -> tuple[int, bytes, dict[str, str]]:
        """Send one HTTPS request; return (status, body, headers) without raising on errors."""
        headers = {"Accept": accept}
        if token is None:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process (by its PID) and wait for it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start_server(
    data_dir: Path, *extra: str, port: int = 0, agent: bool = False, controllers: bool = True
) -> RunningServer:
    """Start `dockyard server` on a free port and wait until it is ready.

    By default without the local agent (no containers), with the scheduler and controllers;
    tests that run their own ControllerManager pass controllers=False.
    """
    args = [DOCKYARD, "server", "--data-dir", str(data_dir), "--port", str(port), *extra]
    if not agent:
        args.append("--no-agent")
    if not controllers:
        args.append("--no-controllers")
    log = open(data_dir.parent / f"{data_dir.name}-server.log", "a")  # noqa: SIM115
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "ready at" in line:
            url = line.strip().rsplit(" ", 1)[-1]
            return RunningServer(data_dir, process, url, list(extra))
    process.kill()
    process.wait()
    raise RuntimeError(
        f"dockyard server did not start: see {data_dir.parent / (data_dir.name + '-server.log')}"
    )


def kubeconfig_server(path: Path) -> str:
    """Return the server URL written in a kubeconfig."""
    config = yaml.safe_load(path.read_text())
    return str(config["clusters"][0]["cluster"]["server"])
