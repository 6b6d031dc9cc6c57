"""Resource plugins: NodeResourcesFit (filter) and the three allocation scores.

Invariants: fit compares the pod's effective requests with allocatable minus requested for
every resource the pod asks for (cpu, memory, ephemeral-storage, extended resources) plus one
pod slot against allocatable "pods"; a request larger than the node's whole allocatable is
unresolvable (no preemption can help), a request larger than what is free is not. Scores use
cpu and memory with weight 1 each and count empty requests as 100m cpu / 200Mi memory, like
kube-scheduler, so pods without requests still spread.
"""

from __future__ import annotations

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import (
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
    unresolvable,
    unschedulable,
)
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class NodeResourcesFit(FilterPlugin):
    """A node fits a pod when every requested resource and one pod slot are free."""

    name = "NodeResourcesFit"

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes with enough free resources for the pod's requests."""
        cols, vals = snap.request_vector(pi)
        free = snap.free
        mask = free[:, cols[0]] >= vals[0]
        for c, v in zip(cols[1:], vals[1:], strict=True):
            mask &= free[:, c] >= v
        return mask

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return "Insufficient <resource>" (or "Too many pods") for each short resource."""
        cols, vals = snap.request_vector(pi)
        free = snap.free[i, cols]
        short = [int(c) for c, f, v in zip(cols, free, vals, strict=True) if f < v]
        why = [
            reasons.TOO_MANY_PODS
            if snap.resources[c] == "pods"
            else reasons.insufficient(snap.resources[c])
            for c in short
        ]
        alloc = snap.allocatable
        beyond = any(alloc[i, c] < v for c, v in zip(cols, vals, strict=True) if c in short)
        return unresolvable(self.name, *why) if beyond else unschedulable(self.name, *why)

    def explain_many(
        self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array
    ) -> list[Status]:
        """Return each rejected node's shortfalls, one Status per distinct pattern."""
        return _explain_rows(self, pi, snap, idx)


def _explain_rows(
    plugin: NodeResourcesFit, pi: PodInfo, snap: Snapshot, idx: Array
) -> list[Status]:
    cols, vals = snap.request_vector(pi)
    short = snap.free[idx][:, cols] < vals
    beyond = (snap.allocatable[idx][:, cols] < vals) & short
    made: dict[tuple[bytes, bool], Status] = {}
    out = []
    for row, far in zip(short, beyond.any(axis=1).tolist(), strict=True):
        key = (row.tobytes(), far)
        status = made.get(key)
        if status is None:
            why = [
                reasons.TOO_MANY_PODS
                if snap.resources[c] == "pods"
                else reasons.insufficient(snap.resources[c])
                for c, bad in zip(cols.tolist(), row.tolist(), strict=True)
                if bad
            ]
            make = unresolvable if far else unschedulable
            status = made[key] = make(plugin.name, *why)
        out.append(status)
    return out


def _fractions(state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> tuple[Array, Array]:
    """Return requested/allocatable of cpu and of memory after placing the pod, per candidate.

    Computed once per cycle and shared by the three scores; at most 1, and 1 where a node has
    nothing allocatable (a full node is the honest reading).
    """
    found: tuple[Array, Array] | None = state.data.get("fractions")
    if found is None:
        inv_cpu, inv_mem = snap.inverse_allocatable()
        nz_cpu, nz_mem = snap.nonzero_cpu, snap.nonzero_memory
        if len(idx) != snap.n:
            inv_cpu, inv_mem, nz_cpu, nz_mem = inv_cpu[idx], inv_mem[idx], nz_cpu[idx], nz_mem[idx]
        cpu = np.minimum((nz_cpu + pi.nonzero_cpu) * inv_cpu, 1.0)
        mem = np.minimum((nz_mem + pi.nonzero_memory) * inv_mem, 1.0)
        found = state.data["fractions"] = (cpu, mem)
    return found


class NodeResourcesLeastAllocated(ScorePlugin):
    """Prefer nodes with the most room left (spreads load).

    score = mean over cpu, memory of (allocatable - requested) * 100 / allocatable.
    Example: node 4000m cpu / 8Gi, already 1000m / 2Gi, pod 1000m / 2Gi: cpu (4000-2000)*100/4000
    = 50, memory (8-4)*100/8 = 50, score (50+50)/2 = 50; an empty node scores 75.
    """

    name = "NodeResourcesLeastAllocated"

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return 100 × the mean free fraction of cpu and memory after placing the pod."""
        cpu, mem = _fractions(state, pi, snap, idx)
        return 100.0 - 50.0 * (cpu + mem)


class NodeResourcesMostAllocated(ScorePlugin):
    """Prefer the fullest nodes (packs load, frees whole nodes).

    score = mean over cpu, memory of requested * 100 / allocatable.
    Example: node 4000m / 8Gi, already 1000m / 2Gi, pod 1000m / 2Gi: cpu 2000*100/4000 = 50,
    memory 4*100/8 = 50, score 50; an empty node scores 25, so the busier node wins.
    """

    name = "NodeResourcesMostAllocated"

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return 100 × the mean used fraction of cpu and memory after placing the pod."""
        cpu, mem = _fractions(state, pi, snap, idx)
        return 50.0 * (cpu + mem)


class NodeResourcesBalancedAllocation(ScorePlugin):
    """Prefer nodes whose cpu and memory use stay even, so neither strands the other.

    score = (1 - std(cpu fraction, memory fraction)) * 100 (population std, as kube-scheduler).
    Example: after placing, cpu 2000/4000 = 0.5 and memory 2Gi/8Gi = 0.25: std = |0.5-0.25|/2
    = 0.125, score 87.5; a node left at 0.5 / 0.5 scores 100.
    """

    name = "NodeResourcesBalancedAllocation"

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return 100 × (1 - the spread between cpu and memory fractions)."""
        cpu, mem = _fractions(state, pi, snap, idx)
        return 100.0 - 50.0 * np.abs(cpu - mem)
