"""Reading a Kubernetes REST request: which resource it targets and what it asks for.

Paths: /api/v1/... (core) and /apis/<group>/<version>/...; namespaced collections live under
namespaces/<ns>/, and ``namespaces/<name>/status`` is the Namespace's own subresource.
Invariants: a request that names an unknown group, version or resource gets a 404 Status; a
malformed query parameter gets a 400 naming it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dockyard.api import status
from dockyard.api.decoding import MAX_BODY_BYTES, DecodeError, decode_object
from dockyard.objects.resources import ResourceInfo, lookup

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}


@dataclass(frozen=True)
class Target:
    """The resource, namespace, name and subresource a request is about."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def is_collection(self) -> bool:
        """Tell whether the request addresses a collection rather than one object."""
        return self.name is None


@functools.lru_cache(maxsize=4096)
def parse_target(path: str) -> Target:
    """Return the target of an /api or /apis path, or raise 404."""
    # Cached: the same collection paths come again and again (every create in a namespace).
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise _no_route(path)
    namespace: str | None = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES)
    ):
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3:
        raise _no_route(path)
    info = lookup(group, version, rest[0])
    if info is None:
        gv = f"{group}/{version}" if group else version
        raise status.StatusError(
            404, "NotFound", f'the server could not find the requested resource "{rest[0]}" '
            f"in {gv}"
        )
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if name in (".", ".."):
        raise status.bad_request(f'name may not be "{name}"')
    if namespace in (".", ".."):
        raise status.bad_request(f'namespace may not be "{namespace}"')
    if not info.namespaced and namespace is not None:
        raise _no_route(path)
    if sub is not None and sub not in info.subresources:
        raise _no_route(path)
    return Target(info, namespace, name, sub)


def _no_route(path: str) -> status.StatusError:
    return status.StatusError(
        404, "NotFound", f"the server could not find the requested resource ({path})"
    )


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    """Return an integer query parameter, or raise 400 naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise status.bad_request(f"invalid value for query parameter {name}: {raw!r}") from None


def query_bool(request: web.Request, name: str) -> bool:
    """Return a boolean query parameter ("true"/"1")."""
    return request.query.get(name, "").lower() in ("true", "1")


def dry_run(request: web.Request) -> bool:
    """Return whether the request asked for dryRun=All (other values are refused)."""
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise status.bad_request(f'unsupported dry run setting {value!r}; use "All"')
    return bool(values)


def wants_table(request: web.Request) -> bool:
    """Tell whether the client asked for a meta.k8s.io Table (kubectl get does)."""
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return True
        if part.strip().startswith("application/json") and "as=" not in part:
            return False
    return False


def wants_partial_metadata(request: web.Request) -> bool:
    """Tell whether the client asked for PartialObjectMetadata (garbage collectors do)."""
    accept = request.headers.get("Accept", "")
    first = accept.split(",")[0]
    return "as=PartialObjectMetadata" in first


async def read_object(request: web.Request) -> dict[str, Any]:
    """Read and decode the request body (JSON, YAML or protobuf), or raise 400/413/415."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise status.too_large("the request body", MAX_BODY_BYTES)
    body = await request.read()
    if len(body) > MAX_BODY_BYTES:
        raise status.too_large("the request body", MAX_BODY_BYTES)
    if not body.strip():
        raise status.bad_request("the request body is empty; send the object as JSON or YAML")
    try:
        return decode_object(body, request.headers.get("Content-Type"),
                             strict=strict_fields(request))
    except DecodeError as error:
        raise decode_status(error) from None


def strict_fields(request: web.Request) -> bool:
    """Tell whether the client asked fieldValidation=Strict (duplicate fields are refused)."""
    return request.query.get("fieldValidation") == "Strict"


def decode_status(error: DecodeError) -> status.StatusError:
    """Return the Status for a body that could not be decoded."""
    reasons = {413: "RequestEntityTooLarge", 415: "UnsupportedMediaType"}
    return status.StatusError(error.status, reasons.get(error.status, "BadRequest"), str(error))
