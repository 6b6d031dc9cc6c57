"""REST handlers: the Kubernetes verbs on every served resource.

One entry point, ``ResourceHandlers.handle``, reads the target from the path, authorizes the
verb, and dispatches: get/list/watch, create, update (PUT), patch (json, merge, strategic,
server-side apply), delete and deletecollection, plus the subresources in
``dockyard.api.subresources``. Responses are JSON objects, Tables when kubectl asks for them,
or metav1.Status errors raised as ``StatusError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from dockyard.api import app_keys, status, subresources
from dockyard.api.apply import server_side_apply
from dockyard.api.authz import authorize, check_object
from dockyard.api.conversion import VersionedStorage, from_storage, storage_info
from dockyard.api.decoding import MAX_BODY_BYTES, DecodeError, decode_object
from dockyard.api.managed_fields import track_write
from dockyard.api.patch_schema import json_copy
from dockyard.api.patching import PatchError, apply_patch
from dockyard.api.requests import (
    Target,
    decode_status,
    dry_run,
    parse_target,
    query_bool,
    query_int,
    read_object,
    strict_fields,
    wants_partial_metadata,
    wants_table,
)
from dockyard.api.responses import json_response
from dockyard.api.storage import DeleteOptions, check_type, now_rfc3339
from dockyard.api.tables import table
from dockyard.api.tokens import User
from dockyard.api.watch import serve_watch

APPLY_PATCH = "application/apply-patch+yaml"
Handler = Callable[[web.Request, Target, User], Awaitable[web.StreamResponse]]


class ResourceHandlers:
    """The verbs on every resource, over one (version-converting) ResourceStorage."""

    def __init__(self, storage: VersionedStorage, available_subresources: set[str]) -> None:
        self.storage = storage
        self.available_subresources = available_subresources
        self.subresource_handlers: dict[tuple[str, str], Handler] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request under /api or /apis."""
        target = parse_target(request.path)
        user: User = request["user"]
        if target.subresource and target.subresource != "status":
            return await self._subresource(request, target, user)
        verb = _verb(request, target)
        request["verb"] = verb
        authorize(user, verb, target.info.plural, target.subresource, target.namespace,
                  target.name)
        method = getattr(self, f"_{verb}")
        response: web.StreamResponse = await method(request, target, user)
        return response

    async def _subresource(
        self, request: web.Request, target: Target, user: User
    ) -> web.StreamResponse:
        assert target.subresource is not None
        handler = self.subresource_handlers.get((target.info.plural, target.subresource))
        if handler is None:
            handler = subresources.HANDLERS.get(target.subresource)
        if handler is None or target.subresource not in self.available_subresources:
            raise status.StatusError(
                404, "NotFound",
                f"the {target.subresource} subresource of {target.info.plural} is not served "
                "by this server yet",
            )
        request["verb"] = target.subresource
        return await handler(request, target, user)

    async def _get(self, request: web.Request, target: Target, user: User) -> web.Response:
        assert target.name is not None
        obj = await self.storage.get(target.info, target.namespace, target.name)
        if wants_table(request):
            rv = obj["metadata"].get("resourceVersion", "")
            return json_response(table(target.info, [obj], resource_version=rv,
                                       include_object=_include_object(request)))
        if wants_partial_metadata(request):
            return json_response(_partial(obj))
        return json_response(obj)

    async def _list(self, request: web.Request, target: Target, user: User) -> web.Response:
        label_selector = request.query.get("labelSelector", "")
        field_selector = request.query.get("fieldSelector", "")
        limit = query_int(request, "limit", 0) or 0
        token = request.query.get("continue", "")
        table_wanted, partial = wants_table(request), wants_partial_metadata(request)
        if not (label_selector or field_selector or table_wanted or partial):
            return await self._list_encoded(target, limit, token)
        result = await self.storage.list(
            target.info, target.namespace, label_selector=label_selector,
            field_selector=field_selector, limit=limit, continue_token=token,
        )
        rv = str(result.resource_version)
        if table_wanted:
            answer = table(target.info, result.items, resource_version=rv,
                           include_object=_include_object(request))
            if result.continue_token:
                answer["metadata"]["continue"] = result.continue_token
            return json_response(answer)
        metadata: dict[str, Any] = {"resourceVersion": rv}
        if result.continue_token:
            metadata["continue"] = result.continue_token
        items = result.items
        kind, api_version = target.info.list_kind, target.info.api_version
        if partial:
            items = [_partial(o) for o in items]
            kind, api_version = "PartialObjectMetadataList", "meta.k8s.io/v1"
        return json_response(
            {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items}
        )

    async def _list_encoded(self, target: Target, limit: int, token: str) -> web.Response:
        """Serve an unfiltered JSON list by joining the stored bytes (the common, big case)."""
        items, revision, next_token = await self.storage.list_encoded(
            target.info, target.namespace, limit=limit, continue_token=token
        )
        metadata: dict[str, Any] = {"resourceVersion": str(revision)}
        if next_token:
            metadata["continue"] = next_token
        head = orjson.dumps({"kind": target.info.list_kind,
                             "apiVersion": target.info.api_version, "metadata": metadata})
        return web.Response(body=_join_list(head[:-1] + b',"items":[', items, b"]}"),
                            content_type="application/json")

    async def _watch(self, request: web.Request, target: Target, user: User) -> web.StreamResponse:
        info, include = target.info, _include_object(request)
        as_table = wants_table(request)

        def transform(obj: dict[str, Any]) -> dict[str, Any]:
            obj = from_storage(info, obj)
            if not as_table:
                return obj
            rv = obj["metadata"].get("resourceVersion", "")
            return table(info, [obj], resource_version=rv, include_object=include)

        watchers = request.app[app_keys.METRICS].watchers.labels(target.info.plural)
        watchers.inc()
        try:
            return await serve_watch(
                request,
                self.storage.inner,
                storage_info(target.info),
                target.namespace,
                label_selector=request.query.get("labelSelector", ""),
                field_selector=request.query.get("fieldSelector", ""),
                resource_version=request.query.get("resourceVersion", ""),
                timeout_seconds=query_int(request, "timeoutSeconds"),
                transform=transform,
            )
        finally:
            watchers.dec()

    async def _create(self, request: web.Request, target: Target, user: User) -> web.Response:
        if target.info.namespaced and target.namespace is None:
            raise status.method_not_allowed(
                f"{target.info.plural} are namespaced: POST to "
                f"/namespaces/<namespace>/{target.info.plural}"
            )
        obj = await read_object(request)
        check_type(target.info, obj)
        if target.info.plural == "nodes":
            check_object(user, "nodes", obj)
        track_write(obj, None, request)
        created = await self.storage.create(
            target.info, target.namespace, obj, dry_run=dry_run(request)
        )
        return json_response(created, 201)

    async def _update(self, request: web.Request, target: Target, user: User) -> web.Response:
        assert target.name is not None
        obj = await read_object(request)
        check_type(target.info, obj)
        body_name = obj["metadata"].get("name")
        if body_name and body_name != target.name:
            raise status.bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL "
                f"({target.name})"
            )
        await self._check_owned(target, user)
        expected = obj["metadata"].get("resourceVersion")

        def replace(current: dict[str, Any]) -> dict[str, Any]:
            new: dict[str, Any] = json_copy(obj)  # each retry starts from the body
            new["metadata"].setdefault("name", target.name)
            track_write(new, current, request)
            return new

        updated = await self.storage.update(
            target.info, target.namespace, target.name, replace,
            subresource=target.subresource, dry_run=dry_run(request),
            expected_resource_version=str(expected) if expected else None,
        )
        return json_response(updated)

    async def _patch(self, request: web.Request, target: Target, user: User) -> web.Response:
        assert target.name is not None
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        body = await request.read()
        if len(body) > MAX_BODY_BYTES:
            raise status.too_large("the request body", MAX_BODY_BYTES)
        if content_type == APPLY_PATCH:
            return await self._apply(request, target, user, body)
        await self._check_owned(target, user)

        def patch(current: dict[str, Any]) -> dict[str, Any]:
            try:
                new = apply_patch(current, body, content_type, target.info.kind)
            except PatchError as error:
                raise _patch_status(error) from None
            _check_patched_version(target, current, new)
            track_write(new, current, request)
            return new

        updated = await self.storage.update(
            target.info, target.namespace, target.name, patch,
            subresource=target.subresource, dry_run=dry_run(request),
        )
        return json_response(updated)

    async def _apply(
        self, request: web.Request, target: Target, user: User, body: bytes
    ) -> web.Response:
        """Server-side apply: merge the applied configuration, creating the object if absent."""
        assert target.name is not None
        try:
            applied = decode_object(body, APPLY_PATCH, strict=strict_fields(request))
        except DecodeError as error:
            raise decode_status(error) from None
        check_type(target.info, applied)
        manager = request.query.get("fieldManager", "")
        if not manager:
            raise status.bad_request("fieldManager is required for apply requests")
        force = query_bool(request, "force")
        options = {"manager": manager, "force": force, "kind": target.info.kind,
                   "api_version": target.info.api_version}
        try:
            current = await self.storage.get(target.info, target.namespace, target.name)
        except status.StatusError as error:
            if error.code != 404:
                raise
            obj = _ssa(None, applied, options)
            created = await self.storage.create(
                target.info, target.namespace, obj, dry_run=dry_run(request)
            )
            return json_response(created, 201)
        check_object(user, target.info.plural, current)
        updated = await self.storage.update(
            target.info, target.namespace, target.name,
            lambda cur: _ssa(cur, applied, options),
            subresource=target.subresource, dry_run=dry_run(request),
        )
        return json_response(updated)

    async def _delete(self, request: web.Request, target: Target, user: User) -> web.Response:
        assert target.name is not None
        await self._check_owned(target, user)
        options = await _delete_options(request)
        deleted = await self.storage.delete(target.info, target.namespace, target.name, options)
        return json_response(deleted)

    async def _deletecollection(
        self, request: web.Request, target: Target, user: User
    ) -> web.Response:
        options = await _delete_options(request)
        result = await self.storage.list(
            target.info, target.namespace,
            label_selector=request.query.get("labelSelector", ""),
            field_selector=request.query.get("fieldSelector", ""),
        )
        deleted = []
        for obj in result.items:
            meta = obj["metadata"]
            try:
                deleted.append(await self.storage.delete(
                    target.info, meta.get("namespace"), meta["name"], options
                ))
            except status.StatusError as error:
                if error.code != 404:
                    raise
        return json_response({
            "kind": target.info.list_kind, "apiVersion": target.info.api_version,
            "metadata": {"resourceVersion": str(result.resource_version)}, "items": deleted,
        })

    async def _check_owned(self, target: Target, user: User) -> None:
        """Check object-dependent rules (a node's own pods) before a write."""
        if user.is_admin or target.name is None:
            return
        current = await self.storage.get(target.info, target.namespace, target.name)
        check_object(user, target.info.plural, current)


