"""Preemption: make room for a pod that fits nowhere by evicting lower-priority pods.

Role: kube-scheduler's PostFilter (DefaultPreemption), with victims chosen optimally rather
than by its greedy reprieve. For each node whose rejection preemption could resolve:
- if, with every lower-priority pod removed, the pod still does not pass the filters, the node
  is no candidate;
- if only resources are short, the victims are the exact minimum-cost cover of the shortfall
  among the node's lower-priority pods (``knapsack.min_cost_cover``), cost = (PodDisruption-
  Budget violations, sum of priorities, number of victims) in that order;
- otherwise (host ports, anti-affinity) kube-scheduler's reprieve is used: remove all
  lower-priority pods, then give back the highest-priority ones (PDB-violating ones first)
  while the pod still fits.
The nominated node is the candidate with the least (violations, priority sum, victims, highest
victim priority), ties to the lowest node index. As in kube-scheduler, the search stops once
max(100, 10% of the nodes) candidates are found, starting from a per-pod offset. Identical
victims (same requests, priority and budgets) enter the DP in binary bundles, and the DP's grid
is sized to the number of items, so a node with a hundred pods stays fast; if the grid had to
be coarsened the result is still a valid victim set and ``Candidate.exact`` says so.

Invariants: the snapshot is left exactly as found (every trial removal is restored); negative
priorities count as 0 in the priority sum, so removing more pods never lowers the cost; a pod
with preemptionPolicy Never preempts nothing; PDB budgets come from status.disruptionsAllowed,
or, when a PDB has no status yet, from minAvailable/maxUnavailable over the pods it selects;
violations are counted per PDB (a pod over two exhausted budgets counts twice).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dockyard.objects.selectors import LabelSelector, compile_selector
from dockyard.scheduler import reasons
from dockyard.scheduler.framework import CycleState, Diagnosis, Framework
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.knapsack import bundles, min_cost_cover, steps_for

Obj = dict[str, Any]
MIN_CANDIDATES = 100  # kube-scheduler's minCandidateNodesAbsolute
CANDIDATE_PERCENT = 10  # kube-scheduler's minCandidateNodesPercentage


@dataclass(frozen=True, slots=True)
class Budget:
    """One PodDisruptionBudget reduced to what preemption needs."""

    name: str
    namespace: str
    selector: LabelSelector
    allowed: int

    def covers(self, pi: PodInfo) -> bool:
        """Return whether the budget protects the pod."""
        return pi.namespace == self.namespace and self.selector.matches(pi.labels)


@dataclass(slots=True)
class Candidate:
    """A node and the victims that would make the pod fit there."""

    node: str
    index: int
    victims: list[PodInfo]
    violations: int
    exact: bool
    verified: bool = True  # False: only resources were checked; verify before nominating

    def rank(self) -> tuple[int, int, int, int, int]:
        """Return the ordering key: fewer violations, lower priorities, fewer victims."""
        prios = [max(v.priority, 0) for v in self.victims]
        return (self.violations, sum(prios), len(prios), max(prios, default=0), self.index)


@dataclass(slots=True)
class PreemptionResult:
    """The nominated node and its victims, or the reason there is none."""

    node: str | None
    victims: list[PodInfo] = field(default_factory=list)
    violations: int = 0
    message: str = ""
    candidates: list[Candidate] = field(default_factory=list)


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def budgets(pdbs: list[Obj], snap: Snapshot) -> list[Budget]:
    """Return the disruptions each policy/v1 PodDisruptionBudget still allows."""
    out = []
    for pdb in pdbs:
        meta, spec = pdb.get("metadata") or {}, pdb.get("spec") or {}
        ns = meta.get("namespace") or "default"
        selector = compile_selector(spec.get("selector"))
        status = pdb.get("status") or {}
        if "disruptionsAllowed" in status:
            allowed = int(status["disruptionsAllowed"])
        else:
            healthy = sum(
                1 for k in snap.namespace_pods.get(ns, ()) if selector.matches(snap.pods[k].labels)
            )
            if "minAvailable" in spec:
                allowed = healthy - _scaled(spec["minAvailable"], healthy)
            else:
                allowed = _scaled(spec.get("maxUnavailable", 0), healthy)
        out.append(Budget(meta.get("name", ""), ns, selector, max(allowed, 0)))
    return out


def victim_cost(victims: list[PodInfo], pdbs: list[Budget]) -> tuple[int, int, int]:
    """Return (PDB violations, sum of priorities, count) for a victim set."""
    violations = 0
    for budget in pdbs:
        violations += max(0, sum(budget.covers(v) for v in victims) - budget.allowed)
    return (violations, sum(max(v.priority, 0) for v in victims), len(victims))


class Preemptor:
    """Find a node and victims for a pod, leaving the snapshot unchanged."""

    def __init__(self, snap: Snapshot, framework: Framework, pdbs: list[Obj] | None = None) -> None:
        self.snap = snap
        self.framework = framework
        self.budgets = budgets(pdbs or [], snap)

    def preempt(self, pi: PodInfo, diagnosis: Diagnosis) -> PreemptionResult:
        """Return the best candidate node and its victims, or why preemption cannot help."""
        if (pi.pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return PreemptionResult(None, message="pod has preemptionPolicy Never")
        nodes = diagnosis.resolvable_nodes()
        # like kube-scheduler: stop after max(100, 10% of nodes) candidates, starting at an
        # offset that differs per pod so that pods do not all crowd the same nodes
        limit = max(MIN_CANDIDATES, self.snap.n * CANDIDATE_PERCENT // 100)
        offset = zlib.crc32(pi.key.encode()) % len(nodes) if nodes else 0
        others_ok = self._other_filters(pi)
        candidates = []
        for i in nodes[offset:] + nodes[:offset]:
            cand = self.candidate(pi, i, bool(others_ok[i]))
            if cand is not None:
                candidates.append(cand)
                if len(candidates) >= limit:
                    break
        for best in sorted(candidates, key=Candidate.rank):
            if best.verified or self._fits_without(pi, best.index, best.victims):
                return PreemptionResult(best.node, best.victims, best.violations, "", candidates)
        msg = reasons.fit_error_message(self.snap.n, [reasons.PREEMPTION_NOT_HELPFUL] * self.snap.n)
        return PreemptionResult(None, message=msg)

    def candidate(self, pi: PodInfo, i: int, others_ok: bool | None = None) -> Candidate | None:
        """Return the optimal victims on node i, or None if evicting cannot make the pod fit.

        ``others_ok`` says whether every filter but NodeResourcesFit already passes on node i
        (computed here when not given); then only resources are short and the DP decides,
        and the caller verifies the chosen candidate with every filter.
        """
        snap = self.snap
        lower = [snap.pods[k] for k in snap.node_pods[i] if snap.pods[k].priority < pi.priority]
        if not lower:
            return None
        lower.sort(key=lambda v: (-v.priority, v.key))
        cols, vals = snap.request_vector(pi)
        rows = _request_rows(snap, lower, cols.tolist())
        freeable = np.array([sum(col) for col in zip(*rows, strict=True)], np.int64)
        if (snap.free[i, cols] + freeable < vals).any():
            return None  # even evicting every lower-priority pod frees too little
        if others_ok is None:
            others_ok = bool(self._other_filters(pi)[i])
        if others_ok:
            cand = self._by_dp(pi, i, lower, rows)
            if cand is not None:
                return cand
        if not self._fits_without(pi, i, lower):
            return None
        return self._by_reprieve(pi, i, lower)

    def _fits(self, pi: PodInfo, i: int) -> bool:
        state = CycleState()
        if not self.framework.run_pre_filter(state, pi, self.snap).ok:
            return False
        return bool(self.framework.run_filters(state, pi, self.snap)[i])

    def _fits_without(self, pi: PodInfo, i: int, victims: list[PodInfo]) -> bool:
        """Return whether the pod passes every filter on node i once the victims are gone."""
        with _Removed(self.snap, victims):
            return self._fits(pi, i)

    def _other_filters(self, pi: PodInfo) -> np.ndarray:
        """Return the nodes where every filter but NodeResourcesFit passes now."""
        state = CycleState()
        mask = np.ones(self.snap.n, bool)
        if not self.framework.run_pre_filter(state, pi, self.snap).ok:
            return ~mask
        for plugin in self.framework.filters:
            if plugin.name in state.skipped or plugin.name == "NodeResourcesFit":
                continue
            passed = plugin.filter(state, pi, self.snap)
            if passed is not None:
                mask &= passed
        return mask

    def _by_dp(
        self, pi: PodInfo, i: int, lower: list[PodInfo], rows: list[tuple[int, ...]]
    ) -> Candidate | None:
        snap = self.snap
        cols, vals = snap.request_vector(pi)
        need = np.maximum(vals - snap.free[i, cols], 0)
        groups_of = [tuple(g for g, b in enumerate(self.budgets) if b.covers(v)) for v in lower]
        kinds: dict[tuple[Any, ...], list[int]] = {}
        for k, victim in enumerate(lower):
            kinds.setdefault((rows[k], max(victim.priority, 0), groups_of[k]), []).append(k)
        weights, costs, groups, units, members = [], [], [], [], []
        for (row, prio, grp), ks in kinds.items():
            taken = 0
            for size in bundles(len(ks)):
                weights.append([x * size for x in row])
                costs.append((prio * size, size))
                groups.append(list(grp))
                units.append(size)
                members.append(ks[taken : taken + size])
                taken += size
        result = min_cost_cover(
            np.array(weights, np.int64).reshape(len(weights), len(cols)),
            costs,
            need,
            groups,
            [b.allowed for b in self.budgets],
            steps_for(len(weights), int((need > 0).sum())),
            units,
        )
        if result is None:
            return None
        victims = [lower[k] for j in result.chosen for k in members[j]]
        return Candidate(snap.nodes[i].name, i, victims, result.total[0], result.exact, False)

    def _by_reprieve(self, pi: PodInfo, i: int, lower: list[PodInfo]) -> Candidate:
        """Return kube-scheduler's victims: remove all, give back what still lets the pod fit."""
        snap = self.snap
        protected = [v for v in lower if any(b.covers(v) for b in self.budgets)]
        order = protected + [v for v in lower if v not in protected]
        victims: list[PodInfo] = []
        with _Removed(snap, lower) as removed:
            for pod in order:
                removed.restore_one(pod)
                if not self._fits(pi, i):
                    removed.remove_one(pod)
                    victims.append(pod)
        violations = victim_cost(victims, self.budgets)[0]
        return Candidate(snap.nodes[i].name, i, victims, violations, False, True)


