"""Recording who wrote what: metadata.managedFields on every non-apply write.

Server-side apply can only detect conflicts with fields other writers set if every write
records its manager (Kubernetes does this for create, update, patch and scale alike). The
manager is the request's fieldManager, else the client's User-Agent product, as Kubernetes
names it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dockyard.api import status
from dockyard.api.apply import record_update
from dockyard.api.patching import PatchError
from dockyard.api.storage import now_rfc3339


def track_write(new: dict[str, Any], current: dict[str, Any] | None, request: web.Request) -> None:
    """Record the request's writer in new's managedFields (an Update operation)."""
    try:
        tracked = record_update(current, new, manager=manager_of(request),
                                api_version=str(new.get("apiVersion", "")), now=now_rfc3339())
    except PatchError as error:
        raise status.StatusError(error.status, error.reason, str(error)) from None
    new["metadata"]["managedFields"] = tracked.get("metadata", {}).get("managedFields", [])


def manager_of(request: web.Request) -> str:
    """Return the field manager of a request (fieldManager, else the User-Agent product)."""
    manager = request.query.get("fieldManager")
    if manager:
        return manager[:128]
    agent = request.headers.get("User-Agent", "unknown")
    return agent.split("/")[0][:128] or "unknown"
