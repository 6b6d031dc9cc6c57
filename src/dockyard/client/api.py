"""The async Kubernetes REST client every dockyard loop talks through.

``ApiClient`` owns one aiohttp ``ClientSession`` (TLS and credentials from a ``ClientConfig``,
pooled keep-alive connections); ``api.resource("apps/v1", "deployments", "default")`` gives a
``ResourceClient`` with the standard verbs: get, list (following ``continue`` tokens), create,
update (PUT; the server compares ``metadata.resourceVersion``), update_status, patch (merge,
strategic, json, apply), delete, watch, and subresources (binding, eviction, scale, log).

Invariants:
- Only standard Kubernetes paths and parameters are sent, so the client works against dockyard
  and against a real cluster alike. Paths: core ``v1`` → ``/api/v1``, ``group/version`` →
  ``/apis/group/version``; ``namespace=None`` means cluster-scoped (or all namespaces).
- Every non-2xx answer raises an ``ApiError`` subclass built from the ``metav1.Status``;
  connection failures raise ``ServerUnreachableError``. Nothing is retried silently except one
  GET on a keep-alive connection the server had already closed, and answers that say "not
  processed, retry" (429, or 5xx with Retry-After), up to MAX_THROTTLED times.
- A watch yields ``WatchEvent(type, object)`` for ADDED/MODIFIED/DELETED, skips BOOKMARKs (but
  records their resourceVersion on ``Watch.resource_version``), and raises ``GoneError`` on a
  410 ``ERROR`` event, so callers re-list.
- JSON is (de)serialised with orjson: list and watch decoding dominate a controller's CPU.
- List items get ``apiVersion``/``kind`` filled in from the list (Kubernetes leaves them out),
  so consumers can always tell what an object is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self, overload
from urllib.parse import quote

import aiohttp
import orjson

from dockyard import __version__
from dockyard.client.config import ClientConfig, load_kubeconfig
from dockyard.client.errors import ApiError, ServerUnreachableError, error_from_status

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PatchType = Literal["merge", "strategic", "json", "apply"]

MAX_THROTTLED = 5  # retries of a 429 / Retry-After answer before the error reaches the caller

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One watch event: ADDED, MODIFIED, DELETED (BOOKMARK and ERROR never reach callers)."""

    type: str
    object: Obj


@dataclass(slots=True)
class ObjectList:
    """The items of a list call and the resourceVersion to watch from."""

    items: list[Obj]
    resource_version: str
    kind: str = ""
    api_version: str = ""
    metadata: Obj = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)


def api_prefix(api_version: str) -> str:
    """Return the path prefix of a group version: ``v1`` → ``/api/v1``, else ``/apis/g/v``."""
    if "/" in api_version:
        return f"/apis/{api_version}"
    return f"/api/{api_version}"


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """Build the REST path of a collection, an item or an item's subresource."""
    path = api_prefix(api_version)
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name is not None:
        if not name:
            raise ValueError(f"{plural}: an object name is required")
        path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
    elif subresource:
        raise ValueError(f"{plural}: subresource {subresource!r} needs an object name")
    return path


