"""Event recording: core/v1 Events about objects, as client-go's EventRecorder writes them.

``recorder.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available: ...")`` returns at
once; a background task writes the Event. Identical events (same involvedObject, type, reason,
message and source) seen again within 10 minutes are aggregated into the existing Event by
patching its ``count`` and ``lastTimestamp`` instead of creating another, which keeps a
crash-looping pod from flooding the store.

Invariants: recording never raises into the caller and never blocks it (errors are logged; when
more than ``queue_size`` events are waiting, new ones are dropped with a warning). Events are
written one at a time in the order recorded, so the create/patch of one Event never races.
Event names follow Kubernetes: ``<object name>.<unix nanoseconds in hex>``; an Event about a
cluster-scoped object lives in the ``default`` namespace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.client.api import ApiClient, Obj
from dockyard.client.errors import NotFoundError

log = logging.getLogger(__name__)

AGGREGATE_WINDOW = 600.0  # seconds: identical events within 10 minutes share one Event
_CACHE_SIZE = 4096
_MAX_MESSAGE = 1024


@dataclass
class _Seen:
    namespace: str
    name: str
    count: int
    last_seen: float


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def involved_object(obj: Obj) -> Obj:
    """Return the ObjectReference of an object, for Event.involvedObject."""
    meta = obj.get("metadata") or {}
    ref: Obj = {"kind": obj.get("kind", ""), "name": meta.get("name", "")}
    if obj.get("apiVersion"):
        ref["apiVersion"] = obj["apiVersion"]
    for fieldname in ("namespace", "uid", "resourceVersion"):
        if meta.get(fieldname):
            ref[fieldname] = meta[fieldname]
    return ref


class EventRecorder:
    """Writes Events for one component on one host; fire-and-forget."""

    def __init__(
        self,
        api: ApiClient,
        component: str,
        host: str | None = None,
        queue_size: int = 1000,
    ) -> None:
        self.api = api
        self.component = component
        self.host = host or ""
        self._queue: asyncio.Queue[tuple[Obj, str, str, str, float]] | None = None
        self._queue_size = queue_size
        self._worker: asyncio.Task[None] | None = None
        self._seen: OrderedDict[tuple[Any, ...], _Seen] = OrderedDict()

    def event(self, obj: Obj, type: str, reason: str, message: str) -> None:
        """Record an Event about obj (type Normal or Warning); never raises, never blocks."""
        try:
            self._enqueue((obj, type, reason, message[:_MAX_MESSAGE], time.time()))
        except Exception:
            log.exception("event %s %s on %s not recorded", type, reason,
                          (obj.get("metadata") or {}).get("name"))

    def _enqueue(self, item: tuple[Obj, str, str, str, float]) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue(self._queue_size)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name=f"events-{self.component}"
            )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s", item[1], item[2])

    async def flush(self) -> None:
        """Wait until every recorded event has been written (or failed)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        """Write what is queued, then stop the background task."""
        await self.flush()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            try:
                await self.write(*item)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("event %s %s not written: %s", item[1], item[2], e)
            finally:
                self._queue.task_done()

    async def write(self, obj: Obj, type: str, reason: str, message: str,
                    now: float | None = None) -> Obj:
        """Create the Event, or bump the count of an identical recent one; return it."""
        now = time.time() if now is None else now
        ref = involved_object(obj)
        key = (ref.get("kind"), ref.get("namespace"), ref.get("name"), ref.get("uid"),
               type, reason, message)
        seen = self._seen.get(key)
        if seen is not None and now - seen.last_seen <= AGGREGATE_WINDOW:
            try:
                return await self._bump(key, seen, now)
            except NotFoundError:
                pass  # the Event was deleted (TTL); start a new one
        return await self._create(key, ref, type, reason, message, now)

    async def _bump(self, key: tuple[Any, ...], seen: _Seen, now: float) -> Obj:
        events = self.api.resource("v1", "events", seen.namespace)
        patch = {"count": seen.count + 1, "lastTimestamp": _timestamp(now)}
        updated = await events.patch(seen.name, patch, "merge")
        seen.count += 1
        seen.last_seen = now
        self._seen.move_to_end(key)
        return updated

    async def _create(self, key: tuple[Any, ...], ref: Obj, type: str, reason: str,
                      message: str, now: float) -> Obj:
        namespace = ref.get("namespace") or "default"
        stamp = _timestamp(now)
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref['name']}.{int(now * 1e9):x}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        created = await self.api.resource("v1", "events", namespace).create(event)
        meta = created.get("metadata") or {}
        self._seen[key] = _Seen(namespace, meta.get("name", event["metadata"]["name"]), 1, now)
        self._seen.move_to_end(key)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
        return created
