"""What one agent is asked for: its node, its dirs, its network and its reservations.

`AgentOptions` is plain data shared by `dockyard agent`, `dockyard server` (the local agent)
and the tests. Defaults follow the kubelet's where it has one (110 pods, 100Mi memory
eviction threshold, port 10250).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_AGENT_PORT = 10250  # the kubelet's port
EVICTION_MEMORY_BYTES = 100 * 1024 * 1024  # the kubelet's evictionHard memory.available<100Mi


@dataclass
class AgentOptions:
    """Where the agent keeps state, how it networks pods, and what it reserves."""

    node_name: str
    data_dir: Path
    run_dir: Path = Path("/run/dockyard")
    bridge: str = "dockyard0"
    pod_cidr: str = "10.88.0.0/16"
    node_ip: str = ""  # empty: the address of the interface with the default route
    port: int = DEFAULT_AGENT_PORT  # 0 picks a free port, published in the Node's status
    max_pods: int = 110
    reserved_cpu: str = "0"
    reserved_memory: str = "0"
    allowed_host_paths: list[Path] = field(default_factory=list)
    ca_file: Path | None = None  # the cluster CA: trusts the api server, verifies its client
    heartbeat_seconds: float = 10.0
    node_status_seconds: float = 60.0
    relist_seconds: float = 1.0
    cluster_dns: str = ""  # pods' nameserver for dnsPolicy ClusterFirst (empty: node's)
    cluster_domain: str = "cluster.local"
