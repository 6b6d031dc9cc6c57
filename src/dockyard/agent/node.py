"""The agent's Node: registration, status (capacity, conditions, addresses) and Lease heartbeat.

As the kubelet: the Node is created once (or its status patched if it exists), capacity comes
from the machine (cpu count, MemTotal, pods = max_pods), allocatable subtracts the configured
reservations and the 100Mi memory eviction threshold. The Lease `kube-node-lease/<node>` is
renewed every heartbeat_seconds (10 s); the Node's status is patched when it changes and at
least every node_status_seconds, so the node lifecycle controller sees both heartbeats.

Invariants:
- Conditions keep their lastTransitionTime until their status changes.
- MemoryPressure is True when MemAvailable falls below the eviction threshold; PIDPressure when
  fewer than 5% of pid_max are left (the kubelet's default is similar).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.agent.identity import SERVING_CERT_ANNOTATION
from dockyard.agent.options import EVICTION_MEMORY_BYTES, AgentOptions
from dockyard.client import AlreadyExistsError, ApiClient, ConflictError, NotFoundError
from dockyard.objects.quantity import cpu_millis, format_bytes, format_cpu_millis, to_int

log = logging.getLogger(__name__)
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
AGENT_VERSION = "v1.31.0-dockyard"
Obj = dict[str, Any]


def now_rfc3339() -> str:
    """Return the current time as Kubernetes' RFC 3339 seconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_time() -> str:
    """Return the current time as Kubernetes' MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def detect_node_ip() -> str:
    """Return the address of the interface with the default route (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks a route, sends nothing
        return str(s.getsockname()[0])
    return "127.0.0.1"


def meminfo() -> dict[str, int]:
    """Return /proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return out


def capacity(options: AgentOptions) -> tuple[Obj, Obj]:
    """Return (capacity, allocatable) from the machine and the reservations."""
    cpus = os.cpu_count() or 1
    memory = meminfo().get("MemTotal", 0)
    disk = shutil.disk_usage(options.data_dir).total
    cap = {"cpu": str(cpus), "memory": format_bytes(memory), "pods": str(options.max_pods),
           "ephemeral-storage": format_bytes(disk)}  # fmt: skip
    alloc_cpu = max(0, cpus * 1000 - cpu_millis(options.reserved_cpu))
    alloc_mem = max(0, memory - to_int(options.reserved_memory) - EVICTION_MEMORY_BYTES)
    alloc = {"cpu": format_cpu_millis(alloc_cpu), "memory": format_bytes(alloc_mem),
             "pods": str(options.max_pods), "ephemeral-storage": format_bytes(disk)}  # fmt: skip
    return cap, alloc


def node_info() -> Obj:
    """Return status.nodeInfo from the machine."""
    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return ""

    os_image = "Linux"
    for line in read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_image = line.split("=", 1)[1].strip('"')
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "machineID": read("/etc/machine-id"), "systemUUID": read("/sys/class/dmi/id/product_uuid"),
        "bootID": read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
        "osImage": os_image, "containerRuntimeVersion": f"runc://{_runc_version()}",
        "kubeletVersion": AGENT_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
        "architecture": arch,
    }  # fmt: skip


def _runc_version() -> str:
    try:
        out = subprocess.run(["runc", "--version"], capture_output=True, text=True, timeout=5)
        return out.stdout.split()[2] if out.stdout.split()[:2] == ["runc", "version"] else "?"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def pressure() -> tuple[bool, bool]:
    """Return (memory pressure, pid pressure) as the kubelet's eviction manager sees them."""
    memory = meminfo().get("MemAvailable", EVICTION_MEMORY_BYTES + 1) < EVICTION_MEMORY_BYTES
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[1])
        pids = pid_max - running < pid_max * 0.05
    except (OSError, ValueError, IndexError):
        pids = False
    return memory, pids


