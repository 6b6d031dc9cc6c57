"""The scheduling queue: active pods in queue-sort order, backoff, and unschedulable pods.

Role: what the live loop pops pods from. Pure: callers pass the current time (seconds, from a
monotonic clock), so tests need no sleeping.

Invariants (kube-scheduler's three queues, simplified):
- ``pop`` returns the active pod with the smallest queue-sort key; pods whose backoff expired
  move to active first.
- A pod that failed is held as unschedulable until the cluster changes
  (``move_all_to_active``), then waits out its backoff: 1 s after the first failure, doubling
  per failure, at most 10 s, so it is retried when something changed, never in a hot loop.
  Pods held longer than ``max_unschedulable_seconds`` are retried anyway.
- A pod key is in at most one of the three places; ``add`` of a known key updates it.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.scheduler.podinfo import PodInfo

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_SECONDS = 300.0


@dataclass(slots=True)
class QueuedPod:
    """A pod in the queue with its attempts and timestamps."""

    info: PodInfo
    enqueued: float
    attempts: int = 0
    failed_at: float = 0.0
    key: tuple[Any, ...] = field(default=())


def backoff_seconds(attempts: int) -> float:
    """Return the backoff after the given number of failed attempts (1 s doubling to 10 s)."""
    if attempts <= 0:
        return 0.0
    return min(INITIAL_BACKOFF * 2 ** (attempts - 1), MAX_BACKOFF)


class SchedulingQueue:
    """Active heap, backoff heap and unschedulable pool for pending pods."""

    def __init__(self, sort_key: Callable[[PodInfo, float], tuple[Any, ...]]) -> None:
        self._sort_key = sort_key
        self._seq = itertools.count()
        self._active: list[tuple[tuple[Any, ...], int, str]] = []
        self._backoff: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPod] = {}
        self._pods: dict[str, QueuedPod] = {}
        self._where: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._pods)

    def add(self, pi: PodInfo, now: float) -> None:
        """Add a new pending pod (or refresh a known one) to the active queue."""
        queued = self._pods.get(pi.key)
        if queued is None:
            queued = QueuedPod(pi, now)
            self._pods[pi.key] = queued
        queued.info = pi
        self._activate(queued)

    def _activate(self, queued: QueuedPod) -> None:
        queued.key = self._sort_key(queued.info, queued.enqueued)
        self._unschedulable.pop(queued.info.key, None)
        self._where[queued.info.key] = "active"
        heapq.heappush(self._active, (queued.key, next(self._seq), queued.info.key))

    def delete(self, key: str) -> None:
        """Forget a pod (deleted, or bound by someone else)."""
        self._pods.pop(key, None)
        self._where.pop(key, None)
        self._unschedulable.pop(key, None)

    def pop(self, now: float) -> PodInfo | None:
        """Return the next pod to schedule, or None when nothing is active."""
        self._flush_backoff(now)
        self._flush_unschedulable(now)
        while self._active:
            sort_key, _, key = heapq.heappop(self._active)
            queued = self._pods.get(key)
            if queued is not None and self._where.get(key) == "active" and queued.key == sort_key:
                queued.attempts += 1
                self._where[key] = "in-flight"
                return queued.info
        return None

    def done(self, key: str) -> None:
        """Forget a pod that was placed."""
        self.delete(key)

    def unschedulable(self, key: str, now: float) -> None:
        """Hold a pod that fit nowhere until the cluster changes."""
        queued = self._pods.get(key)
        if queued is None:
            return
        queued.failed_at = now
        self._where[key] = "unschedulable"
        self._unschedulable[key] = queued

    def move_all_to_active(self, now: float) -> None:
        """Retry held pods after a cluster change, each after its backoff."""
        for key, queued in list(self._unschedulable.items()):
            del self._unschedulable[key]
            self._to_backoff(queued, now)

    def _to_backoff(self, queued: QueuedPod, now: float) -> None:
        ready = queued.failed_at + backoff_seconds(queued.attempts)
        if ready <= now:
            self._activate(queued)
            return
        self._where[queued.info.key] = "backoff"
        heapq.heappush(self._backoff, (ready, next(self._seq), queued.info.key))

    def _flush_backoff(self, now: float) -> None:
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            queued = self._pods.get(key)
            if queued is not None and self._where.get(key) == "backoff":
                self._activate(queued)

    def _flush_unschedulable(self, now: float) -> None:
        for key, queued in list(self._unschedulable.items()):
            if now - queued.failed_at >= MAX_UNSCHEDULABLE_SECONDS:
                del self._unschedulable[key]
                self._activate(queued)

    def next_ready(self) -> float | None:
        """Return when the earliest backoff expires, or None when no pod is backing off."""
        return self._backoff[0][0] if self._backoff else None