def _verb(request: web.Request, target: Target) -> str:
    method = request.method
    if method == "GET":
        if target.is_collection:
            return "watch" if query_bool(request, "watch") else "list"
        return "get"
    if target.is_collection:
        verbs = {"POST": "create", "DELETE": "deletecollection"}
    else:
        verbs = {"PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    verb = verbs.get(method)
    if verb is None:
        raise status.method_not_allowed(
            f"the server does not allow {method} on "
            f"{'a collection of ' if target.is_collection else ''}{target.info.plural}"
        )
    return verb


async def _delete_options(request: web.Request) -> DeleteOptions:
    body: dict[str, Any] = {}
    raw = await request.read()
    if raw.strip():
        try:
            body = decode_object(raw, request.headers.get("Content-Type"))
        except DecodeError as error:
            raise status.bad_request(f"invalid DeleteOptions: {error}") from None
    preconditions = body.get("preconditions") or {}
    policy = body.get("propagationPolicy") or request.query.get("propagationPolicy") or (
        "Background"
    )
    if body.get("orphanDependents") is True:
        policy = "Orphan"
    if policy not in ("Background", "Foreground", "Orphan"):
        raise status.bad_request(
            f"propagationPolicy {policy!r} is not supported; use Background, Foreground or Orphan"
        )
    grace = body.get("gracePeriodSeconds")
    if grace is None:
        grace = query_int(request, "gracePeriodSeconds")
    if grace is not None and not isinstance(grace, int):
        raise status.bad_request("gracePeriodSeconds must be an integer")
    return DeleteOptions(
        propagation_policy=policy,
        grace_period_seconds=grace,
        precondition_uid=preconditions.get("uid"),
        precondition_resource_version=preconditions.get("resourceVersion"),
        dry_run=dry_run(request) or body.get("dryRun") == ["All"],
    )


def _join_list(opening: bytes, items: list[bytes], closing: bytes) -> bytes:
    """Return opening, the items separated by commas, and closing, copying each byte once
    (a list body is often tens of MB: a nested join would copy it twice)."""
    if not items:
        return opening + closing
    parts = [b","] * (2 * len(items) + 1)  # [opening, i1, ",", i2, ..., in, closing]
    parts[0], parts[-1] = opening, closing
    parts[1::2] = items
    return b"".join(parts)


def _include_object(request: web.Request) -> str:
    value = request.query.get("includeObject", "Metadata")
    if value not in ("None", "Metadata", "Object"):
        raise status.bad_request(f"includeObject must be None, Metadata or Object, not {value!r}")
    return value


def _partial(obj: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj["metadata"]}


def _check_patched_version(target: Target, current: dict[str, Any], new: dict[str, Any]) -> None:
    """A patch that sets metadata.resourceVersion makes it a precondition (409 when stale)."""
    wanted = new.get("metadata", {}).get("resourceVersion")
    if wanted is not None and str(wanted) != current["metadata"]["resourceVersion"]:
        raise status.conflict(target.info.plural, target.name or "", target.info.group)


def _ssa(
    current: dict[str, Any] | None, applied: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    try:
        return server_side_apply(
            current, applied, manager=options["manager"], force=options["force"],
            kind=options["kind"], api_version=options["api_version"], now=now_rfc3339(),
        )
    except PatchError as error:
        raise _patch_status(error) from None


def _patch_status(error: PatchError) -> status.StatusError:
    details = {"causes": error.causes} if getattr(error, "causes", None) else None
    return status.StatusError(error.status, error.reason, str(error), details=details)