def conditions(previous: list[Obj], memory_pressure: bool, pid_pressure: bool) -> list[Obj]:
    """Return the node's conditions, keeping transition times of unchanged ones."""
    now = now_rfc3339()
    wanted = [
        ("MemoryPressure", memory_pressure, "KubeletHasInsufficientMemory",
         "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", False, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure",
         "kubelet has no disk pressure"),
        ("PIDPressure", pid_pressure, "KubeletHasInsufficientPID", "KubeletHasSufficientPID",
         "kubelet has sufficient PID available"),
        ("Ready", True, "", "KubeletReady", "kubelet is posting ready status"),
    ]  # fmt: skip
    old = {c.get("type"): c for c in previous}
    out = []
    for kind, value, bad_reason, good_reason, good_message in wanted:
        status = "True" if value else "False"
        prior = old.get(kind) or {}
        transition = prior.get("lastTransitionTime") if prior.get("status") == status else now
        reason = good_reason if (kind == "Ready") == value else bad_reason
        message = good_message if reason == good_reason else f"kubelet reports {kind}"
        out.append({"type": kind, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": transition or now, "reason": reason,
                    "message": message})  # fmt: skip
    return out


class NodeReporter:
    """Registers the Node, keeps its status current and renews its Lease."""

    def __init__(self, api: ApiClient, options: AgentOptions, node_ip: str, port: int,
                 serving_cert: str) -> None:  # fmt: skip
        self.api = api
        self.options = options
        self.node_ip = node_ip
        self.port = port
        self.serving_cert = serving_cert
        self.nodes = api.resource("v1", "nodes")
        self.leases = api.resource("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status: Obj = {}
        self._last_post = 0.0

    async def register(self) -> Obj:
        """Create the Node (or take over an existing one of that name); return it."""
        name = self.options.node_name
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "labels": self._labels(),
            "annotations": {SERVING_CERT_ANNOTATION: self.serving_cert}}}
        try:
            created: Obj = await self.nodes.create(node, field_manager="dockyard-agent")
        except AlreadyExistsError:
            patch = {"metadata": {"labels": self._labels(),
                                  "annotations": {SERVING_CERT_ANNOTATION: self.serving_cert}}}
            created = await self.nodes.patch(name, patch, field_manager="dockyard-agent")
        await self.post_status(force=True)
        await self.renew_lease()
        return created

    def _labels(self) -> dict[str, str]:
        arch = node_info()["architecture"]
        return {"kubernetes.io/hostname": self.options.node_name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch}  # fmt: skip

    def status(self, previous: list[Obj]) -> Obj:
        """Return the Node's status as this agent sees the machine now."""
        cap, alloc = capacity(self.options)
        memory, pids = pressure()
        return {
            "capacity": cap, "allocatable": alloc,
            "conditions": conditions(previous, memory, pids),
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": self.options.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": node_info(),
        }  # fmt: skip

    async def post_status(self, force: bool = False) -> None:
        """Patch the Node's status if it changed (or force, or it is getting old)."""
        previous = list((self._last_status or {}).get("conditions") or [])
        status = self.status(previous)
        if not force and _without_heartbeats(status) == _without_heartbeats(self._last_status) \
                and time.monotonic() - self._last_post < self.options.node_status_seconds:
            return
        await self.nodes.patch(self.options.node_name, {"status": status}, subresource="status",
                               field_manager="dockyard-agent")  # fmt: skip
        self._last_status = status
        self._last_post = time.monotonic()

    async def renew_lease(self) -> None:
        """Create or renew the node's Lease."""
        name = self.options.node_name
        spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": micro_time()}
        try:
            await self.leases.patch(name, {"spec": spec}, field_manager="dockyard-agent")
        except NotFoundError:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": LEASE_NAMESPACE}, "spec": spec}
            with contextlib.suppress(AlreadyExistsError, ConflictError):
                await self.leases.create(lease, field_manager="dockyard-agent")

    def start(self) -> None:
        """Start the heartbeat loop."""
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="agent-heartbeat"))

    async def stop(self) -> None:
        """Stop the heartbeat loop."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            try:
                await self.renew_lease()
                await self.post_status()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next beat tries again; the node controller waits 40 s
                log.warning("node %s: heartbeat failed: %s", self.options.node_name, e)


def _without_heartbeats(status: Obj) -> Any:
    if not status:
        return None
    conds = [{k: v for k, v in c.items() if k != "lastHeartbeatTime"}
             for c in status.get("conditions") or []]  # fmt: skip
    return {**status, "conditions": conds}
