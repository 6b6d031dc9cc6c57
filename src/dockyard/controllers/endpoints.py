"""Endpoints controller: each Service with a selector gets an Endpoints of its pods' addresses.

For a Service key the reconcile selects the namespace's pods matching ``spec.selector`` that
have an IP and are neither terminal nor being deleted, resolves each service port's
``targetPort`` per pod (a named port is looked up in that pod's containers; a pod without it is
left out of that port's subset), and groups addresses by their resolved port set as Kubernetes
does: ready pods under ``addresses``, the others under ``notReadyAddresses`` (or all under
``addresses`` when ``publishNotReadyAddresses``). Each address names its pod (``targetRef``),
its ``nodeName`` and ``hostname``, which the proxy uses for traffic policy Local.

Invariants:
- Services without a selector are never touched: their Endpoints belong to the user.
- The Endpoints written is a pure function of the caches (sorted), so a second reconcile of an
  unchanged world writes nothing; Endpoints of a deleted Service are deleted (they also carry
  the Service's name, as Kubernetes has no ownerReference there).
- Endpoints carry the label ``service.kubernetes.io/headless`` for headless services and the
  annotation ``endpoints.kubernetes.io/last-change-trigger-time``, as kube-controller-manager.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from dockyard.client import ApiClient, EventRecorder, Informer, NotFoundError, split_key
from dockyard.client.informer import index_by_namespace
from dockyard.controllers.base import Controller, Obj, clone, is_deleting, meta
from dockyard.objects.pod import is_pod_ready, is_terminal
from dockyard.objects.selectors import LabelSelector

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"


# --- pure decisions ------------------------------------------------------------------------


def resolve_target_port(pod: Obj, port: Obj) -> int | None:
    """Return the container port a service port reaches on a pod (None: the pod lacks it)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and cport.get("protocol", "TCP") == protocol:
                return int(cport["containerPort"])
    return None


def _address(pod: Obj) -> Obj:
    spec, pmeta = pod.get("spec") or {}, meta(pod)
    address: Obj = {"ip": pod["status"]["podIP"],
                    "targetRef": {"kind": "Pod", "namespace": pmeta.get("namespace", "default"),
                                  "name": pmeta.get("name", ""), "uid": pmeta.get("uid", "")}}
    if spec.get("nodeName"):
        address["nodeName"] = spec["nodeName"]
    if spec.get("hostname") and spec.get("subdomain"):
        address["hostname"] = spec["hostname"]
    return address


def serving_pods(service: Obj, pods: list[Obj]) -> list[Obj]:
    """Return the pods that back a service: selected, with an IP, not terminal or deleting."""
    selector = LabelSelector.from_set((service.get("spec") or {}).get("selector") or {})
    return [p for p in pods
            if selector.matches(meta(p).get("labels") or {})
            and (p.get("status") or {}).get("podIP")
            and not is_terminal(p) and not is_deleting(p)]


def desired_subsets(service: Obj, pods: list[Obj]) -> list[Obj]:
    """Return the Endpoints subsets for a service over its namespace's pods (sorted, stable)."""
    spec = service.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], dict[str, list[Obj]]] = {}
    for pod in serving_pods(service, pods):
        ports = []
        for port in spec.get("ports") or []:
            number = resolve_target_port(pod, port)
            if number is not None:
                ports.append((str(port.get("name") or ""), number, port.get("protocol", "TCP")))
        if not ports and spec.get("ports"):
            continue  # no service port exists on this pod
        group = groups.setdefault(tuple(sorted(ports)), {"ready": [], "notReady": []})
        ready = publish or is_pod_ready(pod)
        group["ready" if ready else "notReady"].append(_address(pod))
    subsets = []
    for ports_key, group in sorted(groups.items()):
        subset: Obj = {}
        if group["ready"]:
            subset["addresses"] = sorted(group["ready"], key=lambda a: a["ip"])
        if group["notReady"]:
            subset["notReadyAddresses"] = sorted(group["notReady"], key=lambda a: a["ip"])
        if ports_key:
            subset["ports"] = [{**({"name": n} if n else {}), "port": p, "protocol": proto}
                               for n, p, proto in ports_key]
        subsets.append(subset)
    return subsets


