"""cgroup v1 (this machine's hybrid layout): pod cgroups, usage reading, cleanup.

runc creates each container's cgroup from the spec's `linux.resources` and `cgroupsPath`;
this module makes the pod-level parent (where the per-pod pids cap lives, so a fork bomb
spread over a pod's containers is still bounded), reads usage for metrics, and removes the
dirs runc leaves behind (runc removes only the container's own leaf).

Layout: `/<parent>/<runtime tag>/pod-<sandbox id>/<container id>` in every v1 hierarchy,
where the runtime tag separates side-by-side runtimes.

Invariants:
- A pids limit is never above MAX_PIDS_LIMIT (4096), whatever is asked.
- Removal goes leaf first and ignores dirs already gone; a dir that still holds processes
  (EBUSY) is reported, never forced.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                  "systemd")  # fmt: skip
# On hybrid hosts runc also makes each cgroup in the v2 hierarchy mounted at `unified`;
# nothing is read there, but the dirs must go with the v1 ones.
HIERARCHIES = (*V1_CONTROLLERS, "unified")
MAX_PIDS_LIMIT = 4096
DEFAULT_PIDS_LIMIT = 1024


class CgroupError(OSError):
    """A cgroup could not be made, read or removed."""


@dataclass(frozen=True)
class Usage:
    """Resource usage of one cgroup: cpu time, memory working set and task count."""

    cpu_seconds: float
    memory_bytes: int
    pids: int


def clamp_pids_limit(limit: int | None, default: int) -> int:
    """Return the pids limit to apply: the request or default, never above 4096, at least 1."""
    value = default if limit is None or limit <= 0 else limit
    return max(1, min(MAX_PIDS_LIMIT, value))


def is_cgroup_v1() -> bool:
    """Return True if the v1 memory and pids hierarchies are mounted (hybrid or legacy)."""
    return (CGROUP_ROOT / "memory" / "memory.limit_in_bytes").exists() and (
        CGROUP_ROOT / "pids" / "cgroup.procs"
    ).exists()


def controller_dir(controller: str, path: str) -> Path:
    """Return the dir of a cgroup path in one hierarchy (a v1 controller's, or `unified`)."""
    return CGROUP_ROOT / controller / path.lstrip("/")


def create_pod_cgroup(path: str, pids_limit: int) -> None:
    """Make the pod cgroup with its pids cap (runc makes the other controllers' dirs)."""
    if not is_cgroup_v1():
        raise CgroupError(errno.ENOTSUP, "cgroup v1 memory and pids hierarchies are not mounted"
                          " (this runtime reads cgroup v1, as on hybrid hosts)")  # fmt: skip
    pids_dir = controller_dir("pids", path)
    pids_dir.mkdir(parents=True, exist_ok=True)
    (pids_dir / "pids.max").write_text(str(min(pids_limit, MAX_PIDS_LIMIT)))


def read_usage(path: str) -> Usage:
    """Return cpu seconds, memory working set (usage minus inactive file) and pids."""
    cpu_ns = _read_int(controller_dir("cpuacct", path) / "cpuacct.usage")
    memory_dir = controller_dir("memory", path)
    usage = _read_int(memory_dir / "memory.usage_in_bytes")
    inactive = _memory_stat(memory_dir).get("total_inactive_file", 0)
    # The kubelet's working set: what the OOM killer weighs, not reclaimable page cache.
    working_set = max(0, usage - inactive)
    pids = _read_int(controller_dir("pids", path) / "pids.current")
    return Usage(cpu_seconds=cpu_ns / 1e9, memory_bytes=working_set, pids=pids)


def oom_kill_count(path: str) -> int:
    """Return how many processes the OOM killer killed in this memory cgroup (0 if gone)."""
    try:
        text = (controller_dir("memory", path) / "memory.oom_control").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except FileNotFoundError as e:
        raise CgroupError(errno.ENOENT, f"cgroup file {path} is gone") from e


def _memory_stat(memory_dir: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in (memory_dir / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            out[key] = int(value)
    except (OSError, ValueError):
        pass
    return out


def remove_cgroup(path: str) -> None:
    """Remove a cgroup (and its empty children) in every hierarchy."""
    for controller in HIERARCHIES:
        top = controller_dir(controller, path)
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -len(t[0])):
            _rmdir(Path(dirpath))


def remove_if_empty(path: str) -> None:
    """Remove a parent cgroup in every hierarchy if no child or task is left in it."""
    for controller in HIERARCHIES:
        d = controller_dir(controller, path)
        try:
            d.rmdir()
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                raise


def _rmdir(d: Path) -> None:
    try:
        d.rmdir()
    except FileNotFoundError:
        return
    except OSError as e:
        raise CgroupError(e.errno, f"cannot remove cgroup {d}: {e.strerror}") from e
