"""InterPodAffinity: pod affinity and anti-affinity by topology domain (required and preferred).

Invariants (kube-scheduler's rules):
- required affinity: the node's domain (its value of the term's topologyKey) holds at least one
  pod the term selects; if no pod anywhere matches and the pod matches its own terms, every
  node passes (so the first pod of a group can start);
- required anti-affinity: the node's domain holds no pod the term selects;
- existing pods' required anti-affinity is symmetric: a node in the domain of an existing pod
  whose anti-affinity term selects the incoming pod is rejected;
- a term with no labelSelector selects nothing; namespaces default to the pod's own.
Rejections by anti-affinity are resolvable by preemption; missing affinity is not.
The score uses only the incoming pod's preferred terms (kube-scheduler also adds existing pods'
preferred terms towards the incoming pod; that symmetric part is not implemented).
"""

from __future__ import annotations

import numpy as np

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
from dockyard.scheduler.matching import domain_counts
from dockyard.scheduler.podinfo import PodAffinityTerm, PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


def _term_domain_counts(snap: Snapshot, term: PodAffinityTerm) -> tuple[Array, float]:
    """Return per node the matching pods in its domain, and the matching pods cluster-wide."""
    dom, counts, totals = domain_counts(
        snap, term.namespaces, term.label_selector, term.topology_key
    )
    return dom.per_node(totals), float(counts.sum())


class InterPodAffinity(PreFilterPlugin, FilterPlugin, ScorePlugin):
    """Place pods near (affinity) or away from (anti-affinity) pods with given labels.

    Score: for each preferred term, + weight × matching pods in the node's domain (anti-affinity
    subtracts), then min-max normalised to 0..100. Example: affinity weight 10 to app=db; zone a
    holds 2 db pods, zone b 1, zone c none: raw 20, 10, 0 → scores 100, 50, 0.
    """

    name = "InterPodAffinity"
    skipped = skip("InterPodAffinity")

    def pre_filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Status:
        """Return SKIP when neither the pod nor any existing pod has (anti-)affinity."""
        if (
            pi.affinity_terms
            or pi.anti_affinity_terms
            or snap.anti_affinity_pods
            or pi.preferred_affinity_terms
            or pi.preferred_anti_affinity_terms
        ):
            return SUCCESS
        return self.skipped

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes satisfying affinity, anti-affinity and existing anti-affinity."""
        existing = self._existing_anti_affinity(pi, snap)
        anti = np.ones(snap.n, bool)
        for term in pi.anti_affinity_terms:
            in_domain, _ = _term_domain_counts(snap, term)
            anti &= in_domain == 0
        affinity = self._affinity(pi, snap)
        state.data[self.name] = (existing, anti, affinity)
        return existing & anti & affinity

    def _affinity(self, pi: PodInfo, snap: Snapshot) -> Array:
        mask = np.ones(snap.n, bool)
        anywhere = 0.0
        for term in pi.affinity_terms:
            in_domain, total = _term_domain_counts(snap, term)
            mask &= in_domain > 0
            anywhere += total
        if pi.affinity_terms and anywhere == 0 and all(t.selects(pi) for t in pi.affinity_terms):
            return np.ones(snap.n, bool)
        return mask

    def _existing_anti_affinity(self, pi: PodInfo, snap: Snapshot) -> Array:
        mask = np.ones(snap.n, bool)
        for other in snap.anti_affinity_pods.values():
            for term in other.anti_affinity_terms:
                if not term.selects(pi):
                    continue
                codes, _ = snap.label_codes(term.topology_key)
                code = codes[snap.pod_node[other.key]]
                if code >= 0:
                    mask &= codes != code
        return mask

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return which of the three rules rejected node i (existing pods' rules first)."""
        existing, anti, affinity = state.data[self.name]
        if not existing[i]:
            return unschedulable(self.name, reasons.EXISTING_ANTI_AFFINITY_MISMATCH)
        if not anti[i]:
            return unschedulable(self.name, reasons.POD_ANTI_AFFINITY_MISMATCH)
        return unresolvable(self.name, reasons.POD_AFFINITY_MISMATCH)

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return the min-max normalised weighted count of preferred pods per domain."""
        terms = [(w, t) for w, t in pi.preferred_affinity_terms] + [
            (-w, t) for w, t in pi.preferred_anti_affinity_terms
        ]
        if not terms:
            return None
        raw = np.zeros(len(idx))
        for weight, term in terms:
            in_domain, _ = _term_domain_counts(snap, term)
            raw += weight * in_domain[idx]
        low, high = raw.min(), raw.max()
        return None if high == low else 100.0 * (raw - low) / (high - low)
