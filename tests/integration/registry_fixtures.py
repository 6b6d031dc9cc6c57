"""A real registry for tests: Debian's docker-registry (distribution 2.8) on loopback.

`docker_registry` starts /usr/bin/docker-registry on 127.0.0.1 with a free port and a temp
storage dir (no auth); `auth_registry` adds htpasswd basic auth for alice/s3cret. Each is
stopped by its own PID when the test ends.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

with warnings.catch_warnings():  # crypt makes the bcrypt hash docker-registry's htpasswd wants
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

REGISTRY_BINARY = Path("/usr/bin/docker-registry")
USER, PASSWORD = "alice", "s3cret"


@dataclass(frozen=True)
class RunningRegistry:
    """A started registry: its host:port and storage dir."""

    host: str
    storage: Path


def free_port() -> int:
    """Return a port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(tmp_path: Path, auth: bool) -> Iterator[RunningRegistry]:
    if not REGISTRY_BINARY.exists():
        pytest.fail("docker-registry is not installed: apt-get install docker-registry")
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    storage = tmp_path / "registry-storage"
    config = tmp_path / "registry.yml"
    text = (f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n")  # fmt: skip
    if auth:
        htpasswd = tmp_path / "htpasswd"
        hashed = crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))
        htpasswd.write_text(f"{USER}:{hashed}\n")
        text += f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
    config.write_text(text)
    log = open(tmp_path / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(REGISTRY_BINARY), "serve", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_ready(port, proc)
        yield RunningRegistry(f"127.0.0.1:{port}", storage)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("docker-registry exited at start; see registry.log")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401: up, wants auth
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not answer within 15s")


@pytest.fixture
def docker_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Return a running docker-registry without auth."""
    yield from _start(tmp_path / "open", auth=False)


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Return a running docker-registry with htpasswd basic auth (alice / s3cret)."""
    yield from _start(tmp_path / "auth", auth=True)
