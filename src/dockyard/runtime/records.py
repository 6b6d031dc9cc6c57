"""The runtime's public values and its state on disk (one JSON file per sandbox/container).

Requests (SandboxConfig, ContainerConfig) and answers (Sandbox, ContainerStatus, ...) are
plain dataclasses; records are what the runtime keeps under RUN_DIR/state so that a new
process adopts what kept running.

Invariants:
- A record file is written atomically (temp file, rename): a crash of dockyard leaves the old
  or the new record, never half of one. No fsync: the run dir lives on tmpfs in production
  (/run/dockyard) and the containers it describes do not survive a power loss either; an fsync
  per write cost ~6 ms of each container start here.
- A record exists for every sandbox/container the runtime made and did not remove; a record
  whose file cannot be parsed is reported (ValueError), never silently dropped.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from dockyard.runtime.network import PortMapping
from dockyard.runtime.spec import Mount, Resources

ContainerState = Literal["created", "running", "exited", "unknown"]
ExitReason = Literal["", "Completed", "Error", "OOMKilled"]


@dataclass(frozen=True)
class SandboxConfig:
    """A pod's sandbox request (Kubernetes CRI's PodSandboxConfig, the parts we use)."""

    pod_uid: str
    name: str
    namespace: str = "default"
    hostname: str = ""
    port_mappings: list[PortMapping] = field(default_factory=list)
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    share_ipc: bool = True
    pids_limit: int | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerConfig:
    """A container request (CRI's ContainerConfig, the parts we use)."""

    name: str
    lower_dirs: list[Path]
    image_config: dict[str, Any] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""
    mounts: list[Mount] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    privileged: bool = False
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False  # Kubernetes' stdinOnce: stdin closes when the first attach ends
    attempt: int = 0
    image: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sandbox:
    """A pod sandbox: its pinned namespaces and its address."""

    id: str
    pod_uid: str
    name: str
    namespace: str
    hostname: str
    netns_path: Path
    ip: str
    created_at: float
    port_mappings: list[PortMapping]
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class ContainerStatus:
    """Where a container stands (CRI's ContainerStatus, the parts we use)."""

    id: str
    name: str
    sandbox_id: str
    state: ContainerState
    pid: int
    exit_code: int | None
    reason: ExitReason
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempt: int
    image: str
    log_path: Path
    labels: dict[str, str]
    annotations: dict[str, str]
    message: str = ""


@dataclass(frozen=True)
class ContainerStats:
    """Usage of one container: cpu seconds, memory working set bytes, task count."""

    cpu_seconds: float
    memory_bytes: int
    pids: int


@dataclass(frozen=True)
class ExecResult:
    """What a command run by exec_sync gave back."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    timed_out: bool = False


@dataclass
class SandboxRecord:
    """The state kept on disk for one sandbox."""

    id: str
    config: dict[str, Any]
    netns_path: str
    uts_path: str
    ipc_path: str
    ip: str
    cni_result: dict[str, Any]
    cgroup_path: str
    created_at: float
    # 1: the bridge plugin masqueraded per pod (ipMasq), so its DEL must undo that;
    # 2: one masquerade chain per runtime. Records written before the field are 1.
    network_version: int = 1

    def sandbox_config(self) -> SandboxConfig:
        """Return the request this sandbox was made from."""
        cfg = dict(self.config)
        cfg["port_mappings"] = [PortMapping(**p) for p in cfg.get("port_mappings", [])]
        return SandboxConfig(**cfg)


@dataclass
class ContainerRecord:
    """The state kept on disk for one container."""

    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    labels: dict[str, str]
    annotations: dict[str, str]
    container_dir: str
    log_path: str
    cgroup_path: str
    created_at: float
    pid: int = 0
    pid_start: int = 0  # the pid's start time (clock ticks since boot): guards against reuse
    started_at: float | None = None
    tty: bool = False


def to_json(value: Any) -> Any:
    """Return a dataclass (or nested value) as JSON-compatible data."""
    if hasattr(value, "__dataclass_fields__"):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_atomic(path: Path, data: Any) -> None:
    """Write JSON to `path` atomically (temp file in the same dir, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(to_json(data), f, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any]:
    """Return the JSON object in `path`."""
    with open(path) as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


R = TypeVar("R", SandboxRecord, ContainerRecord)


class RecordCache(Generic[R]):
    """The records of one state dir, kept in memory and re-read when their files change.

    Every write goes to disk first (atomically: a new inode renamed over the old), then to
    memory. Each read scans the dir (one getdents and a stat per file, no parsing) and
    re-parses only files whose (inode, mtime, size) changed, so the many status calls of a
    node agent stay cheap and still see what another process (a CLI, an earlier runtime)
    wrote.
    """

    def __init__(self, directory: Path, kind: type[R]) -> None:
        self.directory = directory
        self.kind: type[R] = kind
        self._records: dict[str, tuple[tuple[int, int, int], R]] = {}

    def _fresh(self) -> dict[str, tuple[tuple[int, int, int], R]]:
        seen = set()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if not entry.name.endswith(".json") or entry.name.startswith("."):
                    continue
                record_id = entry.name[:-5]
                seen.add(record_id)
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    seen.discard(record_id)
                    continue
                key = (st.st_ino, st.st_mtime_ns, st.st_size)
                cached = self._records.get(record_id)
                if cached is None or cached[0] != key:
                    self._load(record_id, key)
        for gone in set(self._records) - seen:
            del self._records[gone]
        return self._records

    def _load(self, record_id: str, key: tuple[int, int, int]) -> None:
        path = self.directory / f"{record_id}.json"
        try:
            self._records[record_id] = (key, self.kind(**read_json(path)))
        except FileNotFoundError:
            self._records.pop(record_id, None)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"runtime state {path} is unreadable: {e}") from e

    def get(self, record_id: str) -> R | None:
        """Return the record with this id, or None."""
        found = self._fresh().get(record_id)
        return found[1] if found else None

    def all(self) -> list[R]:
        """Return every record, oldest first."""
        return sorted((r for _, r in self._fresh().values()), key=lambda r: r.created_at)

    def put(self, record_id: str, record: R) -> None:
        """Write a record to disk and memory."""
        path = self.directory / f"{record_id}.json"
        write_atomic(path, record)
        st = os.stat(path)
        self._records[record_id] = ((st.st_ino, st.st_mtime_ns, st.st_size), record)

    def remove(self, record_id: str) -> None:
        """Delete a record from disk and memory (a missing one is fine)."""
        (self.directory / f"{record_id}.json").unlink(missing_ok=True)
        self._records.pop(record_id, None)
