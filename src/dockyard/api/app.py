"""The api server's aiohttp application: middlewares, routes and lifecycle.

Middlewares, outermost first: metrics (counts and latencies by verb, resource and code),
errors (every failure leaves as a metav1.Status; unexpected ones as a 500 that is logged), and
authentication (bearer token → user; /healthz, /livez, /readyz and /version are open).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from dockyard.api import app_keys, discovery, metrics_api, node_proxy, port_forward, status
from dockyard.api.admission import DefaultTolerationSeconds, configure_tolerations
from dockyard.api.conversion import VersionedStorage
from dockyard.api.decoding import MAX_BODY_BYTES
from dockyard.api.handlers import ResourceHandlers
from dockyard.api.metrics import ApiMetrics
from dockyard.api.namespaces import NamespaceCleaner, ensure_built_in
from dockyard.api.requests import read_object
from dockyard.api.responses import json_response
from dockyard.api.status import StatusError
from dockyard.api.storage import ResourceStorage
from dockyard.api.tokens import TokenFile, User
from dockyard.images.registry_server import add_registry_routes
from dockyard.images.store import ImageStore
from dockyard.objects.validation import dns1123_subdomain
from dockyard.store.base import Store

OPEN_PATHS = {"/healthz", "/livez", "/readyz", "/version"}
SERVED_SUBRESOURCES = {"status", "scale", "binding", "eviction", "log", "exec", "portforward"}
log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class ApiConfig:
    """What the application needs from the server's wiring."""

    store: Store
    tokens: TokenFile
    data_dir: Path
    extra_subresources: set[str] = field(default_factory=set)
    default_toleration_seconds: DefaultTolerationSeconds = field(
        default_factory=DefaultTolerationSeconds)


