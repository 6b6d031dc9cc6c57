"""TaintToleration: NoSchedule/NoExecute taints reject pods without a matching toleration;
PreferNoSchedule taints only lower a node's score.

Invariants: a toleration matches a taint when its effect is empty or equal, its key is empty
(with operator Exists) or equal, and, for operator Equal (the default), its value is equal.
Nodes are grouped by identical taint sets, so a pod's tolerations are checked once per group,
not once per node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dockyard.objects.selectors import freeze
from dockyard.scheduler import reasons
from dockyard.scheduler.framework import (
    CycleState,
    FilterPlugin,
    ScorePlugin,
    Status,
    unresolvable,
)
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray
Obj = dict[str, Any]
HARD_EFFECTS = ("NoSchedule", "NoExecute")


def toleration_matches(toleration: Obj, taint: Obj) -> bool:
    """Return whether one toleration tolerates one taint (kube's ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key != (taint.get("key") or ""):
        return not key and operator == "Exists"
    if operator == "Exists":
        return True
    return (toleration.get("value") or "") == (taint.get("value") or "")


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """Return whether any toleration tolerates the taint."""
    return any(toleration_matches(t, taint) for t in tolerations)


def first_untolerated(tolerations: list[Obj], taints: list[Obj]) -> Obj | None:
    """Return the first NoSchedule/NoExecute taint no toleration matches, or None."""
    for taint in taints:
        if taint.get("effect") in HARD_EFFECTS and not tolerates(tolerations, taint):
            return taint
    return None


def _any_taints(snap: Snapshot, cache: dict[Any, Any]) -> bool:
    found = cache.get("any-taints")
    if found is None:
        found = cache["any-taints"] = any(info.taints for info in snap.nodes)
    return bool(found)


class TaintToleration(FilterPlugin, ScorePlugin):
    """Filter on hard taints; score by the number of untolerated PreferNoSchedule taints.

    Score: 100 * (max - count) / max over the candidates, where count is the node's untolerated
    PreferNoSchedule taints. Example: counts [0, 1, 2] → scores [100, 50, 0].
    """

    name = "TaintToleration"

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes whose hard taints the pod tolerates (None when all pass)."""
        cache = snap.node_cache()
        if not _any_taints(snap, cache):
            return None
        key = (self.name, freeze(pi.tolerations))
        if key not in cache:
            codes, groups = snap.taint_groups()
            ok = np.array([first_untolerated(pi.tolerations, g) is None for g in groups], bool)
            cache[key] = None if ok.all() else ok[codes]
        mask: Array | None = cache[key]
        return mask

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the first untolerated taint, worded as kube-scheduler does."""
        taint = first_untolerated(pi.tolerations, snap.nodes[i].taints) or {}
        return unresolvable(
            self.name, reasons.untolerated_taint(taint.get("key", ""), taint.get("value", ""))
        )

    def explain_many(
        self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array
    ) -> list[Status]:
        """Return the untolerated taint of each rejected node, once per taint group."""
        codes, _ = snap.taint_groups()
        made: dict[int, Status] = {}
        out = []
        for i, code in zip(idx.tolist(), codes[idx].tolist(), strict=True):
            if code not in made:
                made[code] = self.explain(state, pi, snap, i)
            out.append(made[code])
        return out

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return fewer untolerated PreferNoSchedule taints as higher scores."""
        cache = snap.node_cache()
        if not _any_taints(snap, cache):
            return None
        key = (self.name, "prefer", freeze(pi.tolerations))
        if key not in cache:
            codes, groups = snap.taint_groups()
            counts = np.array(
                [
                    sum(
                        t.get("effect") == "PreferNoSchedule" and not tolerates(pi.tolerations, t)
                        for t in g
                    )
                    for g in groups
                ],
                float,
            )
            cache[key] = None if not counts.any() else counts[codes]
        per_node: Array | None = cache[key]
        if per_node is None:
            return None
        counts = per_node[idx]
        top = counts.max()
        return None if top == 0 else 100.0 * (top - counts) / top
