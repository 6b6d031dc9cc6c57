"""The node's container runtime: pod sandboxes and their containers, as the Kubernetes CRI.

One `Runtime` per node (per run dir). It ties the parts together: pinned namespaces and CNI
(network.py), overlayfs (rootfs.py), the OCI spec (spec.py), conmon + runc (monitor.py,
runc.py), cgroups (cgroups.py), logs (logs.py) and exec (exec.py).

Layout:
- RUN_DIR/state/{sandboxes,containers}/<id>.json  records (records.py), written atomically
- RUN_DIR/sandboxes/<id>/  pinned namespaces, hosts, hostname, resolv.conf
- RUN_DIR/runc  runc's state root;  RUN_DIR/exits  conmon's exit files
- DATA_DIR/containers/<id>/  bundle (config.json), upper, work, rootfs mount, persist/
- DATA_DIR/logs/<namespace>_<name>_<uid>/<container>/<attempt>.log  (the kubelet's layout)

Invariants:
- Everything is found again from disk: a new Runtime on the same dirs lists, stops, execs
  and reads the logs of containers an earlier process started (conmon keeps them running).
- `close()` leaves containers running; only remove_container/remove_sandbox stop them.
- A failed create leaves nothing behind (mounts, namespaces, addresses, records, cgroups).
- Removal is idempotent and removes, in order: processes, runc state, mounts, cgroups,
  addresses and port rules, namespaces, files, then the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import resource
import secrets
import shutil
import signal as signal_module
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.runtime import cgroups, logs, monitor
from dockyard.runtime.attach import AttachSession
from dockyard.runtime.attach import attach as attach_to
from dockyard.runtime.exec import ExecProcess, exec_stream
from dockyard.runtime.exec import exec_sync as run_exec_sync
from dockyard.runtime.monitor import MonitorPaths
from dockyard.runtime.network import (
    CniNetwork,
    NetworkError,
    connect_in_netns,
    create_namespaces,
    remove_namespaces,
    validate_port_mappings,
)
from dockyard.runtime.records import (
    ContainerConfig,
    ContainerRecord,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    RecordCache,
    Sandbox,
    SandboxConfig,
    SandboxRecord,
    read_json,
    to_json,
)
from dockyard.runtime.rootfs import mount_rootfs, remove_rootfs
from dockyard.runtime.runc import Runc, RuncError
from dockyard.runtime.spec import (
    Mount,
    SandboxNamespaces,
    SpecError,
    SpecRequest,
    build_spec,
    capabilities_from_mask,
    image_run_config,
    read_rootfs_file,
    resolve_user,
)

SIGKILL = int(signal_module.SIGKILL)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$")  # a DNS subdomain of <= 63
EXIT_WAIT_SECONDS = 10.0
LOG_MAX_BYTES = 10 * 1024 * 1024  # the kubelet's containerLogMaxSize default
LOG_MAX_FILES = 5  # the kubelet's containerLogMaxFiles default


class NotFoundError(LookupError):
    """No sandbox or container with that id."""


class RequestError(ValueError):
    """A request the runtime refuses; the message names the field."""


class Runtime:
    """Pod sandboxes and containers on one node, through conmon, runc, CNI and cgroups."""

    def __init__(
        self, *, run_dir: Path, data_dir: Path, bridge: str = "dockyard0",
        pod_cidr: str = "10.88.0.0/16", cni_bin_dir: Path = Path("/usr/lib/cni"),
        default_pids_limit: int = cgroups.DEFAULT_PIDS_LIMIT, cgroup_parent: str = "/dockyard",
        allowed_mount_roots: Sequence[Path] = (), log_max_bytes: int = LOG_MAX_BYTES,
        log_max_files: int = LOG_MAX_FILES, runc_binary: str = "runc",
    ) -> None:  # fmt: skip
        self.run_dir = run_dir.absolute()
        self.data_dir = data_dir.absolute()
        self.default_pids_limit = cgroups.clamp_pids_limit(default_pids_limit, default_pids_limit)
        self.tag = hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:12]
        self.cgroup_root = f"/{cgroup_parent.strip('/')}/{self.tag}"
        self.allowed_mount_roots = [Path(p) for p in allowed_mount_roots]
        self.log_max_bytes = log_max_bytes
        self.log_max_files = max(1, log_max_files)
        self.runc_binary = shutil.which(runc_binary) or runc_binary
        self.runc = Runc(self.run_dir / "runc", self.runc_binary)
        self.network = CniNetwork(run_dir=self.run_dir, bridge=bridge, pod_cidr=pod_cidr,
                                  cni_bin_dir=cni_bin_dir)  # fmt: skip
        self._sandbox_cache = RecordCache(self.sandbox_state_dir, SandboxRecord)
        self._container_cache = RecordCache(self.container_state_dir, ContainerRecord)
        self._locks: dict[str, asyncio.Lock] = {}
        self._network_lock = asyncio.Lock()  # held by destroy_network only
        self._network_users = 0  # sandboxes being created or removed: CNI calls in flight
        for d in (self.sandbox_state_dir, self.container_state_dir, self.exit_dir,
                  self.run_dir / "runc", self.run_dir / "sandboxes", self.data_dir / "containers",
                  self.data_dir / "logs"):
            d.mkdir(parents=True, exist_ok=True)  # fmt: skip

    # -- paths --------------------------------------------------------------------------

    @property
    def sandbox_state_dir(self) -> Path:
        """Return where sandbox records are kept."""
        return self.run_dir / "state" / "sandboxes"

    @property
    def container_state_dir(self) -> Path:
        """Return where container records are kept."""
        return self.run_dir / "state" / "containers"

    @property
    def exit_dir(self) -> Path:
        """Return where conmon writes exit files."""
        return self.run_dir / "exits"

    def _monitor_paths(self, rec: ContainerRecord) -> MonitorPaths:
        cdir = Path(rec.container_dir)
        return MonitorPaths(bundle=cdir, persist_dir=cdir / "persist", exit_dir=self.exit_dir,
                            log_path=Path(rec.log_path))  # fmt: skip

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- records ------------------------------------------------------------------------

    def _sandbox_record(self, sandbox_id: str) -> SandboxRecord:
        rec = self._sandbox_cache.get(_safe_id(sandbox_id))
        if rec is None:
            raise NotFoundError(f"sandbox {sandbox_id} not found")
        return rec

    def _container_record(self, container_id: str) -> ContainerRecord:
        rec = self._container_cache.get(_safe_id(container_id))
        if rec is None:
            raise NotFoundError(f"container {container_id} not found")
        return rec

    def _save_sandbox(self, rec: SandboxRecord) -> None:
        self._sandbox_cache.put(rec.id, rec)

    def _save_container(self, rec: ContainerRecord) -> None:
        self._container_cache.put(rec.id, rec)

    # -- sandboxes ----------------------------------------------------------------------

    async def create_sandbox(self, config: SandboxConfig) -> Sandbox:
        """Make a pod sandbox: namespaces, pod cgroup, address and host ports; return it."""
        hostname = _hostname(config)
        _check_sandbox_config(config, hostname)
        sandbox_id = secrets.token_hex(32)
        sdir = self.run_dir / "sandboxes" / sandbox_id
        cgroup_path = f"{self.cgroup_root}/pod-{sandbox_id}"
        pids_limit = cgroups.clamp_pids_limit(config.pids_limit, self.default_pids_limit)
        self._network_users += 1
        cni_added = False
        try:
            ns = await create_namespaces(sdir, hostname)
            cgroups.create_pod_cgroup(cgroup_path, pids_limit)
            if self._network_lock.locked():
                raise RequestError("create_sandbox: the network is being destroyed")
            # CNI ADDs run concurrently: host-local IPAM locks its own files, the bridge
            # plugin tolerates a bridge made meanwhile, iptables waits for its lock (-w).
            result = await self.network.add(sandbox_id, ns.net, config.port_mappings)
            cni_added = True
            ip = _result_ip(result)
            _write_etc_files(sdir, config, hostname, ip)
            rec = SandboxRecord(
                id=sandbox_id, config=to_json(config), netns_path=str(ns.net),
                uts_path=str(ns.uts), ipc_path=str(ns.ipc), ip=ip, cni_result=result,
                cgroup_path=cgroup_path, created_at=time.time(), network_version=2,
            )  # fmt: skip
            self._save_sandbox(rec)
        except BaseException:
            if cni_added:
                with contextlib.suppress(Exception):
                    await self.network.delete(sandbox_id, sdir / "ns" / "net",
                                              config.port_mappings, None)  # fmt: skip
            with contextlib.suppress(Exception):
                cgroups.remove_cgroup(cgroup_path)
            remove_namespaces(sdir)
            shutil.rmtree(sdir, ignore_errors=True)
            raise
        finally:
            self._network_users -= 1
        return _sandbox(rec)

    async def remove_sandbox(self, sandbox_id: str) -> None:
        """Stop and remove the sandbox's containers, release its address, ports, namespaces."""
        async with self._lock(sandbox_id):
            try:
                rec = self._sandbox_record(sandbox_id)
            except NotFoundError:
                return
            for c in self._container_records():
                if c.sandbox_id == sandbox_id:
                    await self.remove_container(c.id)
            sdir = self.run_dir / "sandboxes" / sandbox_id
            config = rec.sandbox_config()
            self._network_users += 1
            try:
                await self.network.delete(sandbox_id, Path(rec.netns_path),
                                          config.port_mappings, rec.cni_result or None,
                                          pod_masquerade=rec.network_version < 2)  # fmt: skip
            finally:
                self._network_users -= 1
            cgroups.remove_cgroup(rec.cgroup_path)
            remove_namespaces(sdir)
            shutil.rmtree(sdir, ignore_errors=True)
            shutil.rmtree(self._pod_log_dir(config), ignore_errors=True)
            self._sandbox_cache.remove(sandbox_id)
        self._locks.pop(sandbox_id, None)

    def list_sandboxes(self) -> list[Sandbox]:
        """Return every sandbox this runtime's state holds, oldest first."""
        return [_sandbox(r) for r in self._sandbox_cache.all()]

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Open a stream to 127.0.0.1:port inside the sandbox (kubectl port-forward's path)."""
        rec = self._sandbox_record(sandbox_id)
        sock = await asyncio.to_thread(connect_in_netns, Path(rec.netns_path), port)
        return await asyncio.open_connection(sock=sock)

    def get_sandbox(self, sandbox_id: str) -> Sandbox:
        """Return one sandbox."""
        return _sandbox(self._sandbox_record(sandbox_id))

    async def destroy_network(self) -> None:
        """Remove the bridge, IPAM state, unused port rules and cgroup parents (no sandboxes)."""
        async with self._network_lock:
            if self.list_sandboxes() or self._network_users:
                raise RequestError("destroy_network: sandboxes still exist; remove them first")
            await self.network.destroy()
            cgroups.remove_if_empty(self.cgroup_root)
            cgroups.remove_if_empty(self.cgroup_root.rsplit("/", 1)[0] or "/")

    # -- containers ---------------------------------------------------------------------

    def _container_records(self) -> list[ContainerRecord]:
        return self._container_cache.all()

    def _pod_log_dir(self, config: SandboxConfig) -> Path:
        return self.data_dir / "logs" / f"{config.namespace}_{config.name}_{config.pod_uid}"

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        """Make a container in a sandbox (rootfs, spec, conmon + runc create); return its id."""
        sandbox = self._sandbox_record(sandbox_id)
        _check_container_config(config)
        for other in self._container_records():
            if (other.sandbox_id, other.name, other.attempt) == (sandbox_id, config.name,
                                                                 config.attempt):
                raise RequestError(f"container {config.name!r} attempt {config.attempt} "
                                   f"already exists in sandbox {sandbox_id}")  # fmt: skip
        container_id = secrets.token_hex(32)
        cdir = self.data_dir / "containers" / container_id
        log_path = (self._pod_log_dir(sandbox.sandbox_config()) / config.name
                    / f"{config.attempt}.log")  # fmt: skip
        rec = ContainerRecord(
            id=container_id, sandbox_id=sandbox_id, name=config.name, attempt=config.attempt,
            image=config.image, labels=dict(config.labels), annotations=dict(config.annotations),
            container_dir=str(cdir), log_path=str(log_path),
            cgroup_path=f"{sandbox.cgroup_path}/{container_id}", created_at=time.time(),
            tty=config.tty,
        )  # fmt: skip
        paths = self._monitor_paths(rec)
        try:
            paths.persist_dir.mkdir(parents=True)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            rootfs = await asyncio.to_thread(mount_rootfs, cdir, config.lower_dirs)
            spec = self._build_spec(sandbox, config, rec, rootfs)
            (cdir / "config.json").write_text(json.dumps(spec))
            self._save_container(rec)
            argv = monitor.conmon_argv(
                container_id, config.name, paths, self.run_dir / "runc", self.runc_binary,
                tty=config.tty, stdin=config.stdin, stdin_once=config.stdin_once,
                log_size_max=self.log_max_bytes * self.log_max_files,
            )  # fmt: skip
            rec.pid = await monitor.spawn(argv, paths)
            rec.pid_start = _start_time(rec.pid)
            self._save_container(rec)
        except BaseException:
            await self._cleanup_container(rec)
            raise
        return container_id

    def _build_spec(self, sandbox: SandboxRecord, config: ContainerConfig,
                    rec: ContainerRecord, rootfs: Path) -> dict[str, Any]:  # fmt: skip
        run_config = image_run_config(config.image_config)
        user = resolve_user(config.user or str(run_config.get("User") or ""),
                            read_rootfs_file(rootfs, "/etc/passwd"),
                            read_rootfs_file(rootfs, "/etc/group"))  # fmt: skip
        sdir = self.run_dir / "sandboxes" / sandbox.id
        etc_mounts = [Mount(sdir / name, f"/etc/{name}") for name in ETC_FILES]
        sconfig = sandbox.sandbox_config()
        request = SpecRequest(
            command=config.command, args=config.args, env=config.env,
            working_dir=config.working_dir, mounts=[*etc_mounts, *config.mounts],
            resources=config.resources, privileged=config.privileged, tty=config.tty,
            stdin=config.stdin, hostname=_hostname(sconfig),
        )  # fmt: skip
        pids = cgroups.clamp_pids_limit(config.resources.pids_limit, self.default_pids_limit)
        namespaces = SandboxNamespaces(network=sandbox.netns_path, uts=sandbox.uts_path,
                                       ipc=sandbox.ipc_path if sconfig.share_ipc else "")
        return build_spec(
            image_config=config.image_config, request=request, user=user, rootfs=rootfs,
            namespaces=namespaces, cgroups_path=rec.cgroup_path, pids_limit=pids,
            allowed_mount_roots=[sdir, self.data_dir, *self.allowed_mount_roots],
            nofile_limit=min(1_048_576, resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
            available_capabilities=_bounding_capabilities(),
        )  # fmt: skip

    async def start_container(self, container_id: str) -> None:
        """Start a created container's process."""
        async with self._lock(container_id):
            rec = self._container_record(container_id)
            if rec.started_at is not None:
                raise RequestError(f"container {container_id} was already started")
            started = time.time()  # before: the process may exit before runc returns
            await self.runc.start(container_id)
            rec.started_at = started
            self._save_container(rec)

    async def container_status(self, container_id: str) -> ContainerStatus:
        """Return the container's state, pid, exit code and reason."""
        rec = self._container_record(container_id)
        return await self._status(rec)

    async def _status(self, rec: ContainerRecord) -> ContainerStatus:
        paths = self._monitor_paths(rec)
        code = monitor.exit_code(paths, rec.id)
        alive = code is None and rec.pid > 0 and _alive(rec.pid, rec.pid_start)
        if code is None and not alive:
            code = await self._await_exit_code(rec)
        finished = monitor.exit_time(paths, rec.id)
        state: str
        reason = ""
        message = ""
        if code is not None:
            state = "exited"
            oom = monitor.oom_killed(paths) or cgroups.oom_kill_count(rec.cgroup_path) > 0
            reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
        elif alive:
            state = "running" if rec.started_at is not None else "created"
        else:
            state = "unknown"
            message = "the container's process and its monitor are gone; no exit code"
        return ContainerStatus(
            id=rec.id, name=rec.name, sandbox_id=rec.sandbox_id, state=state,  # type: ignore[arg-type]
            pid=rec.pid if state in ("running", "created") else 0, exit_code=code,
            reason=reason, created_at=rec.created_at, started_at=rec.started_at,  # type: ignore[arg-type]
            finished_at=finished, attempt=rec.attempt, image=rec.image,
            log_path=Path(rec.log_path), labels=rec.labels, annotations=rec.annotations,
            message=message,
        )  # fmt: skip

    async def _await_exit_code(self, rec: ContainerRecord) -> int | None:
        # The process is gone and no exit code is recorded: conmon writes it within a moment
        # of the exit, unless conmon itself is gone (killed, or the host rebooted).
        paths = self._monitor_paths(rec)
        conmon = monitor.conmon_pid(paths)
        deadline = time.monotonic() + 1.0
        while conmon and _alive(conmon) and time.monotonic() < deadline:
            code = monitor.exit_code(paths, rec.id)
            if code is not None:
                return code
            await asyncio.sleep(0.02)
        return monitor.exit_code(paths, rec.id)

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        """Return the status of every container (of one sandbox if given), oldest first."""
        recs = [r for r in self._container_records()
                if sandbox_id is None or r.sandbox_id == sandbox_id]  # fmt: skip
        return list(await asyncio.gather(*(self._status(r) for r in recs)))

    async def stop_container(self, container_id: str, grace_seconds: float,
                             signal: str = "SIGTERM") -> ContainerStatus:  # fmt: skip
        """Send `signal`, wait up to grace_seconds, then SIGKILL; return the final status."""
        signum = parse_signal(signal)
        async with self._lock(container_id):
            rec = self._container_record(container_id)
            paths = self._monitor_paths(rec)
            alive = rec.pid > 0 and _alive(rec.pid, rec.pid_start)
            if monitor.exit_code(paths, rec.id) is None and alive:
                if rec.started_at is None:
                    await self._kill(rec, SIGKILL)
                elif grace_seconds > 0:
                    await self._kill(rec, signum)
                    await self._wait_exit(paths, rec.id, grace_seconds)
                if monitor.exit_code(paths, rec.id) is None:
                    await self._kill(rec, SIGKILL)
                    await self._wait_exit(paths, rec.id, EXIT_WAIT_SECONDS)
                    if _alive(rec.pid, rec.pid_start):
                        raise RuncError(f"container {rec.id} did not exit after SIGKILL")
            return await self._status(rec)

    async def _kill(self, rec: ContainerRecord, signum: int) -> None:
        # `runc kill` (without --all) signals the container's init; we know that pid and
        # have checked it is the same process (start time), so we spare a runc process.
        if _alive(rec.pid, rec.pid_start):
            with contextlib.suppress(ProcessLookupError):
                os.kill(rec.pid, signum)
            return
        try:
            await self.runc.kill(rec.id, str(signum))
        except RuncError as e:
            if "not running" not in str(e) and "does not exist" not in str(e):
                raise

    async def _wait_exit(self, paths: MonitorPaths, container_id: str, timeout: float) -> bool:
        rec = self._container_record(container_id)
        if _alive(rec.pid, rec.pid_start):
            await _wait_pid(rec.pid, timeout)
            if _alive(rec.pid, rec.pid_start):
                return False
        # conmon writes the exit file right after it reaps the process (unless it is gone).
        deadline = time.monotonic() + 1.0
        while monitor.exit_code(paths, container_id) is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    async def remove_container(self, container_id: str) -> None:
        """Kill the container if running and remove it: runc state, rootfs, cgroup, record."""
        async with self._lock(container_id):
            try:
                rec = self._container_record(container_id)
            except NotFoundError:
                return
            await self._cleanup_container(rec)
        self._locks.pop(container_id, None)

    async def _cleanup_container(self, rec: ContainerRecord) -> None:
        paths = self._monitor_paths(rec)
        with contextlib.suppress(RuncError):
            await self.runc.delete(rec.id, force=True)
        await _wait_gone(monitor.conmon_pid(paths), EXIT_WAIT_SECONDS)
        await asyncio.to_thread(remove_rootfs, Path(rec.container_dir))
        with contextlib.suppress(cgroups.CgroupError):
            cgroups.remove_cgroup(rec.cgroup_path)
        (self.exit_dir / rec.id).unlink(missing_ok=True)
        self._container_cache.remove(rec.id)

    # -- exec, stats, logs --------------------------------------------------------------

    def _running_record(self, container_id: str) -> ContainerRecord:
        rec = self._container_record(container_id)
        paths = self._monitor_paths(rec)
        if rec.started_at is None or monitor.exit_code(paths, rec.id) is not None:
            raise RequestError(f"container {container_id} is not running")
        return rec

    def _spec(self, rec: ContainerRecord) -> dict[str, Any]:
        return read_json(Path(rec.container_dir) / "config.json")

    async def exec_sync(self, container_id: str, cmd: Sequence[str],
                        timeout: float = 0) -> ExecResult:  # fmt: skip
        """Run a command in the container; return exit code, stdout, stderr (0: no timeout)."""
        rec = self._running_record(container_id)
        return await run_exec_sync(self.runc, rec.id, self._spec(rec),
                                   Path(rec.container_dir), cmd, timeout)  # fmt: skip

    async def exec(self, container_id: str, cmd: Sequence[str], *, stdin: bool = False,
                   tty: bool = False) -> ExecProcess:  # fmt: skip
        """Start a command in the container with streamed stdio (or a TTY)."""
        rec = self._running_record(container_id)
        return await exec_stream(self.runc, rec.id, self._spec(rec), Path(rec.container_dir),
                                 cmd, stdin=stdin, tty=tty)  # fmt: skip

    async def attach(self, container_id: str) -> AttachSession:
        """Attach to a running container's stdio (stdin only if it was created with stdin)."""
        rec = self._running_record(container_id)
        return attach_to(Path(rec.container_dir))

    async def resize_tty(self, container_id: str, rows: int, cols: int) -> None:
        """Set the terminal size of a container created with tty."""
        rec = self._running_record(container_id)
        if not rec.tty:
            raise RequestError(f"container {container_id} has no TTY")
        monitor.resize_tty(self._monitor_paths(rec), rows, cols)

    async def stats(self, container_id: str) -> ContainerStats:
        """Return cpu seconds, memory working set bytes and pids of a running container."""
        rec = self._running_record(container_id)
        usage = cgroups.read_usage(rec.cgroup_path)
        return ContainerStats(usage.cpu_seconds, usage.memory_bytes, usage.pids)

    def log_path(self, container_id: str) -> Path:
        """Return the container's live log file (CRI format)."""
        return Path(self._container_record(container_id).log_path)

    async def read_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None,
        since: datetime | None = None, previous: bool = False,
    ) -> AsyncIterator[logs.LogRecord]:  # fmt: skip
        """Yield the container's log lines (previous: the attempt before this one's)."""
        rec = self._container_record(container_id)
        path = Path(rec.log_path)
        if previous:
            path = _previous_log(path, rec.attempt)
            follow = False
        if not follow:
            for record in logs.read(path, self.log_max_files, tail, since):
                yield record
            return
        paths = self._monitor_paths(rec)

        def running() -> bool:
            return monitor.exit_code(paths, rec.id) is None and _alive(rec.pid, rec.pid_start)

        async for record in logs.follow(path, self.log_max_files, tail=tail, since=since,
                                        running=running):  # fmt: skip
            yield record

    async def rotate_logs(self) -> int:
        """Rotate every live log past log_max_bytes (the kubelet's job); return how many."""
        rotated = 0
        for rec in self._container_records():
            paths = self._monitor_paths(rec)
            if logs.rotate(Path(rec.log_path), self.log_max_bytes, self.log_max_files,
                           lambda p=paths: monitor.reopen_logs(p)):  # type: ignore[misc]
                rotated += 1
        return rotated

    async def garbage_collect(self) -> list[str]:
        """Remove what no record describes (left by a crash mid-create); return what went.

        Run it when no create is in flight (at agent start): runc containers, container dirs
        (with their rootfs mounts), sandbox dirs (with their namespace pins) and exit files
        that belong to no record.
        """
        removed = []
        containers = {r.id for r in self._container_records()}
        sandboxes = {r.id for r in self._sandbox_cache.all()}
        for entry in await self.runc.list_containers():
            if entry.get("id") not in containers:
                await self.runc.delete(entry["id"], force=True)
                removed.append(f"runc container {entry['id']}")
        for cdir in sorted((self.data_dir / "containers").iterdir()):
            if cdir.name not in containers:
                await _wait_gone(monitor.conmon_pid(MonitorPaths(cdir, cdir / "persist",
                                 self.exit_dir, cdir)), EXIT_WAIT_SECONDS)  # fmt: skip
                await asyncio.to_thread(remove_rootfs, cdir)
                removed.append(f"container dir {cdir}")
        for sdir in sorted((self.run_dir / "sandboxes").glob("*")):
            if sdir.name not in sandboxes:
                remove_namespaces(sdir)
                shutil.rmtree(sdir, ignore_errors=True)
                removed.append(f"sandbox dir {sdir}")
        for exit_file in self.exit_dir.iterdir():
            if exit_file.name not in containers:
                exit_file.unlink(missing_ok=True)
                removed.append(f"exit file {exit_file.name}")
        return removed

    async def close(self) -> None:
        """Let go of this Runtime object; containers keep running under conmon."""
        self._locks.clear()


ETC_FILES = ("hosts", "hostname", "resolv.conf")


def parse_signal(name: str) -> int:
    """Return the number of a signal given as "SIGTERM", "TERM" or "15"."""
    text = name.strip().upper()
    if text.isdigit() and 0 < int(text) < signal_module.NSIG:
        return int(text)
    try:
        return int(signal_module.Signals[text if text.startswith("SIG") else f"SIG{text}"])
    except KeyError:
        raise RequestError(f"stop: {name!r} is not a signal") from None


def _safe_id(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{1,64}", value):
        raise NotFoundError(f"{value!r} is not a valid id")
    return value


def _check_sandbox_config(config: SandboxConfig, hostname: str) -> None:
    if not config.name or not config.pod_uid or not config.namespace:
        raise RequestError("sandbox: name, namespace and pod_uid are required")
    for value, what in ((config.name, "name"), (config.namespace, "namespace"),
                        (config.pod_uid, "pod_uid")):  # fmt: skip
        if "/" in value or "\0" in value or value in (".", "..") or len(value) > 253:
            raise RequestError(f"sandbox: {what} {value!r} is not a valid name")
    if not HOSTNAME.match(hostname):
        raise RequestError(f"sandbox: hostname {hostname!r} is not a DNS name of <= 63 chars")
    try:
        validate_port_mappings(config.port_mappings)
    except NetworkError as e:
        raise RequestError(str(e)) from e


def _hostname(config: SandboxConfig) -> str:
    """Return the pod's hostname: as asked, else its name cut to 63 chars (the kubelet's)."""
    return config.hostname or config.name[:63].rstrip("-.")


def _check_container_config(config: ContainerConfig) -> None:
    if not DNS_LABEL.match(config.name):
        raise RequestError(f"container: name {config.name!r} is not a DNS label")
    if config.attempt < 0:
        raise RequestError("container: attempt must not be negative")
    for layer in config.lower_dirs:
        if not Path(layer).is_absolute() or not Path(layer).is_dir():
            raise RequestError(f"container: layer dir {str(layer)!r} is not an absolute dir")
    try:
        image_run_config(config.image_config)
    except SpecError as e:
        raise RequestError(str(e)) from e


def _result_ip(result: dict[str, Any]) -> str:
    for entry in result.get("ips", []):
        address = str(entry.get("address", ""))
        if address:
            return address.split("/")[0]
    raise RuntimeError(f"CNI result has no address: {result}")


def _write_etc_files(sdir: Path, config: SandboxConfig, hostname: str, ip: str) -> None:
    (sdir / "hostname").write_text(hostname + "\n")
    (sdir / "hosts").write_text(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"{ip}\t{hostname}\n"
    )
    if config.dns_servers:
        lines = [f"nameserver {s}" for s in config.dns_servers]
        if config.dns_searches:
            lines.append("search " + " ".join(config.dns_searches))
        if config.dns_options:
            lines.append("options " + " ".join(config.dns_options))
        (sdir / "resolv.conf").write_text("\n".join(lines) + "\n")
    else:
        try:  # Kubernetes' "Default" DNS policy: the node's resolver config
            (sdir / "resolv.conf").write_text(Path("/etc/resolv.conf").read_text())
        except OSError:
            (sdir / "resolv.conf").write_text("")


def _sandbox(rec: SandboxRecord) -> Sandbox:
    config = rec.sandbox_config()
    return Sandbox(
        id=rec.id, pod_uid=config.pod_uid, name=config.name, namespace=config.namespace,
        hostname=_hostname(config),
        netns_path=Path(rec.netns_path), ip=rec.ip, created_at=rec.created_at,
        port_mappings=config.port_mappings, labels=config.labels,
        annotations=config.annotations,
    )  # fmt: skip


def _bounding_capabilities() -> list[str]:
    """Return the capabilities this process may hand on (its bounding set)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                return capabilities_from_mask(int(line.split()[1], 16))
    return []


def _proc_stat(pid: int) -> list[bytes]:
    """Return the fields of /proc/PID/stat after the command name ([0] is field 3, state)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return []


def _start_time(pid: int) -> int:
    fields = _proc_stat(pid)
    return int(fields[19]) if len(fields) > 19 else 0  # field 22, starttime


def _alive(pid: int, start_time: int = 0) -> bool:
    """Return True if `pid` is running (not a zombie) and, if given, started at start_time."""
    fields = _proc_stat(pid)
    if not fields or fields[0] in (b"Z", b"X"):
        return False
    return not start_time or int(fields[19]) == start_time


async def _wait_gone(pid: int | None, timeout: float) -> None:
    if pid and _alive(pid):
        await _wait_pid(pid, timeout)


async def _wait_pid(pid: int, timeout: float) -> None:
    """Return when process `pid` (any, not only our child) has ended, or after timeout."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    ended = loop.create_future()

    def readable() -> None:
        if not ended.done():
            ended.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(ended, timeout)
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _previous_log(path: Path, attempt: int) -> Path:
    for earlier in range(attempt - 1, -1, -1):
        candidate = path.with_name(f"{earlier}.log")
        if candidate.exists():
            return candidate
    raise NotFoundError(f"no previous log before attempt {attempt}")
