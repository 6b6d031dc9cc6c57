"""NodeAffinity: required node affinity filters, preferred node affinity scores.

Invariants: required NodeSelectorTerms are ORed (one matching term suffices); the score is the
sum of the weights of the matching preferred terms, normalised so the best candidate gets 100.
"""

from __future__ import annotations

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
from dockyard.scheduler.matching import required_affinity_mask, term_mask
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray


class NodeAffinity(FilterPlugin, ScorePlugin):
    """Filter on requiredDuringScheduling terms; score on preferredDuringScheduling weights.

    Score: sum of matching preferred weights, then 100 * s / max(s) over the candidates.
    Example: terms zone=a (weight 80) and disk=ssd (weight 20); node A matches both (100),
    node B only disk=ssd (20), node C none (0): scores 100, 20, 0.
    """

    name = "NodeAffinity"
    same_reason_everywhere = True

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return the nodes matching any required term, or None without required affinity."""
        if pi.required_node_terms is None:
            return None
        return required_affinity_mask(snap, pi.required_node_terms)

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return kube-scheduler's affinity/selector mismatch reason."""
        return unresolvable(self.name, reasons.NODE_SELECTOR_MISMATCH)

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return the normalised sum of matching preferred-term weights."""
        if not pi.preferred_node_terms:
            return None
        cache = snap.node_cache()
        key = (self.name, "preferred", freeze(pi.preferred_node_terms))
        if key not in cache:
            total = np.zeros(snap.n)
            for weight, term in pi.preferred_node_terms:
                total += weight * term_mask(snap, term)
            cache[key] = total
        values = cache[key][idx]
        top = values.max() if len(values) else 0.0
        return None if top <= 0 else 100.0 * values / top
