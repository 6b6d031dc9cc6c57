"""Registry credentials stored as Docker stores them: config.json `auths` entries.

`{"auths": {"host:port": {"auth": base64("user:password")}}}` in DOCKER_CONFIG/config.json
(default ~/.docker/config.json), so `docker login`, `podman login --authfile` and skopeo
(`--authfile`) read what `dockyard login` writes, and the other way round. Docker Hub's key
is `https://index.docker.io/v1/`.

Invariants: the file is rewritten atomically (temp file + rename) with mode 0600; keys other
than the entry changed are kept as they were.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


def default_config_path() -> Path:
    """Return DOCKER_CONFIG (a dir) or ~/.docker: where config.json lives."""
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def _auth_key(registry: str) -> str:
    host = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    return DOCKER_HUB_KEY if host in DOCKER_HUB_HOSTS else host


class CredentialStore:
    """A Docker-style config.json (give its dir, as `docker --config`, or the file)."""

    def __init__(self, config: Path) -> None:
        self.path = config if config.suffix == ".json" else config / "config.json"

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise ValueError(f"{self.path}: not a readable config.json: {e}") from e
        return data if isinstance(data, dict) else {}

    def get(self, registry: str) -> tuple[str, str] | None:
        """Return (username, password) stored for `registry`, or None."""
        auths = self._read().get("auths") or {}
        key = _auth_key(registry)
        entry = auths.get(key) or auths.get(f"https://{key}") or auths.get(f"http://{key}")
        if not isinstance(entry, dict):
            return None
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            return user, password
        if entry.get("username"):
            return str(entry["username"]), str(entry.get("password", ""))
        return None

    def store(self, registry: str, username: str, password: str) -> None:
        """Save credentials for `registry`."""
        data = self._read()
        auths = data.setdefault("auths", {})
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        auths[_auth_key(registry)] = {"auth": token}
        self._write(data)

    def erase(self, registry: str) -> bool:
        """Forget `registry`'s credentials; return True if there were any."""
        data = self._read()
        removed = (data.get("auths") or {}).pop(_auth_key(registry), None) is not None
        if removed:
            self._write(data)
        return removed

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix="config.json.")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent="\t")
            os.chmod(tmp, 0o600)
            os.rename(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