def _request_rows(snap: Snapshot, pods: list[PodInfo], cols: list[int]) -> list[tuple[int, ...]]:
    """Return each pod's requests in the given columns."""
    rows = []
    for pod in pods:
        vc, vv = snap.request_vector(pod)
        where = dict(zip(vc.tolist(), vv.tolist(), strict=True))
        rows.append(tuple(where.get(c, 0) for c in cols))
    return rows


class _Removed:
    """Take pods out of the snapshot for a trial and put every one back afterwards."""

    def __init__(self, snap: Snapshot, pods: list[PodInfo]) -> None:
        self.snap = snap
        self.pods = pods
        self.out: dict[str, tuple[PodInfo, str, bool]] = {}

    def __enter__(self) -> _Removed:
        for pod in self.pods:
            self.remove_one(pod)
        return self

    def remove_one(self, pod: PodInfo) -> None:
        """Take one pod out, remembering its node and whether it was only assumed."""
        node = self.snap.node_of(pod.key)
        if node is None:
            return
        self.out[pod.key] = (pod, node, pod.key in self.snap.assumed)
        self.snap.remove_pod(pod.key)

    def restore_one(self, pod: PodInfo) -> None:
        """Put one removed pod back exactly as it was."""
        entry = self.out.pop(pod.key, None)
        if entry is None:
            return
        pi, node, was_assumed = entry
        self.snap.assume(pi, node)
        if not was_assumed:
            self.snap.confirm(pi.key)

    def __exit__(self, *exc: object) -> None:
        for pi, _, _ in list(self.out.values()):
            self.restore_one(pi)
