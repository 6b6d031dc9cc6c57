"""One kind served at two versions: autoscaling/v1 HorizontalPodAutoscaler over the stored v2.

kubectl 1.27–1.32 `autoscale` POSTs autoscaling/v1; controllers and newer clients use v2. As
kube-apiserver does, objects are stored once, in the storage version (v2), and converted on the
way in and out. v1 carries only the cpu utilization target; other v2 metrics and behavior are
kept when a v1 client updates the object (the stored v2 fields it cannot express stay).

``VersionedStorage`` wraps ``ResourceStorage`` with the same methods, converting where the
served version differs from the stored one and passing everything else straight through.
"""

from __future__ import annotations

import builtins
import copy
from typing import Any

import orjson

from dockyard.api.storage import DeleteOptions, ListResult, Mutation, ResourceStorage
from dockyard.objects.resources import ResourceInfo, lookup

Obj = dict[str, Any]
_V2 = lookup("autoscaling", "v2", "horizontalpodautoscalers")
_CPU = "cpu"


def storage_info(info: ResourceInfo) -> ResourceInfo:
    """Return the resource an object of this served version is stored as."""
    if _V2 is not None and info.group == "autoscaling" and info.version == "v1":
        return _V2
    return info


def converts(info: ResourceInfo) -> bool:
    """Tell whether this served version differs from the stored one."""
    return storage_info(info) is not info


def to_storage(info: ResourceInfo, obj: Obj, stored: Obj | None = None) -> Obj:
    """Convert a v1 HorizontalPodAutoscaler to v2 (keeping stored fields v1 cannot carry)."""
    if not converts(info):
        return obj
    result = copy.deepcopy(stored) if stored is not None else {}
    result.update({k: v for k, v in obj.items() if k not in ("spec", "status")})
    result["apiVersion"] = "autoscaling/v2"
    spec = dict(obj.get("spec") or {})
    target = spec.pop("targetCPUUtilizationPercentage", None)
    v2_spec = dict((stored or {}).get("spec") or {})
    v2_spec.update(spec)
    others = [m for m in v2_spec.get("metrics") or [] if not _is_cpu_utilization(m)]
    if target is not None:
        others.insert(0, {"type": "Resource", "resource": {
            "name": _CPU, "target": {"type": "Utilization", "averageUtilization": target}}})
    v2_spec["metrics"] = others
    result["spec"] = v2_spec
    if "status" in obj:
        result["status"] = _status_to_v2(obj.get("status") or {}, result.get("status") or {})
    return result


def from_storage(info: ResourceInfo, obj: Obj) -> Obj:
    """Convert a stored v2 HorizontalPodAutoscaler to the v1 shape."""
    if not converts(info):
        return obj
    result = {k: v for k, v in obj.items() if k not in ("spec", "status")}
    result["apiVersion"] = "autoscaling/v1"
    spec = {k: v for k, v in (obj.get("spec") or {}).items() if k not in ("metrics", "behavior")}
    for metric in (obj.get("spec") or {}).get("metrics") or []:
        if _is_cpu_utilization(metric):
            spec["targetCPUUtilizationPercentage"] = metric["resource"]["target"][
                "averageUtilization"]
    result["spec"] = spec
    status = obj.get("status") or {}
    v1_status = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                        "desiredReplicas") if k in status}
    for metric in status.get("currentMetrics") or []:
        resource = metric.get("resource") or {}
        if resource.get("name") == _CPU and "averageUtilization" in (resource.get("current") or {}):
            v1_status["currentCPUUtilizationPercentage"] = resource["current"]["averageUtilization"]
    result["status"] = v1_status
    return result


def _is_cpu_utilization(metric: Obj) -> bool:
    resource = metric.get("resource") or {}
    return (metric.get("type") == "Resource" and resource.get("name") == _CPU
            and (resource.get("target") or {}).get("type") == "Utilization")


def _status_to_v2(status: Obj, stored: Obj) -> Obj:
    result = dict(stored)
    result.update({k: v for k, v in status.items() if k != "currentCPUUtilizationPercentage"})
    if "currentCPUUtilizationPercentage" in status:
        result["currentMetrics"] = [{"type": "Resource", "resource": {
            "name": _CPU, "current": {"averageUtilization":
                                      status["currentCPUUtilizationPercentage"]}}}]
    return result


class VersionedStorage:
    """ResourceStorage's verbs, converting served versions that differ from the stored one."""

    def __init__(self, inner: ResourceStorage) -> None:
        self.inner = inner
        self.store = inner.store

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj:
        """Return one object in the served version."""
        return from_storage(info, await self.inner.get(storage_info(info), namespace, name))

    async def list(self, info: ResourceInfo, namespace: str | None, **options: Any
                   ) -> ListResult:
        """Return a page of objects in the served version."""
        result = await self.inner.list(storage_info(info), namespace, **options)
        result.items = [from_storage(info, o) for o in result.items]
        return result

    async def list_encoded(self, info: ResourceInfo, namespace: str | None, *, limit: int = 0,
                           continue_token: str = "") -> tuple[builtins.list[bytes], int, str]:
        """Return a page as JSON bytes (decoded and converted when the version differs)."""
        if not converts(info):
            return await self.inner.list_encoded(info, namespace, limit=limit,
                                                 continue_token=continue_token)
        result = await self.list(info, namespace, limit=limit, continue_token=continue_token)
        items = [orjson.dumps(o) for o in result.items]
        return items, result.resource_version, result.continue_token

    async def create(self, info: ResourceInfo, namespace: str | None, obj: Obj, *,
                     dry_run: bool = False) -> Obj:
        """Create from an object in the served version."""
        stored = to_storage(info, obj)
        created = await self.inner.create(storage_info(info), namespace, stored, dry_run=dry_run)
        return from_storage(info, created)

    async def update(self, info: ResourceInfo, namespace: str | None, name: str,
                     mutate: Mutation, **options: Any) -> Obj:
        """Update with a mutation written against the served version."""
        def converted(current: Obj) -> Obj:
            return to_storage(info, mutate(from_storage(info, current)), current)

        updated = await self.inner.update(storage_info(info), namespace, name,
                                          converted if converts(info) else mutate, **options)
        return from_storage(info, updated)

    async def delete(self, info: ResourceInfo, namespace: str | None, name: str,
                     options: DeleteOptions) -> Obj:
        """Delete; answer in the served version."""
        return from_storage(info, await self.inner.delete(storage_info(info), namespace, name,
                                                          options))
