"""OCI runtime spec generation: image config + container request -> runc's config.json.

`build_spec` is a pure function (no I/O): everything it needs from the world (the resolved
user, the sandbox's namespace paths, the cgroup path, the host's file limit) comes in as
arguments, so every rule below is unit-tested without root.

Invariants:
- Kubernetes' override rule: the request's command replaces the image's Entrypoint and its
  args replace the image's Cmd; a command without args drops the image's Cmd.
- Unprivileged containers get Docker's default capability set (bounding; effective and
  permitted only for uid 0), noNewPrivileges, runc's default masked and read-only /proc paths,
  a private /dev (tmpfs; runc creates the standard device nodes), read-only /sys, new pid and
  mount namespaces and the sandbox's network (and uts/ipc) namespaces joined by path.
- Unprivileged containers also get a seccomp filter refusing the syscalls Docker's default
  profile refuses without extra capabilities (a denylist; clone with namespace flags too).
- `privileged` is given only when asked: every capability, no masked or read-only paths, no
  seccomp filter.
- Refused with `SpecError` naming the field: a working dir, mount or image volume under /proc
  or /sys (or not absolute, or with `..`), a uid/gid outside 0..2^32-2, a mount source outside
  the roots the caller allows, an empty command.
- User names are looked up in the rootfs's /etc/passwd and /etc/group via `read_rootfs_file`,
  which resolves every symlink as if chrooted in the rootfs, so a link cannot read host files.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.runtime.rootpath import NotDirectoryError, SymlinkLoopError, resolve

MAX_ID = 2**32 - 2  # 2^32-1 is (uid_t)-1, "no id", to the kernel
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ETC_FILE_BYTES = 4 * 1024 * 1024

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]  # fmt: skip

# Every capability the kernel knows, by number (0..40), for privileged containers.
ALL_CAPABILITIES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]  # fmt: skip


def capabilities_from_mask(mask: int) -> list[str]:
    """Return the names of the capabilities set in a CapBnd-style bit mask."""
    return [name for bit, name in enumerate(ALL_CAPABILITIES) if mask >> bit & 1]


# runc's defaults (`runc spec`), which Docker and containerd use as well.
MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
]  # fmt: skip
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
FORBIDDEN_ROOTS = ("/proc", "/sys")

# Syscalls Docker's default seccomp profile refuses to containers without extra capabilities,
# kept as a denylist (everything else allowed): kernel keyrings, module and kexec loading,
# BPF and perf, userfaultfd, handle-based opens, accounting, swap, reboot, clock setting.
SECCOMP_DENIED = [
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "move_pages",
    "name_to_handle_at", "nfsservctl", "open_by_handle_at", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "query_module", "quotactl", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "syslog",
    "_sysctl", "umount", "umount2", "mount", "unshare", "uselib", "userfaultfd", "ustat", "vm86",
    "vm86old",
]  # fmt: skip
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000,
                         0x20000000, 0x40000000)  # fmt: skip
EPERM = 1
ENOSYS = 38

CPU_PERIOD_US = 100_000  # Kubernetes' CFS period
MIN_CPU_SHARES = 2  # the kernel's minimum, and Kubernetes' for a pod without requests
MAX_CPU_SHARES = 262_144


class SpecError(ValueError):
    """A request or image config the runtime refuses; the message names the field."""


@dataclass(frozen=True)
class User:
    """A resolved process identity: uid, gid and supplementary gids."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Mount:
    """A bind mount of a host path into the container."""

    source: Path
    destination: str
    read_only: bool = False


@dataclass(frozen=True)
class Resources:
    """Kubernetes-style resources: requests give cpu shares, limits give quota and caps."""

    cpu_request_millis: int | None = None
    cpu_limit_millis: int | None = None
    memory_limit_bytes: int | None = None
    pids_limit: int | None = None


@dataclass(frozen=True)
class SpecRequest:
    """What the caller asks of one container, beyond the image config."""

    command: Sequence[str] = ()
    args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    mounts: Sequence[Mount] = ()
    resources: Resources = field(default_factory=Resources)
    privileged: bool = False
    tty: bool = False
    stdin: bool = False
    hostname: str = ""


