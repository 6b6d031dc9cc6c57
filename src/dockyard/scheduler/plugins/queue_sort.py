"""PrioritySort: higher spec.priority first, then the pod that waited longest."""

from __future__ import annotations

from typing import Any

from dockyard.scheduler.framework import QueueSortPlugin
from dockyard.scheduler.podinfo import PodInfo


class PrioritySort(QueueSortPlugin):
    """Order the queue by descending priority, then by time enqueued."""

    name = "PrioritySort"

    def sort_key(self, pi: PodInfo, enqueued: float) -> tuple[Any, ...]:
        """Return (-priority, enqueued) so the smallest key is scheduled first."""
        return (-pi.priority, enqueued)