def build_app(config: ApiConfig) -> web.Application:
    """Return the api server application over a store."""
    app = web.Application(
        middlewares=[_metrics_middleware, _error_middleware, _auth_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    storage = ResourceStorage(config.store)
    app[app_keys.CONFIG] = config
    app[app_keys.STORAGE] = storage
    configure_tolerations(storage, config.default_toleration_seconds)
    app[app_keys.METRICS] = ApiMetrics()
    app[app_keys.TOKENS] = config.tokens
    available = SERVED_SUBRESOURCES | config.extra_subresources
    app[app_keys.AVAILABLE_SUBRESOURCES] = available
    resources = ResourceHandlers(VersionedStorage(storage), available)
    app[app_keys.RESOURCES] = resources
    node_proxy.register(app, resources, config.data_dir / "pki")
    port_forward.register(resources)
    _add_routes(app, resources)
    add_registry_routes(app, ImageStore(config.data_dir), _registry_authorizer(config.tokens))
    app.on_startup.append(_on_startup)
    app.on_cleanup.append(_on_cleanup)
    return app


def _add_routes(app: web.Application, resources: ResourceHandlers) -> None:
    router = app.router
    for path in ("/healthz", "/livez", "/readyz"):
        router.add_get(path, _health)
    router.add_get("/version", _version)
    router.add_get("/metrics", _metrics)
    router.add_get("/api", _api)
    router.add_get("/apis", _apis)
    router.add_get("/api/{version}", _resource_list)
    router.add_get("/apis/{group}", _group)
    router.add_get("/apis/{group}/{version}", _resource_list)
    router.add_get("/openapi/v2", _openapi_v2)
    router.add_get("/openapi/v3", _openapi_index)
    router.add_get("/openapi/v3/{tail:.*}", _openapi_document)
    router.add_post("/dockyard/v1/join", _join)
    metrics_api.add_routes(app)
    router.add_route("*", "/api/{tail:.+}", resources.handle)
    router.add_route("*", "/apis/{tail:.+}", resources.handle)


def _registry_authorizer(tokens: TokenFile) -> Callable[[str, str], str]:
    """Return the registry's rule: any user or node token pulls, admins push."""

    def authorize(token: str, action: str) -> str:
        user = tokens.authenticate(token) if token else None
        if user is None or user.kind == "join":
            return "unauthenticated"
        return "ok" if action == "pull" or user.is_admin else "forbidden"

    return authorize


async def _on_startup(app: web.Application) -> None:
    storage: ResourceStorage = app[app_keys.STORAGE]
    storage.namespaces.start()
    await ensure_built_in(storage)
    cleaner = NamespaceCleaner(storage)
    cleaner.start()
    app[app_keys.NAMESPACE_CLEANER] = cleaner


async def _on_cleanup(app: web.Application) -> None:
    await app[app_keys.NAMESPACE_CLEANER].stop()
    await app[app_keys.STORAGE].namespaces.stop()


# --- middlewares -------------------------------------------------------------------------


@web.middleware
async def _metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    code = 500
    try:
        response = await handler(request)
        code = response.status
        return response
    finally:
        metrics: ApiMetrics = request.app[app_keys.METRICS]
        verb = request.get("verb", request.method.lower())
        resource = _resource_label(request.path)
        seconds = None if verb == "watch" else time.perf_counter() - started
        metrics.record(verb, resource, code, seconds)


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except StatusError as error:
        return json_response(error.to_status(), error.code)
    except web.HTTPRequestEntityTooLarge:
        return _status_response(status.too_large("the request body", MAX_BODY_BYTES))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return _status_response(StatusError(error.status, error.reason, error.text or ""))
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return _status_response(StatusError(
            500, "InternalError", "an internal error occurred; the server log has the details"
        ))


@web.middleware
async def _auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in OPEN_PATHS or request.path.startswith("/v2/"):
        # /v2/ (the registry) authenticates itself: clients need its WWW-Authenticate answers.
        return await handler(request)
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    tokens: TokenFile = request.app[app_keys.TOKENS]
    user = tokens.authenticate(token) if token else None
    if user is None:
        raise status.unauthorized()
    request["user"] = user
    if user.kind == "join" and request.path != "/dockyard/v1/join":
        raise status.forbidden(user.name, request.method.lower(), request.path, None,
                               "a join token may only register a node")
    return await handler(request)


def _status_response(error: StatusError) -> web.Response:
    return json_response(error.to_status(), error.code)


def _resource_label(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return parts[0] if parts else ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] if rest else ""


# --- plain endpoints ---------------------------------------------------------------------


async def _version(request: web.Request) -> web.Response:
    return json_response(discovery.SERVER_VERSION)


async def _openapi_index(request: web.Request) -> web.Response:
    return json_response(discovery.openapi_index())


async def _health(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _metrics(request: web.Request) -> web.Response:
    metrics: ApiMetrics = request.app[app_keys.METRICS]
    await metrics.refresh_store(request.app[app_keys.STORAGE].store.stats)
    return web.Response(body=metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def _aggregated_or_none(request: web.Request, core: bool) -> web.Response | None:
    version = discovery.aggregated_media_version(request.headers.get("Accept", ""))
    if version is None:
        return None
    body = discovery.aggregated(core, version, request.app[app_keys.AVAILABLE_SUBRESOURCES])
    response = json_response(body)
    response.headers["Content-Type"] = (
        f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
    )
    return response


async def _api(request: web.Request) -> web.Response:
    return _aggregated_or_none(request, True) or json_response(
        discovery.api_versions(request.host)
    )


async def _apis(request: web.Request) -> web.Response:
    return _aggregated_or_none(request, False) or json_response(discovery.api_group_list())


async def _group(request: web.Request) -> web.Response:
    group = request.match_info["group"]
    for entry in discovery.api_group_list()["groups"]:
        if entry["name"] == group:
            return json_response({"kind": "APIGroup", "apiVersion": "v1", **entry})
    raise StatusError(404, "NotFound", f"the server could not find the group {group!r}")


async def _resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group", "")
    version = request.match_info["version"]
    body = discovery.api_resource_list(group, version, request.app[app_keys.AVAILABLE_SUBRESOURCES])
    if body is None:
        gv = f"{group}/{version}" if group else version
        raise StatusError(404, "NotFound", f"the server does not serve {gv}")
    return json_response(body)


async def _openapi_v2(request: web.Request) -> web.Response:
    return web.Response(body=discovery.openapi_v2_protobuf(),
                        content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")


async def _openapi_document(request: web.Request) -> web.Response:
    parts = request.match_info["tail"].strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) == 2:
        document = discovery.openapi_document("", parts[1])
    elif parts[:1] == ["apis"] and len(parts) == 3:
        document = discovery.openapi_document(parts[1], parts[2])
    else:
        document = None
    if document is None:
        raise StatusError(404, "NotFound", f"no OpenAPI document at {request.path}")
    return json_response(document)


async def _join(request: web.Request) -> web.Response:
    """Trade a join token (or an admin token) for a token that acts only for one node."""
    user: User = request["user"]
    if user.kind not in ("join", "admin"):
        raise status.forbidden(user.name, "create", "join", None, "only join tokens may join")
    body = await read_object(request)
    node = body.get("nodeName")
    if not isinstance(node, str) or not node:
        raise status.bad_request("the join request needs a nodeName")
    problems = dns1123_subdomain(node)
    if problems:
        raise status.bad_request(f"invalid node name {node!r}: {'; '.join(problems)}")
    tokens: TokenFile = request.app[app_keys.TOKENS]
    return json_response({"nodeName": node, "token": tokens.create("node", node)}, 201)
