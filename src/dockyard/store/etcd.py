"""The distributed Store: etcd v3 through its JSON gRPC gateway, spoken with aiohttp.

etcd already is the revisioned store the protocol describes (the protocol is written in its
terms), so this module only translates: keys and values travel base64-encoded in JSON
(``POST /v3/kv/range``, ``/v3/kv/txn``, ``/v3/kv/compaction``, ``/v3/watch``), int64 fields as
strings, and fields equal to their default (``false``, ``0``, ``PUT``, an empty value) are left
out of answers. The gateway needs no generated gRPC code and aiohttp is already a dependency.

Mapping:
- ``create``: a txn comparing the key's create_revision to 0, then put.
- ``update``/``delete``: a txn comparing mod_revision to the expected one (or create_revision
  > 0 when unconditional), else a range of the key to tell ``NotFoundError`` from
  ``ConflictError``. A failed comparison changes nothing and takes no revision.
- ``watch``: served by the watch cache (etcd_watch_cache.py), one streaming ``/v3/watch`` on
  every key for the whole process, when its ring of recent events reaches back to
  ``after_revision``; otherwise a ``/v3/watch`` of its own from ``after_revision + 1``. Both ask
  for ``prev_kv``: a DELETE event carries the last value with the delete's revision.
- Compaction: etcd's compact(X) keeps revision X watchable; our mark C means "history up to C
  is gone, a watch after C works", so compacting to C asks etcd for X = C + 1 (capped at the
  current revision). A timer compacts to the revision that was current ``history_seconds`` ago,
  as the Kubernetes api server does for etcd.

Endpoints and TLS: ``open`` takes one client URL or several (members of one cluster); calls go
to the first that answers and move to the next only when a connection cannot be made (so a
request is never sent twice). ``https://`` URLs take an ``ssl.SSLContext`` carrying etcd's CA
and, when etcd checks clients (``--client-cert-auth``), our client certificate and key.

Invariants are the protocol's (see base.py); the contract suite runs against a real etcd.
Memory stays bounded for slow watchers: a watch served by the watch cache (etcd_watch_cache.py)
is ended with ``WatchTooSlowError`` once WATCH_QUEUE_LIMIT events wait for it (fanout.py), and
the cache's ring is capped in events and bytes; a dedicated etcd watch is held back by TCP
back-pressure (etcd buffers and, past its own limits, cancels it: ``StoreError`` here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from dockyard.store.base import (
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    FutureRevisionError,
    KeyValue,
    NotFoundError,
    Store,
    StoreError,
    ValueTooLargeError,
    WatchEvent,
)
from dockyard.store.etcd_watch_cache import Subscription, WatchCache
from dockyard.store.history import CompactionTimer, HistoryClock
from dockyard.store.keys import check_key, check_limit, check_put, prefix_end
from dockyard.store.watching import QueuedWatch

log = logging.getLogger(__name__)
CALL_CONNECTIONS = 32  # kept-alive connections for unary calls; more only queue inside etcd
CONNECT_SECONDS = 5.0  # a member that takes longer to accept a connection counts as unreachable
# Unary calls: a bounded connect, then no more than aiohttp's default total.
CALL_TIMEOUT = aiohttp.ClientTimeout(total=300, sock_connect=CONNECT_SECONDS)

Json = dict[str, Any]


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def _unb64(field: str | None) -> bytes:
    return base64.b64decode(field) if field else b""


def _key_value(kv: Json) -> KeyValue:
    return KeyValue(
        _unb64(kv.get("key")).decode(),
        _unb64(kv.get("value")),
        int(kv.get("create_revision", 0)),
        int(kv.get("mod_revision", 0)),
    )


def _range_of(prefix: str) -> Json:
    """Return the key and range_end selecting every key under prefix."""
    end = prefix_end(prefix)
    # etcd: key "\0" with range_end "\0" means every key.
    return {"key": _b64(prefix or "\0"), "range_end": _b64(end if end is not None else "\0")}


def _event(raw: Json) -> WatchEvent:
    kv = raw["kv"]
    prev = _key_value(raw["prev_kv"]) if raw.get("prev_kv") else None
    revision = int(kv.get("mod_revision", 0))
    if raw.get("type") == "DELETE":
        key = _unb64(kv.get("key")).decode()
        value = prev.value if prev else b""
        create = prev.create_revision if prev else 0
        return WatchEvent("DELETE", KeyValue(key, value, create, revision), prev, revision)
    return WatchEvent("PUT", _key_value(kv), prev, revision)


class EtcdStore:
    """A Store kept in an etcd cluster, reached through one client URL's JSON gateway."""

    def __init__(
        self, endpoints: Sequence[str], session: aiohttp.ClientSession, history_seconds: float,
        revision: int, compacted: int, ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.endpoint = self.endpoints[0]  # the member calls go to until it cannot be reached
        self._session = session
        # Watches hold their connection for as long as they run: a pool of their own without a
        # limit, so they never starve the bounded pool of short calls (or the reverse).
        self._watch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=_ssl_arg(ssl_context))
        )
        self._compacted = compacted
        self._streams: set[aiohttp.ClientResponse] = set()
        self._closed = False
        self._cache = WatchCache(lambda after: EtcdStream(self, "", after))
        self._compactor = CompactionTimer(
            self, history_seconds, revision, compacted, "dockyard-etcd-compact"
        )

    @classmethod
    async def open(
        cls, endpoints: str | Sequence[str], *, history_seconds: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> EtcdStore:
        """Connect to etcd's client URL(s) (e.g. http://127.0.0.1:2379) and check one answers.

        Raises StoreError "cannot reach etcd at URL: why" when none does.
        """
        HistoryClock(history_seconds, 0)  # validates history_seconds before any connection
        urls = [endpoints] if isinstance(endpoints, str) else list(endpoints)
        if not urls:
            raise StoreError("no etcd endpoint given")
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CALL_CONNECTIONS, ssl=_ssl_arg(ssl_context)),
            timeout=CALL_TIMEOUT,
        )
        try:
            urls, revision = await _first_answering(urls, session)
            compacted = await _Gateway(urls[0], session).find_compacted(revision)
        except BaseException:
            await session.close()
            raise
        return cls(urls, session, history_seconds, revision, compacted, ssl_context)

    async def __aenter__(self) -> EtcdStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, path: str, body: Json) -> Json:
        failures: list[str] = []
        for _ in self.endpoints:
            if self._closed:
                raise StoreError("the store is closed")
            endpoint = self.endpoint
            try:
                return await _Gateway(endpoint, self._session).call(path, body)
            except UnreachableError as err:
                self.next_endpoint(endpoint)
                failures.append(str(err))
        raise UnreachableError("; ".join(failures))

    def next_endpoint(self, failed: str) -> None:
        """Move calls to the member after failed (no-op if another call moved them already)."""
        if self.endpoint == failed:
            self.endpoint = self.endpoints[(self.endpoints.index(failed) + 1) % len(self.endpoints)]
            if len(self.endpoints) > 1:
                log.warning("etcd at %s cannot be reached: using %s", failed, self.endpoint)

    # -- reads ------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        """Return the key's current value, or None."""
        answer = await self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = answer.get("kvs") or []
        return _key_value(kvs[0]) if kvs else None

    async def list(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> tuple[list[KeyValue], int, bool]:
        """Return (items under prefix in key order, the revision served, whether more remain).

        A nonzero ``revision`` reads etcd's snapshot at that revision (a consistent paged
        list); CompactedError if it is compacted, FutureRevisionError if not reached.
        """
        check_limit(limit)
        body = _range_of(prefix)
        if start_after and start_after >= prefix:
            body["key"] = _b64(start_after + "\0")
        if limit:
            body["limit"] = limit
        if revision:
            body["revision"] = revision
        try:
            answer = await self._call("/v3/kv/range", body)
        except CompactedError as err:
            raise CompactedError(revision, self._compacted) from err
        items = [_key_value(kv) for kv in answer.get("kvs") or []]
        served = revision or int(answer["header"]["revision"])
        return items, served, bool(answer.get("more"))

    async def current_revision(self) -> int:
        """Return the latest revision."""
        return int((await self._call("/v3/kv/range", _REVISION_PROBE))["header"]["revision"])

    async def stats(self) -> dict[str, int]:
        """Return figures for /metrics: keys, size in bytes, revision, compacted revision."""
        counted = await self._call("/v3/kv/range", {**_range_of(""), "count_only": True})
        status = await self._call("/v3/maintenance/status", {})
        return {
            "keys": int(counted.get("count", 0)),
            "db_size_bytes": int(status.get("dbSize", 0)),
            "revision": int(counted["header"]["revision"]),
            "compacted_revision": self._compacted,
        }

    # -- writes -----------------------------------------------------------------------------

    async def _txn(self, compare: Json, success: Json, key: str) -> tuple[Json, bool]:
        compare["key"] = _b64(key)
        answer = await self._call(
            "/v3/kv/txn",
            {
                "compare": [compare],
                "success": [success],
                "failure": [{"request_range": {"key": _b64(key)}}],
            },
        )
        return answer, bool(answer.get("succeeded"))

    @staticmethod
    def _guard(expected: int) -> Json:
        if expected:
            return {"target": "MOD", "result": "EQUAL", "mod_revision": expected}
        return {"target": "CREATE", "result": "GREATER", "create_revision": 0}

    @staticmethod
    def _why_failed(answer: Json, key: str, expected: int) -> StoreError:
        found = (answer.get("responses") or [{}])[0].get("response_range", {}).get("kvs")
        if not found:
            return NotFoundError(f"key {key!r} not found")
        at = int(found[0].get("mod_revision", 0))
        return ConflictError(f"key {key!r} is at revision {at}, not the expected {expected}")

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key; raise AlreadyExistsError if present."""
        check_put(key, value)
        answer, ok = await self._txn(
            {"target": "CREATE", "result": "EQUAL", "create_revision": 0},
            {"request_put": {"key": _b64(key), "value": _b64(value)}},
            key,
        )
        if not ok:
            raise AlreadyExistsError(f"key {key!r} already exists")
        revision = int(answer["header"]["revision"])
        return KeyValue(key, value, revision, revision)

    async def update(self, key: str, value: bytes, expected_revision: int) -> KeyValue:
        """Replace the value if mod_revision equals expected_revision (0 = unconditional)."""
        check_put(key, value)
        answer, ok = await self._txn(
            self._guard(expected_revision),
            {"request_put": {"key": _b64(key), "value": _b64(value), "prev_kv": True}},
            key,
        )
        if not ok:
            raise self._why_failed(answer, key, expected_revision)
        put = answer["responses"][0]["response_put"]
        revision = int(answer["header"]["revision"])
        create = int(put.get("prev_kv", {}).get("create_revision", revision))
        return KeyValue(key, value, create, revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Delete the key (CAS when expected_revision is nonzero); return the deleted value
        with mod_revision set to the delete's revision."""
        check_key(key)
        answer, ok = await self._txn(
            self._guard(expected_revision),
            {"request_delete_range": {"key": _b64(key), "prev_kv": True}},
            key,
        )
        if not ok:
            raise self._why_failed(answer, key, expected_revision)
        gone = answer["responses"][0]["response_delete_range"]
        prev = _key_value(gone["prev_kvs"][0])
        return KeyValue(key, prev.value, prev.create_revision, int(answer["header"]["revision"]))

    async def compact(self, revision: int) -> int:
        """Drop history at and below revision (capped below the current one); return the mark."""
        target = min(revision + 1, await self.current_revision())
        if target - 1 <= self._compacted:
            return self._compacted
        # CompactedError: someone compacted further already; the mark below is still true.
        with contextlib.suppress(CompactedError):
            await self._call("/v3/kv/compaction", {"revision": target})
        self._compacted = max(self._compacted, target - 1)
        return self._compacted

    # -- watch ------------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> EtcdWatch:
        """Return changes under prefix after after_revision, then live changes, until closed.

        Iterating raises CompactedError if after_revision is below the compacted revision,
        FutureRevisionError if above the current one, WatchTooSlowError if the consumer falls
        too far behind the watch cache. See EtcdWatch.
        """
        return EtcdWatch(self, prefix, after_revision)

    def watcher_count(self) -> int:
        """Return how many watches the watch cache serves."""
        return self._cache.watcher_count()

    # -- compaction and shutdown ---------------------------------------------------------------

    async def close(self) -> None:
        """End every watch and close the HTTP sessions."""
        if self._closed:
            return
        self._closed = True
        await self._compactor.stop()
        await self._cache.close()
        for response in list(self._streams):
            response.close()
        await self._session.close()
        await self._watch_session.close()


class EtcdWatch(QueuedWatch):
    """One watch: from the watch cache when its ring covers the revision, else from etcd.

    A cancelled ``__anext__`` loses nothing (see watching.py): the events not yet queued here
    stay in the cache's watcher or the etcd connection. The revision checks run on the first
    ``__anext__``; ``aclose`` ends the watch.
    """

    def __init__(self, store: EtcdStore, prefix: str, after_revision: int) -> None:
        super().__init__(prefix, after_revision)
        self._store = store
        self._subscription: Subscription | None = None
        self._direct: EtcdStream | None = None

    def _store_closed(self) -> bool:
        return self._store._closed

    async def _fill(self) -> None:
        if self._direct is not None:
            self._queue([await anext(self._direct)])  # StopAsyncIteration ends us as well
        elif self._subscription is None:
            await self._start()
        else:
            await self._take(self._subscription)

    async def _start(self) -> None:
        self._refuse_future(await self._store.current_revision())
        if self._after < self._store._compacted:
            raise CompactedError(self._after, self._store._compacted)
        subscription = self._store._cache.subscribe(self._prefix, self._after)
        if subscription is None:  # older than the cache's ring: etcd has the history
            self._direct = EtcdStream(self._store, self._prefix, self._after)
            return
        self._subscription = subscription
        self._queue(subscription.replay)

    async def _take(self, subscription: Subscription) -> None:
        events = await subscription.watcher.get()
        if events:
            self._queue(events)
            return
        error = subscription.stream.error
        self._finished = True
        if error is not None and not self._store._closed:
            if isinstance(error, CompactedError):
                raise CompactedError(self._upto, error.oldest) from error
            raise StoreError(f"etcd watch on {self._prefix!r} broke: {error}") from error

    async def aclose(self) -> None:
        """End the watch (safe to call twice)."""
        await super().aclose()
        if self._subscription is not None:
            self._subscription.close()
        if self._direct is not None:
            await self._direct.aclose()


class EtcdStream(QueuedWatch):
    """One streaming ``/v3/watch`` call, its JSON lines turned into WatchEvents.

    A cancelled ``__anext__`` loses nothing (see watching.py): unread bytes stay in the
    connection. The request is sent on the first ``__anext__``; ``aclose`` ends it.
    """

    def __init__(self, store: EtcdStore, prefix: str, after_revision: int) -> None:
        super().__init__(prefix, after_revision)
        self._store = store
        self._buffer = bytearray()
        self._response: aiohttp.ClientResponse | None = None

    def _store_closed(self) -> bool:
        return self._store._closed

    async def _fill(self) -> None:
        try:
            if self._response is None:
                await self._start()
            await self._read_more()
        except (aiohttp.ClientError, asyncio.IncompleteReadError, ConnectionError,
                json.JSONDecodeError, TimeoutError) as err:
            raise StoreError(f"etcd watch on {self._prefix!r} broke: {err}") from err

    async def _start(self) -> None:
        self._refuse_future(await self._store.current_revision())
        request = {
            **_range_of(self._prefix), "start_revision": self._after + 1, "prev_kv": True
        }
        endpoint = self._store.endpoint
        try:
            response = await self._store._watch_session.post(
                f"{endpoint}/v3/watch",
                json={"create_request": request},
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_read=None, sock_connect=CONNECT_SECONDS
                ),
            )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError):
            self._store.next_endpoint(endpoint)  # the watch's next start tries another member
            raise
        self._response = response
        self._store._streams.add(response)
        if response.status != 200:
            raise StoreError(f"etcd watch answered {response.status}: {await response.text()}")

    async def _read_more(self) -> None:
        assert self._response is not None
        chunk = await self._response.content.readany()
        if not chunk:
            if self._store._closed:
                self._finished = True
                return
            raise StoreError(f"etcd ended the watch on {self._prefix!r}")
        self._buffer += chunk
        # One JSON message per line; values up to 1.5 MiB make lines longer than readline()
        # allows, so lines are cut here.
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            if line.strip():
                self._take_message(json.loads(line))

    def _take_message(self, message: Json) -> None:
        if "error" in message:
            raise StoreError(f"etcd watch failed: {message['error']}")
        result = message.get("result", {})
        if result.get("canceled"):
            compact = int(result.get("compact_revision", 0))
            if compact:
                self._store._compacted = max(self._store._compacted, compact - 1)
                raise CompactedError(self._upto, compact - 1)
            raise StoreError(f"etcd cancelled the watch: {result.get('cancel_reason', '')}")
        self._queue(_event(raw) for raw in result.get("events") or [])

    async def aclose(self) -> None:
        """End the watch and its request (safe to call twice)."""
        await super().aclose()
        if self._response is not None:
            self._store._streams.discard(self._response)
            self._response.close()


