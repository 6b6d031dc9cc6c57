"""NodeUnschedulable: cordoned nodes (spec.unschedulable) take no new pods.

A pod that tolerates the node.kubernetes.io/unschedulable:NoSchedule taint (as DaemonSet pods
do) is still allowed, exactly as in kube-scheduler.
"""

from __future__ import annotations

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import CycleState, FilterPlugin, Status, unresolvable
from dockyard.scheduler.plugins.taint_toleration import tolerates
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(FilterPlugin):
    """Nodes with spec.unschedulable reject pods that do not tolerate it."""

    name = "NodeUnschedulable"
    same_reason_everywhere = True

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the schedulable nodes, or None when none is cordoned or the pod tolerates it."""
        cordoned = snap.unschedulable_mask()
        if not cordoned.any() or tolerates(pi.tolerations, UNSCHEDULABLE_TAINT):
            return None
        return ~cordoned

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the cordoned-node reason."""
        return unresolvable(self.name, reasons.NODE_UNSCHEDULABLE)