def query_params(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Turn Python values into query strings the api server expects (bools as true/false)."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


class AsyncClosing:
    """Mixin: ``async with obj`` gives ``obj`` and awaits ``obj.aclose()`` on the way out."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release what the object holds; it may be used again afterwards unless it says not."""
        raise NotImplementedError


class ApiClient(AsyncClosing):
    """One connection pool to one api server; hands out ResourceClients.

    The session is created on first use and belongs to that event loop: use one ApiClient per
    event loop (per process, normally), and close it when done.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        timeout: float = 60.0,
        user_agent: str | None = None,
        pool_size: int = 256,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.user_agent = user_agent or f"dockyard/{__version__}"
        self.pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, context: str | None = None) -> ApiClient:
        """Build a client from a kubeconfig, as ``load_kubeconfig`` finds and merges it."""
        return cls(load_kubeconfig(path, context))

    async def __aenter__(self) -> Self:
        self.session()
        return self

    async def close(self) -> None:
        """Close the connection pool; the client can be used again afterwards."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def aclose(self) -> None:
        """Close the connection pool (``close()``, under the name ``async with`` calls)."""
        await self.close()

    def session(self) -> aiohttp.ClientSession:
        """Return the shared aiohttp session, creating it on first use inside the event loop."""
        if self._session is None or self._session.closed:
            ssl_ctx = self.config.ssl_context()
            connector = aiohttp.TCPConnector(
                limit=self.pool_size,
                ssl=ssl_ctx if ssl_ctx is not None else True,
            )
            headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
            if self.config.token:
                headers["Authorization"] = f"Bearer {self.config.token}"
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            )
        return self._session

    def resource(
        self, api_version: str, plural: str, namespace: str | None = None
    ) -> ResourceClient:
        """Return a client for one resource (``namespace=None``: cluster-scoped or all)."""
        return ResourceClient(self, api_version, plural, namespace)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON (or text) body, raise ApiError on failure."""
        reconnect = method.upper() == "GET"
        throttled = 0
        while True:
            try:
                async with self._send(method, path, params, body, content_type, accept,
                                      timeout) as resp:
                    data = await resp.read()
                    return _decode(resp, data)
            except aiohttp.ServerDisconnectedError:
                # A pooled keep-alive connection the server closed (e.g. it restarted): one
                # fresh attempt is safe for a GET.
                if not reconnect:
                    raise self._unreachable(aiohttp.ServerDisconnectedError()) from None
                reconnect = False
            except ApiError as e:
                # 429 (and 5xx with Retry-After) means "not processed, come back later", so
                # even a POST may be sent again, as client-go does (at most MAX_THROTTLED).
                if e.retry_after is None or throttled >= MAX_THROTTLED:
                    raise
                throttled += 1
                await asyncio.sleep(min(e.retry_after, 10.0))

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        read_timeout: float | None = None,
        accept: str | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a streaming response (watch, log follow); raise ApiError if it is not 2xx."""
        try:
            async with self._send(method, path, params, None, None, accept, None,
                                  read_timeout=read_timeout, stream=True) as resp:
                yield resp
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as e:
            raise self._unreachable(e) from e

    @asynccontextmanager
    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        content_type: str | None,
        accept: str | None,
        timeout: float | None,
        *,
        read_timeout: float | None = None,
        stream: bool = False,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        data, headers = _encode_body(body, content_type)
        if accept:
            headers["Accept"] = accept
        if stream:
            client_timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout, sock_read=read_timeout
            )
        else:
            client_timeout = aiohttp.ClientTimeout(
                total=timeout or self.timeout, sock_connect=self.timeout
            )
        url = self.config.server + path
        kwargs: dict[str, Any] = {}
        if self.config.tls_server_name:
            kwargs["server_hostname"] = self.config.tls_server_name
        try:
            async with self.session().request(
                method, url, params=query_params(params), data=data, headers=headers,
                timeout=client_timeout, **kwargs,
            ) as resp:
                if resp.status >= 400:
                    raw = await resp.read()
                    error = error_from_status(resp.status, _try_json(raw),
                                              raw.decode(errors="replace"))
                    error.retry_after = _retry_after(resp)
                    raise error
                yield resp
        except aiohttp.ServerDisconnectedError:
            raise
        except aiohttp.ClientConnectionError as e:
            raise self._unreachable(e) from e

    def _unreachable(self, e: Exception) -> ServerUnreachableError:
        if isinstance(e, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
            return ServerUnreachableError(self.config.server, str(e), kind="tls")
        if isinstance(e, aiohttp.ClientConnectorError):
            return ServerUnreachableError(self.config.server, str(e.os_error or e))
        return ServerUnreachableError(self.config.server, str(e) or type(e).__name__,
                                      kind="lost")


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    if resp.status != 429 and resp.status < 500:
        return None
    value = resp.headers.get("Retry-After")
    if value is None:
        return 1.0 if resp.status == 429 else None
    try:
        return max(0.0, float(value))
    except ValueError:
        return 1.0


def _encode_body(body: Any, content_type: str | None) -> tuple[bytes | None, dict[str, str]]:
    if body is None:
        return None, {}
    if isinstance(body, bytes):
        data = body
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = orjson.dumps(body)
    return data, {"Content-Type": content_type or "application/json"}


def _try_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _decode(resp: aiohttp.ClientResponse, data: bytes) -> Any:
    if not data:
        return {}
    if "json" in resp.content_type:
        return orjson.loads(data)
    return data.decode(errors="replace")


class WatchStream(AsyncClosing):
    """What every watch shares: iterating yields ``_events()`` until the watch is closed.

    Subclasses set ``_gen = None`` and ``_closed = False`` and define ``_events`` and ``aclose``.
    """

    _gen: AsyncGenerator[WatchEvent, None] | None
    _closed: bool

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._gen is None:
            self._gen = self._events()
        return await self._gen.__anext__()

    def _events(self) -> AsyncGenerator[WatchEvent, None]:
        raise NotImplementedError


class Watch(WatchStream):
    """An open watch: iterate it for WatchEvents; ``resource_version`` is the last one seen.

    Use ``async with rc.watch(...) as w: async for ev in w`` (or just ``async for``); leaving
    the block closes the HTTP stream.
    """

    def __init__(self, api: ApiClient, path: str, params: dict[str, Any],
                 read_timeout: float | None) -> None:
        self._api = api
        self._path = path
        self._params = params
        self._read_timeout = read_timeout
        self.resource_version: str | None = params.get("resourceVersion")
        self.events_seen = 0
        self._gen: AsyncGenerator[WatchEvent, None] | None = None
        self._resp: aiohttp.ClientResponse | None = None
        self._closed = False

    async def aclose(self) -> None:
        """Close the HTTP stream; an iteration running in another task then simply ends."""
        self._closed = True
        if self._resp is not None:
            self._resp.close()
        gen, self._gen = self._gen, None
        if gen is not None and not getattr(gen, "ag_running", False):
            await gen.aclose()

    async def _events(self) -> AsyncGenerator[WatchEvent, None]:
        try:
            async with self._api.stream("GET", self._path, params=self._params,
                                        read_timeout=self._read_timeout) as resp:
                self._resp = resp
                async for event in parse_watch_stream(resp.content.iter_any()):
                    if self._closed:
                        return
                    if event.type == "ERROR":
                        obj = event.object
                        raise error_from_status(int(obj.get("code") or 500), obj)
                    rv = (event.object.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self.resource_version = rv
                    if event.type == "BOOKMARK":
                        continue
                    self.events_seen += 1
                    yield event
        except (ServerUnreachableError, aiohttp.ClientError):
            if not self._closed:
                raise  # closed by aclose() from another task: the stream ends quietly


async def parse_watch_stream(chunks: AsyncIterator[bytes]) -> AsyncIterator[WatchEvent]:
    """Split a watch body (chunks of newline-delimited JSON) into WatchEvents."""
    buf = b""
    async for chunk in chunks:
        buf += chunk
        if b"\n" not in chunk:
            continue
        *lines, buf = buf.split(b"\n")
        for line in lines:
            event = _parse_event_line(line)
            if event is not None:
                yield event
    event = _parse_event_line(buf)
    if event is not None:
        yield event


def _parse_event_line(line: bytes) -> WatchEvent | None:
    if len(line) < 8 and not line.strip():  # blank keep-alive lines; JSON allows the rest
        return None
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"watch stream: not a JSON event: {line[:200]!r}") from e
    if not isinstance(doc, dict) or "type" not in doc or not isinstance(doc.get("object"), dict):
        raise ValueError(f"watch stream: event without type/object: {line[:200]!r}")
    return WatchEvent(str(doc["type"]), doc["object"])


class ResourceClient:
    """The REST verbs for one resource (one plural of one group version), maybe in a namespace.

    With ``namespace=None`` on a namespaced resource, list and watch span all namespaces and the
    object-taking verbs (create, update, update_status) use the object's metadata.namespace.
    """

    def __init__(
        self, api: ApiClient, api_version: str, plural: str, namespace: str | None = None
    ) -> None:
        self.api = api
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<ResourceClient {self.api_version} {self.plural}{where}>"

    def in_namespace(self, namespace: str | None) -> ResourceClient:
        """Return the same resource's client for another namespace."""
        return ResourceClient(self.api, self.api_version, self.plural, namespace)

    def path(self, name: str | None = None, subresource: str | None = None,
             namespace: str | None = None) -> str:
        """Return the REST path of the collection, an item or an item's subresource."""
        return resource_path(self.api_version, self.plural, namespace or self.namespace,
                             name, subresource)

    def _obj_path(self, obj: Obj, subresource: str | None = None, item: bool = True) -> str:
        meta = obj.get("metadata") or {}
        namespace = self.namespace or meta.get("namespace")
        name = meta.get("name") if item else None
        if item and not name:
            raise ValueError(f"{self.plural}: the object has no metadata.name")
        return resource_path(self.api_version, self.plural, namespace, name, subresource)

    async def get(self, name: str) -> Obj:
        """Read one object by name."""
        obj: Obj = await self.api.request("GET", self.path(name))
        return obj

    async def list(
        self,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        resource_version: str | None = None,
    ) -> ObjectList:
        """List objects, following ``continue`` tokens; ``limit`` is the page size."""
        params: dict[str, Any] = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "resourceVersion": resource_version,
        }
        items: list[Obj] = []
        while True:
            page: Obj = await self.api.request("GET", self.path(), params=params)
            meta = page.get("metadata") or {}
            items.extend(page.get("items") or [])
            token = meta.get("continue")
            if not token:
                break
            # A continue token carries the snapshot; resourceVersion may not be combined.
            params = {**params, "continue": token, "resourceVersion": None}
        kind = str(page.get("kind") or "")
        api_version = str(page.get("apiVersion") or self.api_version)
        _fill_type(items, kind, api_version)
        return ObjectList(items, str(meta.get("resourceVersion") or ""), kind, api_version, meta)

    async def create(self, obj: Obj, dry_run: bool = False,
                     field_manager: str | None = None) -> Obj:
        """Create an object (POST to its collection)."""
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        created: Obj = await self.api.request(
            "POST", self._obj_path(obj, item=False), params=params, body=obj
        )
        return created

    async def update(self, obj: Obj, dry_run: bool = False,
                     field_manager: str | None = None) -> Obj:
        """Replace an object (PUT); the server rejects a stale resourceVersion with 409."""
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        updated: Obj = await self.api.request("PUT", self._obj_path(obj), params=params,
                                              body=obj)
        return updated

    async def update_status(self, obj: Obj, field_manager: str | None = None) -> Obj:
        """Replace an object's status (PUT to /status), compare-and-swap on resourceVersion."""
        updated: Obj = await self.api.request(
            "PUT", self._obj_path(obj, "status"), params={"fieldManager": field_manager},
            body=obj,
        )
        return updated

    async def patch(
        self,
        name: str,
        body: Any,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Patch an object (or its subresource) with a merge, strategic, json or apply patch."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"patch type {patch_type!r}: use one of "
                             f"{', '.join(PATCH_CONTENT_TYPES)}")
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        if force is not None and patch_type != "apply":
            raise ValueError("force is only valid with patch_type='apply'")
        params = {"fieldManager": field_manager, "force": force,
                  "dryRun": "All" if dry_run else None}
        patched: Obj = await self.api.request(
            "PATCH", self.path(name, subresource), params=params, body=body,
            content_type=PATCH_CONTENT_TYPES[patch_type],
        )
        return patched

    async def delete(
        self,
        name: str,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        preconditions: Mapping[str, str] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete an object; return what the server answers (the object or a Status)."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            options["preconditions"] = dict(preconditions)
        if dry_run:
            options["dryRun"] = ["All"]
        result: Obj = await self.api.request("DELETE", self.path(name), body=options)
        return result

    async def delete_collection(
        self,
        label_selector: str | None = None,
        field_selector: str | None = None,
        propagation_policy: str | None = None,
    ) -> Obj:
        """Delete every object of the collection that matches the selectors."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        params = {"labelSelector": label_selector, "fieldSelector": field_selector}
        result: Obj = await self.api.request("DELETE", self.path(), params=params, body=options)
        return result

    def watch(
        self,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> Watch:
        """Open a watch from a resourceVersion (None: current objects first, as ADDED)."""
        params: dict[str, Any] = {
            "watch": True,
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": True if allow_bookmarks else None,
        }
        # Without a server-side timeout a dead peer is only noticed by TCP; with one, a silent
        # stream well past it means the server is gone.
        read_timeout = timeout_seconds + 30.0 if timeout_seconds else None
        return Watch(self.api, self.path(), params, read_timeout)

    async def get_subresource(self, name: str, subresource: str) -> Obj:
        """Read a subresource (e.g. scale, status)."""
        obj: Obj = await self.api.request("GET", self.path(name, subresource))
        return obj

    async def create_subresource(self, name: str, subresource: str, body: Obj) -> Obj:
        """POST to a subresource (binding, eviction)."""
        obj: Obj = await self.api.request("POST", self.path(name, subresource), body=body)
        return obj

    async def update_subresource(self, name: str, subresource: str, body: Obj) -> Obj:
        """PUT a subresource (e.g. scale)."""
        obj: Obj = await self.api.request("PUT", self.path(name, subresource), body=body)
        return obj

    @overload
    def read_log(self, name: str, container: str | None = None,
                 follow: Literal[False] = False, tail_lines: int | None = None,
                 previous: bool = False, timestamps: bool = False) -> _LogText: ...

    @overload
    def read_log(self, name: str, container: str | None = None, *,
                 follow: Literal[True], tail_lines: int | None = None,
                 previous: bool = False, timestamps: bool = False) -> AsyncIterator[bytes]: ...

    def read_log(self, name: str, container: str | None = None, follow: bool = False,
                 tail_lines: int | None = None, previous: bool = False,
                 timestamps: bool = False) -> _LogText | AsyncIterator[bytes]:
        """Read a pod's log: ``await`` it for text, or ``async for`` chunks with follow=True."""
        params = {"container": container, "follow": True if follow else None,
                  "tailLines": tail_lines, "previous": True if previous else None,
                  "timestamps": True if timestamps else None}
        path = self.path(name, "log")
        if follow:
            return self._follow_log(path, params)
        return _LogText(self.api, path, params)

    async def _follow_log(self, path: str, params: dict[str, Any]) -> AsyncIterator[bytes]:
        async with self.api.stream("GET", path, params=params, accept="*/*") as resp:
            async for chunk in resp.content.iter_any():
                yield chunk


class _LogText:
    """An awaitable that reads a whole (non-follow) log as text."""

    def __init__(self, api: ApiClient, path: str, params: dict[str, Any]) -> None:
        self._api, self._path, self._params = api, path, params

    def __await__(self) -> Generator[Any, None, str]:
        return self._read().__await__()

    async def _read(self) -> str:
        async with self._api.stream("GET", self._path, params=self._params,
                                    read_timeout=self._api.timeout, accept="*/*") as resp:
            return (await resp.read()).decode(errors="replace")


def _fill_type(items: list[Obj], list_kind: str, api_version: str) -> None:
    if not list_kind.endswith("List"):
        return
    kind = list_kind[: -len("List")]
    for item in items:
        if "kind" not in item:
            item["kind"] = kind
        if "apiVersion" not in item:
            item["apiVersion"] = api_version
