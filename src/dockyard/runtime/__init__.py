"""Container runtime: runc, overlayfs root filesystems, CNI networking, cgroups, logs.

The public surface is re-exported here; see runtime.py for the Runtime and its layout.
Usage, as a node agent drives it (Kubernetes CRI's shape: a sandbox per pod):

    rt = Runtime(run_dir=Path("/run/dockyard"), data_dir=Path("/var/lib/dockyard"))
    sb = await rt.create_sandbox(SandboxConfig(pod_uid=uid, name="web",
                                               port_mappings=[PortMapping(8080, 80)]))
    cid = await rt.create_container(sb.id, ContainerConfig(
        name="nginx", lower_dirs=store.unpacked_layers(image), image_config=image.config,
        resources=Resources(cpu_request_millis=250, memory_limit_bytes=64 << 20)))
    await rt.start_container(cid)
    status = await rt.container_status(cid)        # state, pid, exit_code, reason
    async for line in rt.read_logs(cid, tail=10):  # CRI log records
        ...
    await rt.stop_container(cid, grace_seconds=30)
    await rt.remove_sandbox(sb.id)                  # removes its containers too
    await rt.destroy_network()                      # when no sandbox is left
"""

from dockyard.runtime.attach import AttachError, AttachSession
from dockyard.runtime.exec import ExecError, ExecProcess
from dockyard.runtime.logs import LogRecord
from dockyard.runtime.monitor import MonitorError
from dockyard.runtime.network import NetworkError, PortMapping
from dockyard.runtime.records import (
    ContainerConfig,
    ContainerStats,
    ContainerStatus,
    ExecResult,
    Sandbox,
    SandboxConfig,
)
from dockyard.runtime.runc import RuncError
from dockyard.runtime.runtime import NotFoundError, RequestError, Runtime
from dockyard.runtime.spec import Mount, Resources, SpecError

__all__ = [
    "AttachError", "AttachSession", "ContainerConfig", "ContainerStats", "ContainerStatus",
    "ExecError", "ExecProcess",
    "ExecResult", "LogRecord", "MonitorError", "Mount", "NetworkError", "NotFoundError",
    "PortMapping", "RequestError", "Resources", "Runtime", "RuncError", "Sandbox",
    "SandboxConfig", "SpecError",
]  # fmt: skip
