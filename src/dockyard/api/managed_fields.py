"""Recording who wrote what: metadata.managedFields on every non-apply write.

Server-side apply can only detect conflicts with fields other writers set if every write
records its manager (Kubernetes does this for create, update, patch and scale alike). The
manager is the request's fieldManager, else the client's User-Agent product, as Kubernetes
names it.

The entries are exactly what ``dockyard.api.apply.record_update`` computes; this module only
spares it work on the hot path: a create that carries no managedFields gets its one entry from
the object's field set directly (no copy of the object), and other writes hand record_update
the object without its status, which is never tracked (so record_update's copy of the object
skips what is often its biggest part, a pod's status).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import status
from dockyard.api.apply import leaves, record_update, to_fields_v1
from dockyard.api.patch_schema import PatchError, schema_for
from dockyard.api.storage import now_rfc3339


def track_write(new: dict[str, Any], current: dict[str, Any] | None, request: web.Request) -> None:
    """Record the request's writer in new's managedFields (an Update operation)."""
    manager, now = manager_of(request), now_rfc3339()
    api_version = str(new.get("apiVersion", ""))
    try:
        if current is None and "managedFields" not in new["metadata"]:
            managed = _first_entries(new, manager, api_version, now)
        else:
            managed = _recorded_entries(current, new, manager, api_version, now)
    except PatchError as error:
        raise status.StatusError(error.status, error.reason, str(error)) from None
    except RecursionError:
        raise status.bad_request("the object is nested too deeply") from None
    new["metadata"]["managedFields"] = managed


def manager_of(request: web.Request) -> str:
    """Return the field manager of a request (fieldManager, else the User-Agent product)."""
    manager = request.query.get("fieldManager")
    if manager:
        return manager[:128]
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"


def _first_entries(new: dict[str, Any], manager: str, api_version: str,
                   now: str) -> list[dict[str, Any]]:
    """Return the entries of a first write: the manager owns every field it set."""
    fields = leaves(new, schema_for(str(new.get("kind") or "")))
    if not fields:
        return []
    return [{"manager": manager, "operation": "Update", "apiVersion": api_version, "time": now,
             "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)}]


def _recorded_entries(current: dict[str, Any] | None, new: dict[str, Any], manager: str,
                      api_version: str, now: str) -> list[dict[str, Any]]:
    before = _without_status(current) if current is not None else None
    tracked = record_update(before, _without_status(new), manager=manager,
                            api_version=api_version, now=now)
    managed: list[dict[str, Any]] = tracked.get("metadata", {}).get("managedFields", [])
    return managed


def _without_status(obj: dict[str, Any]) -> dict[str, Any]:
    """Return a shallow view of obj without status (never tracked: no need to copy it)."""
    return {k: v for k, v in obj.items() if k != "status"}
