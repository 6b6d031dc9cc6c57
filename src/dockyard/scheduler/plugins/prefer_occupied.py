"""PreferOccupiedNodes: pack onto nodes already running pods; open the largest empty node last.

This is dockyard's own score (kube-scheduler has none like it). MostAllocated alone prefers a
node by how full it would be, so an empty small node (1 cpu of 4 = 25%) beats an empty large
one (1 of 16 = 6%) and every small node gets opened; counting nodes, what matters is not to
open a new node while a running one has room, and when one must be opened, to open the one
that will hold the most.
"""

from __future__ import annotations

import numpy as np

from dockyard.scheduler.framework import CycleState, ScorePlugin
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class PreferOccupiedNodes(ScorePlugin):
    """Score 100 for nodes running pods; empty nodes 50 × their cpu / the largest node's cpu.

    Example: nodes of 4, 8 and 16 cpu, only the 4-cpu node runs pods: scores 100, 25, 50, so
    the running node is filled first and the 16-cpu node is the next one opened.
    """

    name = "PreferOccupiedNodes"

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return 100 for occupied candidates, up to 50 by size for empty ones."""
        cache = snap.node_cache()
        size = cache.get(self.name)
        if size is None:
            cpu = snap.allocatable[:, 0].astype(float)
            size = cache[self.name] = 50.0 * cpu / max(float(cpu.max(initial=0.0)), 1.0)
        occupied = snap.nonzero_cpu[idx] > 0
        return np.where(occupied, 100.0, size[idx])
