"""Admission on create: server-side rules that need other objects (Kubernetes' admission plugins).

- Priority: a pod's ``priorityClassName`` is resolved to ``spec.priority`` and
  ``preemptionPolicy`` from its PriorityClass (403 when there is none, as Kubernetes); a pod
  without one gets the globalDefault class's value, else 0. The two system classes Kubernetes
  always has (system-cluster-critical, system-node-critical) are known without objects.
- Services: clusterIP and nodePorts are allocated (``service_ips``); that admitter writes only
  its own allocation claims, never objects.

Admitters run after defaults and before validation; they may read the store, never write it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dockyard.api import status
from dockyard.api.service_ips import admit_service, admit_service_update
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


ADMITTERS: tuple[Admitter, ...] = (admit_priority, admit_service)
UPDATE_ADMITTERS: tuple[UpdateAdmitter, ...] = (admit_service_update,)
