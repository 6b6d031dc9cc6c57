"""Container runtime: runc, overlayfs root filesystems, CNI networking, cgroups, logs.

The public surface is re-exported here; see runtime.py for the Runtime and its layout.
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
