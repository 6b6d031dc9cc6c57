"""Dispatch from a kind to its defaults, validation and write strategy.

The api server calls, for every write of a kind's main resource:
- create: ``prepare_for_create`` (initial status, generation 1), ``apply_defaults``,
  ``validate``;
- update: ``apply_defaults``, then ``prepare_for_update`` (stored status kept, allocated values
  carried over, generation bumped when the defaulted spec differs: defaults must come first or
  every update would look like a spec change), then ``validate`` and ``validate_update`` (which
  returns only what the update may not change, so run both);
- status subresource: ``prepare_for_status_update`` (everything but status kept from the
  stored object), then ``validate`` and ``validate_update``.

Node is the exception on create: it keeps the status it registers with. Services get their
allocated clusterIP and nodePorts carried over on updates that leave them out.

Invariants: handlers never raise on malformed objects (bad shapes become FieldErrors);
``apply_defaults`` is idempotent; a kind without specific rules gets metadata validation only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.objects import (
    configmap,
    deployment,
    endpoints,
    event,
    hpa,
    lease,
    namespace,
    node,
    pdb,
    pod,
    priorityclass,
    replicaset,
    secret,
    service,
)
from dockyard.objects.resources import lookup_kind_any_version
from dockyard.objects.validation import FieldError, validate_metadata, validate_metadata_update

Obj = dict[str, Any]


def _no_defaults(obj: Obj) -> None:
    """Leave the object as it is."""


def _no_status(obj: Obj) -> Obj | None:
    """Return no initial status (the status field is dropped on create)."""
    return None


def _no_carry_over(new: Obj, old: Obj) -> None:
    """Carry nothing over from the stored object."""


def _empty_status(obj: Obj) -> Obj | None:
    """Return an empty status (what Kubernetes' zero status serialises to)."""
    return {}


def _replicaset_status(obj: Obj) -> Obj | None:
    """Return a ReplicaSet's zero status (replicas is not omitted when 0)."""
    return {"replicas": 0}


def _service_status(obj: Obj) -> Obj | None:
    """Return a Service's zero status."""
    return {"loadBalancer": {}}


@dataclass(frozen=True)
class KindHandlers:
    """What the api server runs for one kind on every write."""

    apply_defaults: Callable[[Obj], None]
    validate: Callable[[Obj], list[FieldError]]
    validate_update: Callable[[Obj, Obj], list[FieldError]]
    # Top-level fields written only through the status subresource (kept from the stored
    # object on main-resource updates, dropped or initialised on create).
    status_fields: tuple[str, ...] = ()
    # Top-level fields whose change bumps metadata.generation.
    generation_fields: tuple[str, ...] = ("spec",)
    initial_status: Callable[[Obj], Obj | None] = field(default=_no_status)
    # Nodes register with their status, so create keeps it (as Kubernetes' node strategy).
    keep_status_on_create: bool = False
    # Copies values the server allocated (a Service's clusterIP) when an update omits them.
    carry_over: Callable[[Obj, Obj], None] = field(default=_no_carry_over)


def _generic(kind: str) -> KindHandlers:
    info = lookup_kind_any_version(kind)
    namespaced = True if info is None else info.namespaced

    def validate(obj: Obj) -> list[FieldError]:
        """Validate metadata only (no kind-specific rules are known)."""
        return validate_metadata(obj, namespaced=namespaced)

    def validate_update(new: Obj, old: Obj) -> list[FieldError]:
        """Refuse changes to the immutable metadata fields."""
        return validate_metadata_update(new, old)

    return KindHandlers(_no_defaults, validate, validate_update)


_STATUS = ("status",)

_HANDLERS: dict[str, KindHandlers] = {
    "Pod": KindHandlers(
        pod.apply_defaults,
        pod.validate,
        pod.validate_update,
        _STATUS,
        initial_status=pod.initial_status,
    ),
    "Node": KindHandlers(
        node.apply_defaults,
        node.validate,
        node.validate_update,
        _STATUS,
        (),
        keep_status_on_create=True,
    ),
    "Namespace": KindHandlers(
        namespace.apply_defaults,
        namespace.validate,
        namespace.validate_update,
        _STATUS,
        initial_status=namespace.initial_status,
    ),
    "Service": KindHandlers(
        service.apply_defaults,
        service.validate,
        service.validate_update,
        _STATUS,
        initial_status=_service_status,
        carry_over=service.carry_over,
    ),
    "Endpoints": KindHandlers(
        endpoints.apply_defaults,
        endpoints.validate,
        endpoints.validate_update,
        generation_fields=("subsets",),
    ),
    "Event": KindHandlers(
        event.apply_defaults, event.validate, event.validate_update, generation_fields=()
    ),
    "ConfigMap": KindHandlers(
        configmap.apply_defaults,
        configmap.validate,
        configmap.validate_update,
        generation_fields=("data", "binaryData", "immutable"),
    ),
    "Secret": KindHandlers(
        secret.apply_defaults,
        secret.validate,
        secret.validate_update,
        generation_fields=("data", "stringData", "type", "immutable"),
    ),
    "Deployment": KindHandlers(
        deployment.apply_defaults,
        deployment.validate,
        deployment.validate_update,
        _STATUS,
        initial_status=_empty_status,
    ),
    "ReplicaSet": KindHandlers(
        replicaset.apply_defaults,
        replicaset.validate,
        replicaset.validate_update,
        _STATUS,
        initial_status=_replicaset_status,
    ),
    "Lease": KindHandlers(lease.apply_defaults, lease.validate, lease.validate_update),
    "HorizontalPodAutoscaler": KindHandlers(
        hpa.apply_defaults, hpa.validate, hpa.validate_update, _STATUS
    ),
    "PodDisruptionBudget": KindHandlers(
        pdb.apply_defaults,
        pdb.validate,
        pdb.validate_update,
        _STATUS,
        initial_status=pdb.initial_status,
    ),
    "PriorityClass": KindHandlers(
        priorityclass.apply_defaults,
        priorityclass.validate,
        priorityclass.validate_update,
        generation_fields=("value", "globalDefault", "description", "preemptionPolicy"),
    ),
}


def handlers_for(kind: str) -> KindHandlers:
    """Return the handlers for a kind; unknown kinds get metadata validation only."""
    if not isinstance(kind, str):
        return _generic("")
    return _HANDLERS.get(kind) or _generic(kind)


def prepare_for_create(obj: Obj) -> None:
    """Initialise status and metadata.generation on a new object, as Kubernetes does."""
    handlers = handlers_for(obj.get("kind", ""))
    if handlers.status_fields and not handlers.keep_status_on_create:
        for name in handlers.status_fields:
            obj.pop(name, None)
        status = handlers.initial_status(obj)
        if status is not None:
            obj["status"] = status
    if handlers.generation_fields:
        _writable_metadata(obj)["generation"] = 1


def prepare_for_update(new: Obj, old: Obj) -> None:
    """Keep the stored status on a main-resource update and bump generation on spec change."""
    handlers = handlers_for(old.get("kind", ""))
    handlers.carry_over(new, old)
    for name in handlers.status_fields:
        if name in old:
            new[name] = copy.deepcopy(old[name])
        else:
            new.pop(name, None)
    if not handlers.generation_fields:
        return
    old_meta = old.get("metadata")
    generation = old_meta.get("generation") if isinstance(old_meta, dict) else None
    generation = generation if isinstance(generation, int) and generation > 0 else 1
    if any(new.get(f) != old.get(f) for f in handlers.generation_fields):
        generation += 1
    _writable_metadata(new)["generation"] = generation


def prepare_for_status_update(new: Obj, old: Obj) -> None:
    """Keep everything but the status fields from the stored object on a status write."""
    handlers = handlers_for(old.get("kind", ""))
    status_fields = handlers.status_fields or ("status",)
    kept = {name: new[name] for name in status_fields if name in new}
    new_meta = new.get("metadata")
    resource_version = new_meta.get("resourceVersion") if isinstance(new_meta, dict) else None
    new.clear()
    new.update(copy.deepcopy(old))
    for name in status_fields:
        new.pop(name, None)
    new.update(kept)
    if resource_version is not None:
        _writable_metadata(new)["resourceVersion"] = resource_version


def _writable_metadata(obj: Obj) -> Obj:
    """Return obj's metadata dict, or a detached one when it is malformed (validation says so)."""
    meta = obj.setdefault("metadata", {})
    return meta if isinstance(meta, dict) else {}
