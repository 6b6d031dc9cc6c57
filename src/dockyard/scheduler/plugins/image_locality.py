"""ImageLocality: prefer nodes that already hold the pod's images (faster start, less pull).

Invariant (kube-scheduler's formula): each image present on a node adds its size scaled by the
share of nodes holding it (so an image everywhere does not sway the choice), the sum is clipped
to [23Mi, 1000Mi × containers] and mapped linearly to 0..100.
"""

from __future__ import annotations

import numpy as np

from dockyard.scheduler.framework import CycleState, ScorePlugin
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray
MIN_THRESHOLD = 23 * 1024 * 1024
MAX_CONTAINER_THRESHOLD = 1000 * 1024 * 1024


class ImageLocality(ScorePlugin):
    """Score nodes by the (spread-scaled) bytes of the pod's images they already have.

    Example: one container, a 500Mi image on 1 of 4 nodes: that node sums 500Mi * 1/4 = 125Mi,
    score = 100 * (125 - 23) / (1000 - 23) ≈ 10.4; the other nodes score 0.
    """

    name = "ImageLocality"

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return 0..100 by the scaled size of the pod's images present on each candidate."""
        total: Array | None = None
        for image in pi.images:
            sizes = snap.image_sizes(image)
            if sizes is None:
                continue
            spread = np.count_nonzero(sizes) / max(snap.n, 1)
            part = sizes[idx] * spread
            total = part if total is None else total + part
        if total is None:
            return None
        top = MAX_CONTAINER_THRESHOLD * max(len(pi.images), 1)
        clipped = np.clip(total, MIN_THRESHOLD, top)
        return 100.0 * (clipped - MIN_THRESHOLD) / (top - MIN_THRESHOLD)