def desired_endpoints(service: Obj, pods: list[Obj], current: Obj | None) -> Obj:
    """Return the Endpoints object a service should have (keeping current's metadata)."""
    smeta = meta(service)
    endpoints: Obj = clone(current) if current else {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": smeta["name"], "namespace": smeta.get("namespace", "default")}}
    labels = dict(smeta.get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    endpoints["metadata"]["labels"] = labels
    endpoints["subsets"] = desired_subsets(service, pods)
    return endpoints


def _same(a: Obj, b: Obj) -> bool:
    return ((a.get("subsets") or []) == (b.get("subsets") or [])
            and (meta(a).get("labels") or {}) == (meta(b).get("labels") or {}))


# --- the controller ------------------------------------------------------------------------


class EndpointsController(Controller):
    """Keeps each selector Service's Endpoints equal to its pods' addresses."""

    name = "endpoints"

    def __init__(self, api: ApiClient, recorder: EventRecorder, services: Informer,
                 endpoints: Informer, pods: Informer, workers: int = 4) -> None:  # fmt: skip
        super().__init__(api, recorder, workers)
        self.services, self.endpoints, self.pods = services, endpoints, pods
        pods.add_index("namespace", index_by_namespace)
        services.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        endpoints.add_handler(None, lambda old, new: self.enqueue(new), self.enqueue)
        pods.add_handler(self._pod_changed, self._pod_updated, self._pod_changed)

    def _pod_changed(self, pod: Obj) -> None:
        """Queue every service of the pod's namespace whose selector matches it."""
        labels = meta(pod).get("labels") or {}
        namespace = meta(pod).get("namespace", "default")
        for service in self.services.list(namespace):
            selector = (service.get("spec") or {}).get("selector")
            if selector and LabelSelector.from_set(selector).matches(labels):
                self.enqueue(service)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        # A relabelled pod leaves the services of its old labels, so both sides are queued.
        self._pod_changed(old)
        if meta(old).get("labels") != meta(new).get("labels") or old.get("status") != new.get(
                "status") or meta(new).get("deletionTimestamp"):
            self._pod_changed(new)

    async def reconcile(self, key: str) -> None:
        """Write the Endpoints of the Service at key (or delete them with the Service)."""
        namespace, name = split_key(key)
        service = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        resource = self.api.resource("v1", "endpoints", namespace)
        if service is None:
            if current is not None and _managed(current):
                with contextlib.suppress(NotFoundError):  # already gone: nothing to do
                    await resource.delete(name)
            return
        if not (service.get("spec") or {}).get("selector"):
            return  # user-managed Endpoints
        pods = self.pods.by_index("namespace", namespace or "default")
        wanted = desired_endpoints(service, pods, current)
        if current is not None and _same(current, wanted):
            return
        if current is None:
            await resource.create(wanted)
        else:
            await resource.update(wanted)


def _managed(endpoints: Obj) -> bool:
    """Tell whether Endpoints look controller-made (a headless label or pod targetRefs)."""
    if HEADLESS_LABEL in (meta(endpoints).get("labels") or {}):
        return True
    return any(address.get("targetRef", {}).get("kind") == "Pod"
               for subset in endpoints.get("subsets") or []
               for address in (subset.get("addresses") or []) + (
                   subset.get("notReadyAddresses") or []))


def describe(endpoints: Obj) -> dict[str, Any]:
    """Return ready and not-ready IPs of an Endpoints (for logs and tests)."""
    ready = [a["ip"] for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
    waiting = [a["ip"] for s in endpoints.get("subsets") or []
               for a in s.get("notReadyAddresses") or []]
    return {"ready": ready, "notReady": waiting}
