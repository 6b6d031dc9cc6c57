"""PodInfo: what the scheduler reads from a Pod, parsed once per pod.

Invariants: requests are ``dockyard.objects.pod.pod_requests`` (Kubernetes' effective-request
rule, a limit without a request counting as the request) without zero entries, plus "pods": 1;
a malformed quantity raises ValueError naming the resource instead of counting 0. Pod
(anti-)affinity terms are parsed once into ``PodAffinityTerm`` values whose label selector is
compiled by ``dockyard.objects.selectors`` (the one implementation of selector semantics), so
matching a term against thousands of pods per cycle parses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.objects.pod import pod_requests
from dockyard.objects.quantity import cpu_millis, to_int
from dockyard.objects.selectors import LabelSelector, compile_selector

Obj = dict[str, Any]

# Kubernetes scores pods that request no cpu or memory as if they asked for this much
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest), so spreading still works.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def quantity_units(resource: str, value: str | int | float) -> int:
    """Return a quantity in the scheduler's canonical unit for the resource."""
    return cpu_millis(value) if resource == "cpu" else to_int(value)


def scheduling_requests(pod: Obj) -> dict[str, int]:
    """Return the pod's effective requests without zeros, plus "pods": 1 (strict quantities)."""
    requests = {n: v for n, v in pod_requests(pod, strict=True).items() if v > 0}
    requests["pods"] = 1
    return requests


@dataclass(frozen=True, slots=True)
class PodAffinityTerm:
    """A v1 PodAffinityTerm parsed once: selector compiled, namespaces resolved."""

    label_selector: Obj | None  # as written: the snapshot's label index reads matchLabels
    selector: LabelSelector
    namespaces: frozenset[str] | None  # None means every namespace
    topology_key: str

    def selects(self, other: PodInfo) -> bool:
        """Return whether the term selects another pod (its namespace and its labels)."""
        if self.namespaces is not None and other.namespace not in self.namespaces:
            return False
        return self.selector.matches(other.labels)


def affinity_term(term: Obj, pod_namespace: str) -> PodAffinityTerm:
    """Parse a PodAffinityTerm of a pod in pod_namespace (raises ValueError on a bad selector)."""
    names = term.get("namespaces") or []
    namespaces: frozenset[str] | None = frozenset(names) if names else frozenset([pod_namespace])
    if term.get("namespaceSelector") == {}:
        namespaces = None  # an empty namespaceSelector selects every namespace
    selector = term.get("labelSelector")
    return PodAffinityTerm(
        selector, compile_selector(selector), namespaces, term.get("topologyKey") or ""
    )


@dataclass(slots=True)
class PodInfo:
    """The scheduling-relevant parts of a pod, parsed once."""

    key: str
    name: str
    namespace: str
    labels: dict[str, str]
    priority: int
    scheduler_name: str
    node_name: str
    requests: dict[str, int]
    nonzero_cpu: int
    nonzero_memory: int
    node_selector: dict[str, str]
    required_node_terms: list[Obj] | None
    preferred_node_terms: list[tuple[int, Obj]]
    tolerations: list[Obj]
    host_ports: list[tuple[str, str, int]]
    affinity_terms: list[PodAffinityTerm]
    anti_affinity_terms: list[PodAffinityTerm]
    preferred_affinity_terms: list[tuple[int, PodAffinityTerm]]
    preferred_anti_affinity_terms: list[tuple[int, PodAffinityTerm]]
    spread_constraints: list[Obj]
    images: list[str]
    creation: str
    pod: Obj
    vector_cache: tuple[int, Any, Any] | None = field(default=None, repr=False)


def _preferred(items: list[Obj] | None, term_key: str) -> list[tuple[int, Obj]]:
    return [(int(i.get("weight", 0)), i.get(term_key) or {}) for i in items or []]


def _terms(items: list[Obj] | None, namespace: str) -> list[PodAffinityTerm]:
    return [affinity_term(t, namespace) for t in items or []]


def _preferred_terms(items: list[Obj] | None, namespace: str) -> list[tuple[int, PodAffinityTerm]]:
    return [(w, affinity_term(t, namespace)) for w, t in _preferred(items, "podAffinityTerm")]


def _host_ports(spec: Obj) -> list[tuple[str, str, int]]:
    ports = []
    for container in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for port in container.get("ports") or []:
            host_port = int(port.get("hostPort") or 0)
            if host_port > 0:
                proto = port.get("protocol") or "TCP"
                ports.append((proto, port.get("hostIP") or "0.0.0.0", host_port))
    return ports


def pod_info(pod: Obj) -> PodInfo:
    """Parse a Pod dict into a PodInfo (raises ValueError naming a bad quantity or selector)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    affinity = spec.get("affinity") or {}
    node_aff = affinity.get("nodeAffinity") or {}
    pod_aff = affinity.get("podAffinity") or {}
    anti = affinity.get("podAntiAffinity") or {}
    required = node_aff.get(_REQUIRED)
    requests = scheduling_requests(pod)
    namespace = meta.get("namespace") or "default"
    name = meta.get("name") or meta.get("generateName") or ""
    return PodInfo(
        key=f"{namespace}/{name}",
        name=name,
        namespace=namespace,
        labels=dict(meta.get("labels") or {}),
        priority=int(spec.get("priority") or 0),
        scheduler_name=spec.get("schedulerName") or "default-scheduler",
        node_name=spec.get("nodeName") or "",
        requests=requests,
        nonzero_cpu=requests.get("cpu") or DEFAULT_MILLI_CPU,
        nonzero_memory=requests.get("memory") or DEFAULT_MEMORY,
        node_selector=dict(spec.get("nodeSelector") or {}),
        required_node_terms=None if required is None else required.get("nodeSelectorTerms") or [],
        preferred_node_terms=_preferred(node_aff.get(_PREFERRED), "preference"),
        tolerations=list(spec.get("tolerations") or []),
        host_ports=_host_ports(spec),
        affinity_terms=_terms(pod_aff.get(_REQUIRED), namespace),
        anti_affinity_terms=_terms(anti.get(_REQUIRED), namespace),
        preferred_affinity_terms=_preferred_terms(pod_aff.get(_PREFERRED), namespace),
        preferred_anti_affinity_terms=_preferred_terms(anti.get(_PREFERRED), namespace),
        spread_constraints=list(spec.get("topologySpreadConstraints") or []),
        images=[c.get("image", "") for c in spec.get("containers") or [] if c.get("image")],
        creation=meta.get("creationTimestamp") or "",
        pod=pod,
    )
