"""NodePorts: two pods cannot use the same hostPort and protocol on one node.

Invariant (as kube-scheduler): ports conflict when protocol and port are equal and either
host IP is 0.0.0.0 or the two host IPs are equal.
"""

from __future__ import annotations

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import SUCCESS as OK
from dockyard.scheduler.framework import (
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    Status,
    skip,
    unschedulable,
)
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class NodePorts(PreFilterPlugin, FilterPlugin):
    """Reject nodes where a requested hostPort is already taken."""

    name = "NodePorts"
    same_reason_everywhere = True
    skipped = skip("NodePorts")

    def pre_filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Status:
        """Return SKIP for pods without host ports."""
        return OK if pi.host_ports else self.skipped

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes where every requested host port is free."""
        mask = np.ones(snap.n, bool)
        for proto, ip, port in pi.host_ports:
            for i, used in snap.ports.get((proto, port), {}).items():
                if used and (ip == "0.0.0.0" or "0.0.0.0" in used or ip in used):
                    mask[i] = False
        return mask

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the port-conflict reason."""
        return unschedulable(self.name, reasons.NODE_PORTS_CONFLICT)
