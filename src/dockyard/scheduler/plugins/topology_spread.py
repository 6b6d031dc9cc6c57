"""PodTopologySpread: keep matching pods evenly spread over topology domains.

Invariants (kube-scheduler's rules): for each constraint, pods in the pod's namespace that the
labelSelector (plus matchLabelKeys taken from the pod's own labels) selects are counted per
domain of topologyKey, over the nodes that pass the pod's nodeSelector and required node
affinity (nodeAffinityPolicy Honor, the default) and carry the key. With whenUnsatisfiable
DoNotSchedule a node is rejected when count(domain) + (1 if the pod matches) - min over
domains > maxSkew, or when it lacks the key; the minimum is 0 when fewer than minDomains
domains exist. ScheduleAnyway constraints only score. Cluster-level default constraints are
not applied: only constraints written in the pod count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dockyard.objects.selectors import compile_selector, freeze
from dockyard.scheduler import reasons
from dockyard.scheduler.framework import (
    SUCCESS,
    CycleState,
    FilterPlugin,
    PreFilterPlugin,
    ScorePlugin,
    Status,
    skip,
    unresolvable,
    unschedulable,
)
from dockyard.scheduler.matching import domain_counts, pod_node_mask
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray
Obj = dict[str, Any]


def constraint_selector(constraint: Obj, pi: PodInfo) -> Obj | None:
    """Return the constraint's labelSelector with matchLabelKeys filled from the pod's labels."""
    selector = constraint.get("labelSelector")
    keys = [k for k in constraint.get("matchLabelKeys") or [] if k in pi.labels]
    if selector is None or not keys:
        return selector
    merged = dict(selector)
    merged["matchLabels"] = {
        **(selector.get("matchLabels") or {}),
        **{k: pi.labels[k] for k in keys},
    }
    return merged


def _domain_skew(pi: PodInfo, snap: Snapshot, constraint: Obj) -> tuple[Array, Array, int]:
    """Return per node: its domain's matching count, whether it has the key, and the minimum."""
    dom, _, totals = domain_counts(
        snap,
        frozenset([pi.namespace]),
        constraint_selector(constraint, pi),
        constraint.get("topologyKey", ""),
        lambda: pod_node_mask(snap, pi),
        (freeze(pi.node_selector), freeze(pi.required_node_terms)),
    )
    minimum = int(totals[: dom.count][dom.present].min()) if dom.present_count else 0
    if dom.present_count < int(constraint.get("minDomains") or 1):
        minimum = 0
    return dom.per_node(totals), dom.has_key, minimum


class PodTopologySpread(PreFilterPlugin, FilterPlugin, ScorePlugin):
    """Filter on DoNotSchedule constraints, score on ScheduleAnyway constraints.

    Score: raw = Σ constraints count(domain) × log(domains + 2), then kube's normalisation
    100 × (max + min - raw) / max. Example: one constraint over 2 zones (weight log 4 ≈ 1.386),
    zone a holds 3 matching pods, zone b 1: raw 4.16 and 1.39 → scores 100 × 1.39/4.16 ≈ 33
    and 100 × 4.16/4.16 = 100, so zone b is preferred.
    """

    name = "PodTopologySpread"
    skipped = skip("PodTopologySpread")

    def pre_filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Status:
        """Return SKIP for pods without topologySpreadConstraints."""
        return SUCCESS if pi.spread_constraints else self.skipped

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes where placing the pod keeps every hard constraint within maxSkew."""
        hard = [
            c
            for c in pi.spread_constraints
            if c.get("whenUnsatisfiable", "DoNotSchedule") == "DoNotSchedule"
        ]
        if not hard:
            return None
        keyed = np.ones(snap.n, bool)
        skewed = np.ones(snap.n, bool)
        for constraint in hard:
            per_node, has_key, minimum = _domain_skew(pi, snap, constraint)
            self_match = (
                1 if compile_selector(constraint_selector(constraint, pi)).matches(pi.labels) else 0
            )
            keyed &= has_key
            skewed &= per_node + self_match - minimum <= int(constraint.get("maxSkew", 1))
        state.data[self.name] = keyed
        return keyed & skewed

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the missing-label or the skew reason."""
        if not state.data[self.name][i]:
            return unresolvable(self.name, reasons.SPREAD_MISSING_LABEL)
        return unschedulable(self.name, reasons.SPREAD_CONSTRAINTS_MISMATCH)

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return higher scores for nodes in less crowded domains."""
        soft = [c for c in pi.spread_constraints if c.get("whenUnsatisfiable") == "ScheduleAnyway"]
        if not soft:
            return None
        raw = np.zeros(len(idx))
        keyed = np.ones(len(idx), bool)
        for constraint in soft:
            per_node, has_key, _ = _domain_skew(pi, snap, constraint)
            codes, vocab = snap.label_codes(constraint.get("topologyKey", ""))
            raw += per_node[idx] * math.log(len(vocab) + 2)
            keyed &= has_key[idx]
        top = raw[keyed].max() if keyed.any() else 0.0
        if top == 0:
            return np.where(keyed, 100.0, 0.0)
        low = raw[keyed].min()
        return np.where(keyed, 100.0 * (top + low - raw) / top, 0.0)
