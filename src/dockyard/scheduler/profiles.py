"""Scheduling profiles: which plugins run and how much each score weighs.

A pod picks its profile by spec.schedulerName. "default-scheduler" mirrors kube-scheduler's
default weights (fit spread by LeastAllocated 1, BalancedAllocation 1, ImageLocality 1,
InterPodAffinity 2, NodeAffinity 2, PodTopologySpread 2, TaintToleration 3). "pack" fills nodes
already running pods first and opens the largest empty node only when none has room
(PreferOccupiedNodes dominates, MostAllocated breaks ties) so whole nodes stay empty;
"spread" keeps the most room on every node; "balanced" keeps cpu and memory use even on
each node. All profiles share the same filters: what may run where does not change with the
strategy. Like kube-scheduler, "default-scheduler" scores only an adaptive share of the
feasible nodes (10% at 5,000 nodes, never fewer than 100), taken round-robin; the strategy
profiles score every feasible node, since the quality of their choice is their point.
"""

from __future__ import annotations

from dockyard.scheduler.framework import Framework, Profile
from dockyard.scheduler.plugins import REGISTRY

DEFAULT_PROFILE = "default-scheduler"

FILTERS = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeSelector",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
)

_RULE_SCORES = (
    ("InterPodAffinity", 2),
    ("NodeAffinity", 2),
    ("PodTopologySpread", 2),
    ("TaintToleration", 3),
)


def _strategy(name: str, *resource_scores: tuple[str, int]) -> Profile:
    """Return a strategy profile: the shared filters, its resource scores, the rule scores."""
    return Profile(name, filters=FILTERS, scores=(*resource_scores, *_RULE_SCORES))


PROFILES: dict[str, Profile] = {
    DEFAULT_PROFILE: Profile(
        DEFAULT_PROFILE,
        filters=FILTERS,
        percentage_of_nodes_to_score=None,
        scores=(
            ("NodeResourcesLeastAllocated", 1),
            ("NodeResourcesBalancedAllocation", 1),
            ("ImageLocality", 1),
            *_RULE_SCORES,
        ),
    ),
    "pack": _strategy(
        "pack",
        ("PreferOccupiedNodes", 10),
        ("NodeResourcesMostAllocated", 1),
        ("NodeResourcesBalancedAllocation", 1),
    ),
    "spread": _strategy(
        "spread", ("NodeResourcesLeastAllocated", 10), ("NodeResourcesBalancedAllocation", 1)
    ),
    "balanced": _strategy(
        "balanced", ("NodeResourcesBalancedAllocation", 10), ("NodeResourcesLeastAllocated", 1)
    ),
}


def frameworks(profiles: dict[str, Profile] | None = None) -> dict[str, Framework]:
    """Return one Framework per profile, keyed by the schedulerName that selects it."""
    return {name: Framework(p, REGISTRY) for name, p in (profiles or PROFILES).items()}
