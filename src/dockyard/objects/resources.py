"""The registry of resources the api server serves, as Kubernetes names them.

Invariants: every (group, version, plural) is unique; every (api_version, kind) is unique;
``list_kind`` is always ``kind + "List"``; the core group is the empty string and its
``api_version`` is the bare version ("v1").

autoscaling/v2 is the stored HorizontalPodAutoscaler version; autoscaling/v1 is served too
(`kubectl autoscale` up to 1.32 posts v1), converted by the api server (dockyard.api.conversion).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource: where it lives in the API and how clients may name it."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    list_kind: str = field(default="")

    def __post_init__(self) -> None:
        if not self.list_kind:
            object.__setattr__(self, "list_kind", self.kind + "List")

    @property
    def api_version(self) -> str:
        """Return the apiVersion string objects of this resource carry ("v1", "apps/v1")."""
        return f"{self.group}/{self.version}" if self.group else self.version


_ALL = ("all",)

RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo(
        "", "v1", "Namespace", "namespaces", "namespace", False, ("ns",), subresources=("status",)
    ),
    ResourceInfo(
        "",
        "v1",
        "Pod",
        "pods",
        "pod",
        True,
        ("po",),
        _ALL,
        ("status", "binding", "log", "exec", "attach", "eviction", "portforward"),
    ),
    ResourceInfo("", "v1", "Node", "nodes", "node", False, ("no",), subresources=("status",)),
    ResourceInfo("", "v1", "Service", "services", "service", True, ("svc",), _ALL, ("status",)),
    ResourceInfo("", "v1", "Endpoints", "endpoints", "endpoints", True, ("ep",)),
    ResourceInfo("", "v1", "Event", "events", "event", True, ("ev",)),
    ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",)),
    ResourceInfo("", "v1", "Secret", "secrets", "secret", True),
    ResourceInfo(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        "deployment",
        True,
        ("deploy",),
        _ALL,
        ("status", "scale"),
    ),
    ResourceInfo(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        True,
        ("rs",),
        _ALL,
        ("status", "scale"),
    ),
    ResourceInfo("coordination.k8s.io", "v1", "Lease", "leases", "lease", True),
    ResourceInfo(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        _ALL,
        ("status",),
    ),
    ResourceInfo(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        True,
        ("hpa",),
        _ALL,
        ("status",),
    ),
    ResourceInfo(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        True,
        ("pdb",),
        subresources=("status",),
    ),
    ResourceInfo(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        "priorityclass",
        False,
        ("pc",),
    ),
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    """Return the resource served at /apis/<group>/<version>/<plural>, or None."""
    return _BY_PATH.get((group, version, plural))


def lookup_kind(api_version: str, kind: str) -> ResourceInfo | None:
    """Return the resource for an object's apiVersion and kind, or None."""
    return _BY_KIND.get((api_version, kind))


def lookup_kind_any_version(kind: str) -> ResourceInfo | None:
    """Return the first served resource with this kind, whatever its group and version."""
    return next((r for r in RESOURCES if r.kind == kind), None)


def group_versions() -> list[tuple[str, str]]:
    """Return the served (group, version) pairs in registry order, core ("", "v1") first."""
    seen: list[tuple[str, str]] = []
    for r in RESOURCES:
        if (r.group, r.version) not in seen:
            seen.append((r.group, r.version))
    return seen


def resources_in(group: str, version: str) -> list[ResourceInfo]:
    """Return the resources served under one group and version."""
    return [r for r in RESOURCES if (r.group, r.version) == (group, version)]


def resolve(name: str) -> ResourceInfo | None:
    """Find a resource as kubectl users name it: "po", "pod", "pods", "Pod", "deployments.apps"."""
    text = name.strip()
    plain, _, group = text.partition(".")
    lowered = plain.lower()
    for r in RESOURCES:
        if group and r.group != group:
            continue
        if lowered in (r.plural, r.singular, r.kind.lower()) or lowered in r.short_names:
            return r
    return None
