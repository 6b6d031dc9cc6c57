"""Subresources with their own shapes: scale, binding and eviction.

- ``deployments|replicasets/scale``: the autoscaling/v1 Scale view (dockyard.objects.scale)
  (kubectl scale PATCHes it with a merge patch; the Python client with a strategic one).
- ``pods/binding``: the scheduler's way to set spec.nodeName, once; a second bind is a 409.
- ``pods/eviction``: a delete that honours PodDisruptionBudgets (429 when one would break).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dockyard.api import app_keys, status
from dockyard.api.authz import authorize
from dockyard.api.managed_fields import track_write
from dockyard.api.patching import PatchError, apply_patch
from dockyard.api.requests import Target, dry_run, read_object
from dockyard.api.responses import json_response
from dockyard.api.storage import DeleteOptions, ResourceStorage, now_rfc3339
from dockyard.api.tokens import User
from dockyard.objects.pod import is_pod_ready
from dockyard.objects.resources import lookup
from dockyard.objects.scale import apply_scale, scale_of, validate_scale
from dockyard.objects.selectors import LabelSelector


def _storage(request: web.Request) -> ResourceStorage:
    storage: ResourceStorage = request.app[app_keys.STORAGE]
    return storage


# --- scale -------------------------------------------------------------------------------


async def handle_scale(request: web.Request, target: Target, user: User) -> web.Response:
    """Serve GET, PUT and PATCH on a scale subresource."""
    assert target.name is not None
    storage = _storage(request)
    verbs = {"GET": "get", "PUT": "update", "PATCH": "patch"}
    verb = verbs.get(request.method)
    if verb is None:
        raise status.method_not_allowed(f"{request.method} is not allowed on scale")
    authorize(user, verb, target.info.plural, "scale", target.namespace, target.name)
    if verb == "get":
        current = await storage.get(target.info, target.namespace, target.name)
        return json_response(scale_of(current))
    if verb == "update":
        wanted = await read_object(request)
        expected = (wanted.get("metadata") or {}).get("resourceVersion")
    else:
        patch_body = await request.read()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        expected = None

    def set_replicas(current: dict[str, Any]) -> dict[str, Any]:
        scale = wanted if verb == "update" else _patched_scale(current, patch_body, content_type)
        errors = validate_scale(scale)
        if errors:
            raise status.invalid("Scale", target.name or "", [e.to_cause() for e in errors],
                                 "autoscaling")
        before = copy.deepcopy(current)
        apply_scale(current, scale)
        track_write(current, before, request)
        return current

    updated = await storage.update(
        target.info, target.namespace, target.name, set_replicas,
        dry_run=dry_run(request), expected_resource_version=str(expected) if expected else None,
    )
    return json_response(scale_of(updated))


def _patched_scale(current: dict[str, Any], body: bytes, content_type: str) -> dict[str, Any]:
    try:
        return apply_patch(scale_of(current), body, content_type, "Scale")
    except PatchError as error:
        raise status.StatusError(error.status, error.reason, str(error)) from None


# --- binding -----------------------------------------------------------------------------


async def handle_binding(request: web.Request, target: Target, user: User) -> web.Response:
    """Bind a pod to a node (POST pods/NAME/binding with a v1 Binding)."""
    assert target.name is not None
    if request.method != "POST":
        raise status.method_not_allowed("binding only accepts POST")
    authorize(user, "create", "pods", "binding", target.namespace, target.name)
    binding = await read_object(request)
    node = (binding.get("target") or {}).get("name")
    if not node or not isinstance(node, str):
        raise status.invalid("Binding", target.name, [{
            "reason": "FieldValueRequired", "field": "target.name",
            "message": "Required value: the node to bind to"}])

    def bind(pod: dict[str, Any]) -> dict[str, Any]:
        if pod["metadata"].get("deletionTimestamp"):
            raise status.conflict("pods", target.name or "", "", "the pod is being deleted")
        bound = pod["spec"].get("nodeName")
        if bound:
            raise status.conflict(
                "pods", target.name or "", "", f"pod {target.name} is already assigned to node "
                f'"{bound}"'
            )
        pod["spec"]["nodeName"] = node
        _set_condition(pod, "PodScheduled", "True")
        return pod

    await _storage(request).update(
        target.info, target.namespace, target.name, bind, subresource="binding",
        dry_run=dry_run(request),
    )
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "code": 201}, 201)


def _set_condition(pod: dict[str, Any], kind: str, value: str) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    conditions[:] = [c for c in conditions if c.get("type") != kind]
    conditions.append({"type": kind, "status": value, "lastProbeTime": None,
                       "lastTransitionTime": now_rfc3339()})


# --- eviction ----------------------------------------------------------------------------


async def handle_eviction(request: web.Request, target: Target, user: User) -> web.Response:
    """Evict a pod unless a PodDisruptionBudget forbids it (429 TooManyRequests)."""
    assert target.name is not None and target.namespace is not None
    if request.method != "POST":
        raise status.method_not_allowed("eviction only accepts POST")
    authorize(user, "create", "pods", "eviction", target.namespace, target.name)
    eviction = await read_object(request)
    storage = _storage(request)
    pod = await storage.get(target.info, target.namespace, target.name)
    if not pod["metadata"].get("deletionTimestamp"):
        await _check_budgets(storage, pod)
    options = eviction.get("deleteOptions") or {}
    await storage.delete(target.info, target.namespace, target.name, DeleteOptions(
        grace_period_seconds=options.get("gracePeriodSeconds"),
        dry_run=dry_run(request),
    ))
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "code": 201}, 201)


async def _check_budgets(storage: ResourceStorage, pod: dict[str, Any]) -> None:
    """Refuse an eviction that would leave a budget's healthy pods below what it demands."""
    pdb_info = lookup("policy", "v1", "poddisruptionbudgets")
    assert pdb_info is not None
    namespace = pod["metadata"]["namespace"]
    budgets = (await storage.list(pdb_info, namespace)).items
    labels = pod["metadata"].get("labels") or {}
    for budget in budgets:
        selector = budget.get("spec", {}).get("selector")
        if selector is None or not LabelSelector.from_dict(selector).matches(labels):
            continue
        if await _disruptions_allowed(storage, budget, namespace) < 1:
            raise status.StatusError(
                429, "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget "
                f"{budget['metadata']['name']}.",
                details={"causes": [{"reason": "DisruptionBudget",
                                     "message": f"The disruption budget "
                                                f"{budget['metadata']['name']} needs more "
                                                "healthy pods"}]},
            )


async def _disruptions_allowed(
    storage: ResourceStorage, budget: dict[str, Any], namespace: str
) -> int:
    """Count how many more pods the budget lets go (computed fresh from the pods)."""
    pod_info = lookup("", "v1", "pods")
    assert pod_info is not None
    selector = LabelSelector.from_dict(budget["spec"]["selector"])
    pods = [p for p in (await storage.list(pod_info, namespace)).items
            if selector.matches(p["metadata"].get("labels") or {})
            and not p["metadata"].get("deletionTimestamp")]
    healthy = sum(1 for p in pods if is_pod_ready(p))
    spec = budget["spec"]
    if "minAvailable" in spec:
        return healthy - _resolve(spec["minAvailable"], len(pods))
    if "maxUnavailable" in spec:
        return _resolve(spec["maxUnavailable"], len(pods)) - (len(pods) - healthy)
    return healthy


def _resolve(value: int | str, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * total // 100)  # percentages round up, as Kubernetes does
    return int(value)


HANDLERS: dict[str, Callable[[web.Request, Target, User], Awaitable[web.StreamResponse]]] = {
    "scale": handle_scale,
    "binding": handle_binding,
    "eviction": handle_eviction,
}
