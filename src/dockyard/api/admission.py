"""Admission on create: server-side rules that need other objects (Kubernetes' admission plugins).

- Priority: a pod's ``priorityClassName`` is resolved to ``spec.priority`` and
  ``preemptionPolicy`` from its PriorityClass (403 when there is none, as Kubernetes); a pod
  without one gets the globalDefault class's value, else 0. The two system classes Kubernetes
  always has (system-cluster-critical, system-node-critical) are known without objects.
- DefaultTolerationSeconds: a pod that does not tolerate ``node.kubernetes.io/not-ready``
  (resp. ``unreachable``) with effect NoExecute gets ``{key, operator: Exists, effect: NoExecute,
  tolerationSeconds: N}``, N from the api server's ``--default-not-ready-toleration-seconds``
  (resp. ``--default-unreachable-toleration-seconds``), 300 unless ``configure_tolerations`` set
  it. A toleration counts as Kubernetes' plugin counts it: key equal or empty, effect NoExecute or
  empty (operator and value are not looked at). It runs on create and on update, as
  Kubernetes': a pod keeps the tolerations it was created with (an update adds nothing), and
  one whose update dropped them gets them back.
- Services: clusterIP and nodePorts are allocated (``service_ips``); that admitter writes only
  its own allocation claims, never objects.

Admitters run after defaults and before validation; they may read the store, never write it.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.api import status
from dockyard.api.service_ips import admit_service, admit_service_update
from dockyard.objects.pod import NOT_READY_TAINT, UNREACHABLE_TAINT
from dockyard.objects.resources import ResourceInfo, lookup

if TYPE_CHECKING:
    from dockyard.api.storage import ResourceStorage

Admitter = Callable[["ResourceStorage", ResourceInfo, dict[str, Any]], Awaitable[None]]
# (storage, info, new, old): run on main-resource updates, after defaults, before validation
UpdateAdmitter = Callable[
    ["ResourceStorage", ResourceInfo, dict[str, Any], dict[str, Any]], Awaitable[None]
]
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2000000000,
                           "system-node-critical": 2000001000}
_PRIORITY_CLASSES = lookup("scheduling.k8s.io", "v1", "priorityclasses")


async def admit_priority(storage: ResourceStorage, info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Set a new pod's spec.priority (and preemptionPolicy) from its PriorityClass."""
    if info.kind != "Pod" or _PRIORITY_CLASSES is None:
        return
    spec = obj.setdefault("spec", {})
    name = spec.get("priorityClassName")
    if name in SYSTEM_PRIORITY_CLASSES:
        spec["priority"] = SYSTEM_PRIORITY_CLASSES[name]
        return
    classes = (await storage.list(_PRIORITY_CLASSES, None)).items
    chosen = _choose(classes, name)
    if name and chosen is None:
        raise status.StatusError(
            403, "Forbidden",
            f'pods "{obj["metadata"].get("name", "")}" is forbidden: no PriorityClass with name '
            f"{name} was found",
        )
    if chosen is None:
        spec.setdefault("priority", 0)
        return
    spec["priority"] = int(chosen.get("value", 0))
    spec.setdefault("priorityClassName", chosen["metadata"]["name"])
    if chosen.get("preemptionPolicy"):
        spec["preemptionPolicy"] = chosen["preemptionPolicy"]


def _choose(classes: list[dict[str, Any]], name: str | None) -> dict[str, Any] | None:
    for pc in classes:
        if name and pc["metadata"]["name"] == name:
            return pc
        if not name and pc.get("globalDefault"):
            return pc
    return None


DEFAULT_TOLERATION_SECONDS = 300


@dataclass(frozen=True)
class DefaultTolerationSeconds:
    """The tolerationSeconds of the not-ready and unreachable tolerations new pods get."""

    not_ready: int = DEFAULT_TOLERATION_SECONDS
    unreachable: int = DEFAULT_TOLERATION_SECONDS


_TOLERATION_SECONDS: weakref.WeakKeyDictionary[Any, DefaultTolerationSeconds] = (
    weakref.WeakKeyDictionary()
)


def configure_tolerations(storage: ResourceStorage, seconds: DefaultTolerationSeconds) -> None:
    """Set the default toleration seconds of the storage's api server (negative refused)."""
    for flag, value in (("--default-not-ready-toleration-seconds", seconds.not_ready),
                        ("--default-unreachable-toleration-seconds", seconds.unreachable)):
        if value < 0:
            raise ValueError(f"{flag} must be 0 or more, not {value}")
    _TOLERATION_SECONDS[storage] = seconds


def toleration_seconds_of(storage: ResourceStorage) -> DefaultTolerationSeconds:
    """Return the default toleration seconds configured for a storage (300 s when unset)."""
    return _TOLERATION_SECONDS.get(storage, DefaultTolerationSeconds())


async def admit_default_tolerations(storage: ResourceStorage, info: ResourceInfo,
                                    obj: dict[str, Any]) -> None:
    """Add the not-ready/unreachable NoExecute tolerations a new pod lacks."""
    if info.kind != "Pod" or not isinstance(obj.get("spec"), dict):
        return
    tolerations = obj["spec"].get("tolerations")
    if tolerations is None:
        tolerations = []
    if not isinstance(tolerations, list):
        return  # validation names the field
    seconds = toleration_seconds_of(storage)
    added = [_default_toleration(key, value) for key, value in
             ((NOT_READY_TAINT, seconds.not_ready), (UNREACHABLE_TAINT, seconds.unreachable))
             if not any(_covers(t, key) for t in tolerations)]
    if added:
        obj["spec"]["tolerations"] = [*tolerations, *added]


async def admit_default_tolerations_update(storage: ResourceStorage, info: ResourceInfo,
                                           new: dict[str, Any], old: dict[str, Any]) -> None:
    """Add the default tolerations an updated pod lacks (Kubernetes runs it on update too)."""
    await admit_default_tolerations(storage, info, new)


def _covers(toleration: Any, key: str) -> bool:
    # Kubernetes' plugin looks at key and effect only: a toleration for the key (or every key)
    # with effect NoExecute (or every effect) is the pod's own choice, kept as written.
    if not isinstance(toleration, dict):
        return False
    return (toleration.get("key") or "") in ("", key) \
        and (toleration.get("effect") or "") in ("", "NoExecute")


def _default_toleration(key: str, seconds: int) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}


ADMITTERS: tuple[Admitter, ...] = (admit_priority, admit_default_tolerations, admit_service)
UPDATE_ADMITTERS: tuple[UpdateAdmitter, ...] = (admit_default_tolerations_update,
                                                admit_service_update)