@dataclass(frozen=True)
class SandboxNamespaces:
    """Paths of the pod's pinned namespaces a container joins; empty means a new one."""

    network: str = ""
    ipc: str = ""
    uts: str = ""


def image_run_config(image_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run section of an OCI image config (accepts the whole config or its section)."""
    section = image_config.get("config")
    if isinstance(section, Mapping):
        return dict(section)
    if "config" in image_config and section is not None:
        raise SpecError("image config: 'config' must be an object")
    return dict(image_config)


def process_args(
    run_config: Mapping[str, Any], command: Sequence[str], args: Sequence[str]
) -> list[str]:
    """Return argv: command replaces Entrypoint, args replaces Cmd (Kubernetes' rule)."""
    entrypoint = list(command) if command else _str_list(run_config, "Entrypoint")
    cmd = list(args) if args else ([] if command else _str_list(run_config, "Cmd"))
    argv = entrypoint + cmd
    if not argv:
        raise SpecError("command: neither the request nor the image config gives a command")
    return argv


def _str_list(run_config: Mapping[str, Any], key: str) -> list[str]:
    value = run_config.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecError(f"image config: {key} must be a list of strings")
    return list(value)


def merge_env(
    run_config: Mapping[str, Any], env: Mapping[str, str], hostname: str, tty: bool
) -> list[str]:
    """Return KEY=VALUE pairs: image Env, then the request's env overriding, PATH ensured."""
    merged: dict[str, str] = {}
    for item in _str_list(run_config, "Env"):
        key, _, value = item.partition("=")
        if key:
            merged[key] = value
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise SpecError(f"env: invalid variable name or value {key!r}")
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    if hostname:
        merged.setdefault("HOSTNAME", hostname)
    if tty:
        merged.setdefault("TERM", "xterm")
    return [f"{k}={v}" for k, v in merged.items()]


def check_container_path(path: str, what: str) -> str:
    """Return `path` normalised, or raise SpecError if relative, with `..`, or in /proc or /sys."""
    if not path.startswith("/"):
        raise SpecError(f"{what}: {path!r} must be an absolute path")
    if "\0" in path or ".." in path.split("/"):
        raise SpecError(f"{what}: {path!r} must not contain '..' or NUL")
    norm = posixpath.normpath(path)
    norm = "/" + norm.lstrip("/")
    for root in FORBIDDEN_ROOTS:
        if norm == root or norm.startswith(root + "/"):
            raise SpecError(f"{what}: {path!r} is under {root}, which the runtime owns")
    return norm


def check_image_volumes(run_config: Mapping[str, Any]) -> list[str]:
    """Return the image's Volumes as container paths, refusing any that reach for the host."""
    volumes = run_config.get("Volumes") or {}
    if not isinstance(volumes, Mapping):
        raise SpecError("image config: Volumes must be an object")
    return [check_container_path(str(v), "image config Volumes") for v in volumes]


def check_mount_source(source: Path, allowed_roots: Sequence[Path]) -> Path:
    """Return the resolved mount source, or raise SpecError if it is outside `allowed_roots`."""
    if not source.is_absolute():
        raise SpecError(f"mounts: source {str(source)!r} must be an absolute path")
    resolved = Path(os.path.realpath(source))
    for root in allowed_roots:
        real_root = Path(os.path.realpath(root))
        if resolved == real_root or real_root in resolved.parents:
            return resolved
    raise SpecError(f"mounts: source {str(source)!r} is outside the allowed host paths")


def check_id(value: int, what: str) -> int:
    """Return `value` if a valid uid/gid (0..2^32-2), else raise SpecError."""
    if value < 0 or value > MAX_ID:
        raise SpecError(f"user: {what} {value} is out of range (0..{MAX_ID})")
    return value


def parse_passwd(text: str) -> list[tuple[str, int, int]]:
    """Return (name, uid, gid) of each well-formed /etc/passwd line."""
    entries = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit() and parts[3].isdigit():
            entries.append((parts[0], int(parts[2]), int(parts[3])))
    return entries


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    """Return (name, gid, members) of each well-formed /etc/group line."""
    entries = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            members = [m for m in parts[3].split(",") if m] if len(parts) > 3 else []
            entries.append((parts[0], int(parts[2]), members))
    return entries


def resolve_user(spec_user: str, passwd: str | None, group: str | None) -> User:
    """Resolve "uid[:gid]" or "name[:group]" against passwd/group texts (None: file absent)."""
    user_part, _, group_part = spec_user.partition(":")
    users = parse_passwd(passwd or "")
    groups = parse_group(group or "")
    if not user_part:
        if group_part:
            raise SpecError(f"user: {spec_user!r} names a group but no user")
        user_part = "0"
    name: str | None = None
    if _is_int(user_part):
        uid = check_id(int(user_part), "uid")
        match = next((u for u in users if u[1] == uid), None)
        name, gid = (match[0], match[2]) if match else (None, 0)
    else:
        found = next((u for u in users if u[0] == user_part), None)
        if found is None:
            raise SpecError(f"user: no user {user_part!r} in the image's /etc/passwd")
        name, uid, gid = found
    if group_part:
        gid = _resolve_group(group_part, groups)
    extra = sorted({g[1] for g in groups if name is not None and name in g[2]} - {gid})
    return User(uid=uid, gid=check_id(gid, "gid"), additional_gids=tuple(extra))


def _resolve_group(group_part: str, groups: list[tuple[str, int, list[str]]]) -> int:
    if _is_int(group_part):
        return check_id(int(group_part), "gid")
    found = next((g for g in groups if g[0] == group_part), None)
    if found is None:
        raise SpecError(f"user: no group {group_part!r} in the image's /etc/group")
    return found[1]


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit() and text.count("-") <= 1


def read_rootfs_file(rootfs: Path, path: str, limit: int = MAX_ETC_FILE_BYTES) -> str | None:
    """Read a file of the rootfs resolving symlinks as if chrooted there; None if absent."""
    fd = _open_in_rootfs(rootfs, path)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(f"rootfs: {path} is not a regular file")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise SpecError(f"rootfs: {path} is larger than {limit} bytes")
    return data.decode("utf-8", errors="replace")


def _open_in_rootfs(rootfs: Path, path: str) -> int | None:
    """Open `path` of the rootfs by descriptor from its resolved parent; None if absent."""
    try:
        with resolve(rootfs, path) as found:
            if found.missing:
                return None
            if found.leaf is None:
                raise SpecError(f"rootfs: {path} is not a regular file")
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
            return os.open(found.leaf, flags, dir_fd=found.fd)
    except NotDirectoryError:
        return None  # a file where a directory should be: the path does not exist
    except SymlinkLoopError as e:
        raise SpecError(f"rootfs: {e}") from e


def cpu_shares(cpu_request_millis: int | None) -> int:
    """Return cpu.shares for a request, as Kubernetes: millis*1024/1000, at least 2."""
    if not cpu_request_millis:
        return MIN_CPU_SHARES
    # e.g. 250m -> 250*1024//1000 = 256 shares; 1m -> 1 -> raised to 2
    return min(MAX_CPU_SHARES, max(MIN_CPU_SHARES, cpu_request_millis * 1024 // 1000))


def cpu_quota(cpu_limit_millis: int) -> int:
    """Return the CFS quota (us per 100ms period) for a limit; 500m -> 50000, min 1000."""
    return max(1000, cpu_limit_millis * CPU_PERIOD_US // 1000)


def linux_resources(resources: Resources, pids_limit: int) -> dict[str, Any]:
    """Return the spec's linux.resources for the requests, limits and pids cap."""
    out: dict[str, Any] = {
        "devices": [{"allow": False, "access": "rwm"}],
        "cpu": {"shares": cpu_shares(resources.cpu_request_millis)},
        "pids": {"limit": pids_limit},
    }
    if resources.cpu_limit_millis:
        out["cpu"]["quota"] = cpu_quota(resources.cpu_limit_millis)
        out["cpu"]["period"] = CPU_PERIOD_US
    if resources.memory_limit_bytes:
        if resources.memory_limit_bytes < 4 * 1024 * 1024:
            raise SpecError("resources: memory limit must be at least 4Mi")
        out["memory"] = {"limit": resources.memory_limit_bytes}
    return out


def _base_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_options = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]  # fmt: skip


def _bind_mounts(mounts: Sequence[Mount], allowed_roots: Sequence[Path]) -> list[dict[str, Any]]:
    out = []
    for m in mounts:
        destination = check_container_path(m.destination, "mounts destination")
        source = check_mount_source(m.source, allowed_roots)
        options = ["rbind", "rprivate", "nosuid", "nodev"] + (["ro"] if m.read_only else ["rw"])
        out.append({"destination": destination, "type": "bind", "source": str(source),
                    "options": options})  # fmt: skip
    return out


def default_seccomp() -> dict[str, Any]:
    """Return the seccomp filter of unprivileged containers (a subset of Docker's default).

    clone with any namespace flag is refused (no user namespace to regain capabilities in);
    clone3 answers ENOSYS, as in Docker's profile, so libc falls back to the filtered clone.
    """
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": list(SECCOMP_DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
            # one rule per flag, OR'ed: (flags & bit) == bit refuses the call
            *({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
               "args": [{"index": 0, "value": bit, "valueTwo": bit, "op": "SCMP_CMP_MASKED_EQ"}]}
              for bit in CLONE_NAMESPACE_FLAGS),
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        ],
    }  # fmt: skip


def _namespaces(ns: SandboxNamespaces) -> list[dict[str, str]]:
    out = [{"type": "pid"}, {"type": "mount"}]
    for kind, path in (("network", ns.network), ("ipc", ns.ipc), ("uts", ns.uts)):
        out.append({"type": kind, "path": path} if path else {"type": kind})
    return out


def _capabilities(privileged: bool, uid: int,
                  available: Sequence[str] | None) -> dict[str, list[str]]:  # fmt: skip
    caps = ALL_CAPABILITIES if privileged else DEFAULT_CAPABILITIES
    if available is not None:  # runc cannot grant what the runtime itself lacks
        caps = [c for c in caps if c in available]
    # A non-root process keeps the set only as its bounding set, as Docker does since
    # CVE-2022-24769: file capabilities can raise it, nothing is granted up front.
    granted = list(caps) if uid == 0 else []
    return {"bounding": list(caps), "effective": granted, "permitted": granted}


def build_spec(
    *,
    image_config: Mapping[str, Any],
    request: SpecRequest,
    user: User,
    rootfs: Path,
    namespaces: SandboxNamespaces,
    cgroups_path: str,
    pids_limit: int,
    allowed_mount_roots: Sequence[Path] = (),
    nofile_limit: int = 1_048_576,
    available_capabilities: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Return the OCI runtime spec (config.json) for one container."""
    run_config = image_run_config(image_config)
    check_image_volumes(run_config)
    cwd = check_container_path(
        request.working_dir or str(run_config.get("WorkingDir") or "/"), "working dir"
    )
    check_id(user.uid, "uid")
    check_id(user.gid, "gid")
    for g in user.additional_gids:
        check_id(g, "additional gid")
    privileged = request.privileged
    process: dict[str, Any] = {
        "terminal": request.tty,
        "user": {"uid": user.uid, "gid": user.gid,
                 "additionalGids": list(user.additional_gids)},
        "args": process_args(run_config, request.command, request.args),
        "env": merge_env(run_config, request.env, request.hostname, request.tty),
        "cwd": cwd,
        "capabilities": _capabilities(privileged, user.uid, available_capabilities),
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_limit, "soft": nofile_limit}],
        "noNewPrivileges": not privileged,
    }  # fmt: skip
    linux: dict[str, Any] = {
        "cgroupsPath": cgroups_path,
        "resources": linux_resources(request.resources, pids_limit),
        "namespaces": _namespaces(namespaces),
    }
    if privileged:
        linux["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
        linux["seccomp"] = default_seccomp()
    spec: dict[str, Any] = {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": str(rootfs), "readonly": False},
        "mounts": _base_mounts(privileged) + _bind_mounts(request.mounts, allowed_mount_roots),
        "linux": linux,
    }
    if request.hostname:
        spec["hostname"] = request.hostname
    return spec


def exec_process(
    container_spec: Mapping[str, Any], cmd: Sequence[str], tty: bool
) -> dict[str, Any]:
    """Return the process spec for `runc exec`: the container's identity, a new argv."""
    if not cmd:
        raise SpecError("exec: command must not be empty")
    process = dict(container_spec["process"])
    process["args"] = list(cmd)
    process["terminal"] = tty
    return process
