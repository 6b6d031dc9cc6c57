"""NodeName: a pod that names its node (spec.nodeName) fits only there."""

from __future__ import annotations

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import CycleState, FilterPlugin, Status, unresolvable
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class NodeName(FilterPlugin):
    """Only the node named in spec.nodeName passes, when the pod names one."""

    name = "NodeName"
    same_reason_everywhere = True

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return a mask with only the named node, or None when the pod names none."""
        if not pi.node_name:
            return None
        mask = np.zeros(snap.n, bool)
        i = snap.index.get(pi.node_name)
        if i is not None:
            mask[i] = True
        return mask

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the node-name mismatch."""
        return unresolvable(self.name, reasons.NODE_NAME_MISMATCH)