class UnreachableError(StoreError):
    """No connection could be made to an etcd member (the request was never sent)."""


_REVISION_PROBE: Json = {"key": _b64("\0"), "count_only": True, "limit": 1}


def _ssl_arg(context: ssl.SSLContext | None) -> ssl.SSLContext | bool:
    """Return aiohttp's ssl argument: the context, or True (default checks) for https:// URLs."""
    return context if context is not None else True


async def _first_answering(urls: list[str], session: aiohttp.ClientSession
                           ) -> tuple[list[str], int]:  # fmt: skip
    """Return the URLs with the first member that answers moved to the front, and its revision."""
    failures = []
    for index, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            raise StoreError(f"etcd endpoint {url!r} must start with http:// or https://")
        try:
            revision = await _Gateway(url, session).revision()
        except UnreachableError as err:
            failures.append(str(err))
            continue
        except StoreError as err:  # e.g. our client certificate refused after the handshake
            failures.append(f"cannot reach etcd at {url}: {err}")
            continue
        return [url, *urls[index + 1:], *urls[:index]], revision
    raise UnreachableError("; ".join(failures))


class _Gateway:
    """Calls to one etcd client URL, with etcd's errors turned into Store errors."""

    def __init__(self, endpoint: str, session: aiohttp.ClientSession) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._session = session

    async def call(self, path: str, body: Json) -> Json:
        """POST body to path; return the answer, raising the matching StoreError."""
        try:
            async with self._session.post(f"{self._endpoint}{path}", json=body) as response:
                answer: Json = await response.json(content_type=None)
        except aiohttp.ClientConnectorCertificateError as err:
            # Not "unreachable": another member would refuse us the same way.
            raise StoreError(f"etcd at {self._endpoint}: TLS verification failed: {err}") from err
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as err:
            # No connection, so the request was never sent: safe to send to another member.
            raise UnreachableError(
                f"cannot reach etcd at {self._endpoint}: {err or type(err).__name__}"
            ) from err
        except (aiohttp.ClientError, json.JSONDecodeError) as err:
            raise StoreError(f"etcd {path} at {self._endpoint} failed: {err}") from err
        except TimeoutError as err:  # the session's total timeout: sent, answer unknown
            raise StoreError(f"etcd {path} at {self._endpoint} timed out") from err
        if response.status != 200 or "error" in answer:
            raise self._error(path, answer)
        return answer

    @staticmethod
    def _error(path: str, answer: Json) -> StoreError:
        message = str(answer.get("message") or answer.get("error") or answer)
        if "required revision has been compacted" in message:
            return CompactedError(0, 0)
        if "required revision is a future revision" in message:
            return FutureRevisionError(f"etcd {path}: {message}")
        if "request is too large" in message:
            return ValueTooLargeError(f"etcd {path}: {message}")
        return StoreError(f"etcd {path}: {message}")

    async def revision(self) -> int:
        """Return etcd's current revision."""
        answer = await self.call("/v3/kv/range", _REVISION_PROBE)
        return int(answer["header"]["revision"])

    async def find_compacted(self, current: int) -> int:
        """Return our compacted mark: one below the oldest revision etcd can still read."""
        low, high = 1, max(1, current)  # the oldest readable revision is in [low, high]
        while low < high:
            middle = (low + high) // 2
            try:
                await self.call("/v3/kv/range", {"key": _b64("\0"), "revision": middle})
            except CompactedError:
                low = middle + 1
            else:
                high = middle
        return low - 1


if TYPE_CHECKING:

    def _conforms(store: EtcdStore) -> Store:
        """Make mypy check that EtcdStore implements the Store protocol."""
        return store
