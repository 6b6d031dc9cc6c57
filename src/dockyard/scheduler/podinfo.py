"""PodInfo: what the scheduler reads from a Pod, parsed once per pod.

Invariants: requests are integers in canonical units (cpu in millicores, everything else in
whole units, "pods" always 1) and follow Kubernetes' effective-request rule: per resource,
the larger of the sum over regular containers (plus restartable sidecar init containers)
and the largest single init container (plus the sidecars started before it), plus
spec.overhead. A container limit without a request counts as the request, as API defaulting
would make it. ``dockyard.objects.pod.pod_requests`` did not exist when this was written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dockyard.objects.quantity import cpu_millis, to_int
from dockyard.scheduler.labels import selector_matches

Obj = dict[str, Any]

# Kubernetes scores pods that request no cpu or memory as if they asked for this much
# (pkg/scheduler/util: DefaultMilliCPURequest, DefaultMemoryRequest), so spreading still works.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


def quantity_units(resource: str, value: str | int | float) -> int:
    """Return a quantity in the scheduler's canonical unit for the resource."""
    return cpu_millis(value) if resource == "cpu" else to_int(value)


def _container_requests(container: Obj) -> dict[str, int]:
    resources = container.get("resources") or {}
    merged = dict(resources.get("limits") or {})
    merged.update(resources.get("requests") or {})
    return {name: quantity_units(name, q) for name, q in merged.items()}


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for name, value in more.items():
        into[name] = into.get(name, 0) + value


def _max_into(into: dict[str, int], more: dict[str, int]) -> None:
    for name, value in more.items():
        into[name] = max(into.get(name, 0), value)


def pod_requests(pod: Obj) -> dict[str, int]:
    """Return the pod's effective requests in canonical units, including "pods": 1."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for container in spec.get("containers") or []:
        _add(total, _container_requests(container))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or []:
        req = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, req)
            _max_into(init_peak, sidecars)
        else:
            running = dict(sidecars)
            _add(running, req)
            _max_into(init_peak, running)
    _add(total, sidecars)
    _max_into(total, init_peak)
    for name, q in (spec.get("overhead") or {}).items():
        _add(total, {name: quantity_units(name, q)})
    total = {name: value for name, value in total.items() if value > 0}
    total["pods"] = 1
    return total


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
    affinity_terms: list[Obj]
    anti_affinity_terms: list[Obj]
    preferred_affinity_terms: list[tuple[int, Obj]]
    preferred_anti_affinity_terms: list[tuple[int, Obj]]
    spread_constraints: list[Obj]
    images: list[str]
    creation: str
    pod: Obj
    vector_cache: tuple[int, Any, Any] | None = field(default=None, repr=False)


def _preferred(items: list[Obj] | None, term_key: str) -> list[tuple[int, Obj]]:
    return [(int(i.get("weight", 0)), i.get(term_key) or {}) for i in items or []]


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
    """Parse a Pod dict into a PodInfo (raises ValueError naming a bad quantity)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    affinity = spec.get("affinity") or {}
    node_aff = affinity.get("nodeAffinity") or {}
    pod_aff = affinity.get("podAffinity") or {}
    anti = affinity.get("podAntiAffinity") or {}
    required = node_aff.get("requiredDuringSchedulingIgnoredDuringExecution")
    requests = pod_requests(pod)
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
        preferred_node_terms=_preferred(
            node_aff.get("preferredDuringSchedulingIgnoredDuringExecution"), "preference"
        ),
        tolerations=list(spec.get("tolerations") or []),
        host_ports=_host_ports(spec),
        affinity_terms=list(pod_aff.get("requiredDuringSchedulingIgnoredDuringExecution") or []),
        anti_affinity_terms=list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or []),
        preferred_affinity_terms=_preferred(
            pod_aff.get("preferredDuringSchedulingIgnoredDuringExecution"), "podAffinityTerm"
        ),
        preferred_anti_affinity_terms=_preferred(
            anti.get("preferredDuringSchedulingIgnoredDuringExecution"), "podAffinityTerm"
        ),
        spread_constraints=list(spec.get("topologySpreadConstraints") or []),
        images=[c.get("image", "") for c in spec.get("containers") or [] if c.get("image")],
        creation=meta.get("creationTimestamp") or "",
        pod=pod,
    )


def term_namespaces(term: Obj, pod_namespace: str) -> frozenset[str] | None:
    """Return the namespaces a pod affinity term looks in (None means all namespaces)."""
    names = term.get("namespaces") or []
    if term.get("namespaceSelector") == {}:
        return None  # an empty namespaceSelector selects every namespace
    return frozenset(names) if names else frozenset([pod_namespace])


def term_matches_pod(term: Obj, owner_namespace: str, other: PodInfo) -> bool:
    """Return whether a pod affinity term (of a pod in owner_namespace) selects another pod."""
    namespaces = term_namespaces(term, owner_namespace)
    if namespaces is not None and other.namespace not in namespaces:
        return False
    return selector_matches(term.get("labelSelector"), other.labels)
