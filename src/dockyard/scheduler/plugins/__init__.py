"""Scheduler plugins, each small and named for its one rule, in one flat registry.

Invariant: ``REGISTRY`` maps every plugin's ``name`` to its class; profiles refer to plugins
by these names only, so adding a plugin is one import and one line here.
"""

from __future__ import annotations

from dockyard.scheduler.framework import Plugin
from dockyard.scheduler.plugins.default_binder import DefaultBinder
from dockyard.scheduler.plugins.image_locality import ImageLocality
from dockyard.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from dockyard.scheduler.plugins.node_affinity import NodeAffinity
from dockyard.scheduler.plugins.node_name import NodeName
from dockyard.scheduler.plugins.node_ports import NodePorts
from dockyard.scheduler.plugins.node_resources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeResourcesLeastAllocated,
    NodeResourcesMostAllocated,
)
from dockyard.scheduler.plugins.node_selector import NodeSelector
from dockyard.scheduler.plugins.node_unschedulable import NodeUnschedulable
from dockyard.scheduler.plugins.prefer_occupied import PreferOccupiedNodes
from dockyard.scheduler.plugins.queue_sort import PrioritySort
from dockyard.scheduler.plugins.taint_toleration import TaintToleration
from dockyard.scheduler.plugins.topology_spread import PodTopologySpread

REGISTRY: dict[str, type[Plugin]] = {
    cls.name: cls
    for cls in (
        PrioritySort,
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeSelector,
        NodeAffinity,
        NodePorts,
        NodeResourcesFit,
        PodTopologySpread,
        InterPodAffinity,
        NodeResourcesLeastAllocated,
        NodeResourcesMostAllocated,
        NodeResourcesBalancedAllocation,
        ImageLocality,
        PreferOccupiedNodes,
        DefaultBinder,
    )
}
