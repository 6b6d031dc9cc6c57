"""NodeSelector: a pod's spec.nodeSelector labels must all be on the node."""

from __future__ import annotations

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import CycleState, FilterPlugin, Status, unresolvable
from dockyard.scheduler.matching import node_selector_mask
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class NodeSelector(FilterPlugin):
    """Nodes lacking any spec.nodeSelector label (or with another value) are rejected."""

    name = "NodeSelector"
    same_reason_everywhere = True

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes carrying every selector label, or None without a selector."""
        if not pi.node_selector:
            return None
        return node_selector_mask(snap, pi.node_selector)

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return kube-scheduler's affinity/selector mismatch reason."""
        return unresolvable(self.name, reasons.NODE_SELECTOR_MISMATCH)
