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
victim priority), ties to the lowest node index.

Invariants: the snapshot is left exactly as found (every trial removal is restored); negative
priorities count as 0 in the priority sum, so removing more pods never lowers the cost; a pod
with preemptionPolicy Never preempts nothing; PDB budgets come from status.disruptionsAllowed,
or, when a PDB has no status yet, from minAvailable/maxUnavailable over the pods it selects;
violations are counted per PDB (a pod over two exhausted budgets counts twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import CycleState, Diagnosis, Framework
from dockyard.scheduler.labels import selector_matches
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.knapsack import min_cost_cover

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Budget:
    """One PodDisruptionBudget reduced to what preemption needs."""

    name: str
    namespace: str
    selector: Obj | None
    allowed: int

    def covers(self, pi: PodInfo) -> bool:
        """Return whether the budget protects the pod."""
        return pi.namespace == self.namespace and selector_matches(self.selector, pi.labels)


@dataclass(slots=True)
class Candidate:
    """A node and the victims that would make the pod fit there."""

    node: str
    index: int
    victims: list[PodInfo]
    violations: int
    exact: bool

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
        selector = spec.get("selector")
        status = pdb.get("status") or {}
        if "disruptionsAllowed" in status:
            allowed = int(status["disruptionsAllowed"])
        else:
            healthy = sum(
                1
                for k in snap.namespace_pods.get(ns, ())
                if selector_matches(selector, snap.pods[k].labels)
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
        candidates = []
        for i in diagnosis.resolvable_nodes():
            cand = self.candidate(pi, i)
            if cand is not None:
                candidates.append(cand)
        if not candidates:
            msg = reasons.fit_error_message(
                self.snap.n, [reasons.PREEMPTION_NOT_HELPFUL] * self.snap.n
            )
            return PreemptionResult(None, message=msg)
        best = min(candidates, key=Candidate.rank)
        return PreemptionResult(best.node, best.victims, best.violations, "", candidates)

    def candidate(self, pi: PodInfo, i: int) -> Candidate | None:
        """Return the optimal victims on node i, or None if evicting cannot make the pod fit."""
        snap = self.snap
        lower = [snap.pods[k] for k in snap.node_pods[i] if snap.pods[k].priority < pi.priority]
        if not lower:
            return None
        lower.sort(key=lambda v: (-v.priority, v.key))
        with _Removed(snap, lower):
            if not self._fits(pi, i):
                return None
        if self._only_resources_short(pi, i):
            cand = self._by_dp(pi, i, lower)
            if cand is not None:
                return cand
        return self._by_reprieve(pi, i, lower)

    def _fits(self, pi: PodInfo, i: int) -> bool:
        state = CycleState()
        if not self.framework.run_pre_filter(state, pi, self.snap).ok:
            return False
        return bool(self.framework.run_filters(state, pi, self.snap)[i])

    def _only_resources_short(self, pi: PodInfo, i: int) -> bool:
        """Return whether every filter but NodeResourcesFit passes on node i now."""
        state = CycleState()
        self.framework.run_pre_filter(state, pi, self.snap)
        for plugin in self.framework.filters:
            if plugin.name in state.skipped or plugin.name == "NodeResourcesFit":
                continue
            mask = plugin.filter(state, pi, self.snap)
            if mask is not None and not mask[i]:
                return False
        return True

    def _by_dp(self, pi: PodInfo, i: int, lower: list[PodInfo]) -> Candidate | None:
        snap = self.snap
        cols, vals = snap.request_vector(pi)
        need = np.maximum(vals - snap.free[i, cols], 0)
        weights = np.zeros((len(lower), len(cols)), np.int64)
        for k, victim in enumerate(lower):
            vc, vv = snap.request_vector(victim)
            where = {int(c): int(v) for c, v in zip(vc, vv, strict=True)}
            weights[k] = [where.get(int(c), 0) for c in cols]
        groups = [[g for g, b in enumerate(self.budgets) if b.covers(v)] for v in lower]
        result = min_cost_cover(
            weights,
            [(max(v.priority, 0), 1) for v in lower],
            need,
            groups,
            [b.allowed for b in self.budgets],
        )
        if result is None:
            return None
        victims = [lower[k] for k in result.chosen]
        with _Removed(snap, victims):
            if not self._fits(pi, i):
                return None  # another filter (e.g. spread) changed with the removal
        return Candidate(snap.nodes[i].name, i, victims, result.total[0], result.exact)

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
        return Candidate(snap.nodes[i].name, i, victims, violations, False)


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
