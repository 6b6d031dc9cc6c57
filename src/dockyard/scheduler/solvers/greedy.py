"""Greedy online placement: kube-scheduler's per-pod cycle, vectorised over all nodes.

Role: for one pod, run its profile's pre-filters, every filter as a boolean mask over all
nodes, every score as an array over the nodes that passed, and pick the best. The live loop
calls ``schedule_one`` then assumes and binds; the simulator calls ``place``.

Invariants: the snapshot is read, never written, by ``schedule_one``; ``place`` writes exactly
one assumption per placed pod. Ties go to the lowest node index, so runs are reproducible
(kube-scheduler breaks ties at random). Filters always run over every node; scores run over
every feasible node, or, for a profile with percentage_of_nodes_to_score unset (the default
profile, as kube-scheduler), over an adaptive share of them taken round-robin from where the
last cycle stopped, so consecutive pods see different nodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dockyard.scheduler.framework import (
    Code,
    CycleState,
    Diagnosis,
    Framework,
    Status,
)
from dockyard.scheduler.podinfo import PodInfo, pod_info
from dockyard.scheduler.profiles import frameworks
from dockyard.scheduler.snapshot import Snapshot

Obj = dict[str, Any]


@dataclass(slots=True)
class ScheduleResult:
    """The outcome of one pod's cycle: the chosen node or the reasons there is none."""

    pod: PodInfo
    node: str | None
    status: Status
    feasible: int = 0
    diagnosis: Diagnosis | None = None

    @property
    def message(self) -> str:
        """Return the status message (the FitError text when unschedulable)."""
        return self.status.message()


class GreedyScheduler:
    """Place pods one at a time with a profile chosen by each pod's schedulerName."""

    def __init__(self, snapshot: Snapshot, profiles: dict[str, Framework] | None = None) -> None:
        self.snapshot = snapshot
        self.frameworks = profiles if profiles is not None else frameworks()
        self._next_start = 0

    def framework_for(self, pi: PodInfo) -> Framework | None:
        """Return the framework of the pod's schedulerName, or None if it is not ours."""
        return self.frameworks.get(pi.scheduler_name)

    def schedule_one(
        self, pod: Obj | PodInfo, framework: Framework | None = None
    ) -> ScheduleResult:
        """Return the best node for the pod, or why it fits nowhere (the snapshot is unchanged)."""
        pi = pod if isinstance(pod, PodInfo) else pod_info(pod)
        fw = framework or self.framework_for(pi)
        if fw is None:
            reason = f"no scheduler profile named {pi.scheduler_name!r}"
            return ScheduleResult(pi, None, Status(Code.ERROR, (reason,)))
        snap = self.snapshot
        state = CycleState()
        status = fw.run_pre_filter(state, pi, snap)
        if not status.ok:
            diagnosis = Diagnosis(snap.n, {}, status)
            return ScheduleResult(pi, None, _fit_error(diagnosis), 0, diagnosis)
        idx = np.flatnonzero(fw.run_filters(state, pi, snap))
        if len(idx) == 0:
            diagnosis = fw.diagnose(state, pi, snap)
            return ScheduleResult(pi, None, _fit_error(diagnosis), 0, diagnosis)
        feasible = len(idx)
        idx = self._sample(fw, idx)
        if len(idx) == 1:
            best = int(idx[0])
        else:
            best = int(idx[int(np.argmax(fw.run_scores(state, pi, snap, idx)))])
        return ScheduleResult(pi, snap.nodes[best].name, Status(), feasible)

    def _sample(self, fw: Framework, idx: np.ndarray) -> np.ndarray:
        """Return the feasible nodes to score: all, or kube's share taken round-robin."""
        want = fw.nodes_to_score(self.snapshot.n)
        if len(idx) <= want:
            return idx
        start = int(np.searchsorted(idx, self._next_start % max(self.snapshot.n, 1)))
        chosen = np.concatenate(
            [idx[start : start + want], idx[: max(0, want - (len(idx) - start))]]
        )
        self._next_start = int(chosen[-1]) + 1
        return chosen

    def place(self, pod: Obj | PodInfo) -> ScheduleResult:
        """Schedule the pod and, if it fits, account it on its node as bound."""
        result = self.schedule_one(pod)
        if result.node is not None:
            self.snapshot.assume(result.pod, result.node)
            self.snapshot.confirm(result.pod.key)
        return result

    def place_all(self, pods: Iterable[Obj | PodInfo]) -> list[ScheduleResult]:
        """Place pods in queue order (priority first, then arrival) and return every result."""
        infos = [p if isinstance(p, PodInfo) else pod_info(p) for p in pods]
        order = sorted(range(len(infos)), key=lambda k: (-infos[k].priority, k))
        results: list[ScheduleResult | None] = [None] * len(infos)
        for k in order:
            results[k] = self.place(infos[k])
        return [r for r in results if r is not None]


def _fit_error(diagnosis: Diagnosis) -> Status:
    return Status(Code.UNSCHEDULABLE, (diagnosis.message(),), "")
