"""Informers: a list + watch of one resource kept as a local cache, as client-go's shared informer.

An ``Informer`` lists the resource, then watches from the list's resourceVersion, applying each
event to its cache and then telling every registered handler (on_add(obj), on_update(old, new),
on_delete(obj)). Handlers may be plain functions or coroutines; they run in the informer's task,
in event order, so they should be quick (typically: put the object's key on a WorkQueue).

Invariants:
- The cache holds the server's objects as received. ``get``/``list``/``by_index`` return the
  cached dicts themselves, not copies (copying every read would dominate a controller's CPU):
  callers MUST copy (``copy.deepcopy``) before modifying anything they got from an informer.
- A watch that ends (server timeout, dropped connection) is reopened from the last
  resourceVersion seen (events and BOOKMARKs), so no event is missed or repeated.
- A 410 Gone (the resourceVersion is too old) triggers a full re-list; the new list is diffed
  against the cache, so handlers see an add, update or delete for exactly what changed while
  the informer was not watching.
- Failures back off 1 s, doubling to 30 s; any successful list or useful watch resets it.
- With ``resync_period``, every cached object is passed to on_update(obj, obj) periodically,
  so level-triggered controllers re-check everything now and then.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dockyard.client.api import ApiClient, Obj, ResourceClient, WatchEvent
from dockyard.client.errors import GoneError
from dockyard.client.workqueue import WorkQueue

log = logging.getLogger(__name__)

Handler = Callable[..., Any]
IndexFunc = Callable[[Obj], Iterable[str]]


def object_key(obj: Obj) -> str:
    """Return the cache/work-queue key of an object: ``namespace/name``, or ``name``."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name', '')}" if namespace else str(meta.get("name", ""))


def split_key(key: str) -> tuple[str | None, str]:
    """Split a key into (namespace or None, name)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def resource_version_of(obj: Obj) -> str:
    """Return an object's metadata.resourceVersion ('' if absent)."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class CacheDiff:
    """What changed between a cache and a fresh list: what handlers must be told."""

    added: list[Obj] = field(default_factory=list)
    updated: list[tuple[Obj, Obj]] = field(default_factory=list)
    deleted: list[Obj] = field(default_factory=list)


def diff_cache(cache: dict[str, Obj], items: Iterable[Obj]) -> tuple[dict[str, Obj], CacheDiff]:
    """Diff a cache against a fresh list; return the new cache and the adds/updates/deletes."""
    fresh: dict[str, Obj] = {}
    diff = CacheDiff()
    for obj in items:
        key = object_key(obj)
        fresh[key] = obj
        old = cache.get(key)
        if old is None:
            diff.added.append(obj)
        elif resource_version_of(old) != resource_version_of(obj):
            diff.updated.append((old, obj))
    diff.deleted = [obj for key, obj in cache.items() if key not in fresh]
    return fresh, diff


@dataclass
class _Handlers:
    on_add: Handler | None
    on_update: Handler | None
    on_delete: Handler | None


class Backoff:
    """Exponential backoff: ``initial`` seconds doubling to ``maximum``; reset on success."""

    def __init__(self, initial: float = 1.0, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        """Return the delay to wait now and double the following one."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay."""
        self._next = self.initial


class Informer:
    """List + watch + local cache of one resource, telling handlers about every change."""

    def __init__(
        self,
        resource: ResourceClient,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resync_period: float | None = None,
        page_size: int = 500,
        name: str | None = None,
    ) -> None:
        self.resource = resource
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.name = name or resource.plural
        self.resource_version = ""
        self.backoff = Backoff(1.0, 30.0)
        self._cache: dict[str, Obj] = {}
        self._handlers: list[_Handlers] = []
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._synced = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # ---- handlers and lifecycle -------------------------------------------------------

    def add_handler(
        self,
        on_add: Handler | None = None,
        on_update: Handler | None = None,
        on_delete: Handler | None = None,
    ) -> None:
        """Register callbacks; once synced, a new handler first gets on_add for each object."""
        handlers = _Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if self.has_synced and on_add is not None:
            # Replay what the cache holds, as client-go does for a late handler.
            snapshot = list(self._cache.values())
            task = asyncio.get_running_loop().create_task(self._replay(on_add, snapshot))
            self._tasks.append(task)

    def enqueue_to(self, queue: WorkQueue, key_func: Callable[[Obj], str] = object_key) -> None:
        """Register handlers that put the key of every added, updated or deleted object on queue."""
        def enqueue(*objs: Obj) -> None:
            queue.add(key_func(objs[-1]))

        self.add_handler(on_add=enqueue, on_update=enqueue, on_delete=enqueue)

    async def _replay(self, on_add: Handler, objs: list[Obj]) -> None:
        for obj in objs:
            await _call(on_add, obj)

    async def start(self) -> None:
        """Start listing and watching in the background (returns at once; see wait_for_sync)."""
        if any(not t.done() for t in self._tasks):
            return
        self._tasks = [asyncio.create_task(self._run(), name=f"informer-{self.name}")]
        if self.resync_period:
            self._tasks.append(
                asyncio.create_task(self._resync_loop(), name=f"informer-{self.name}-resync")
            )

    async def stop(self) -> None:
        """Stop the watch and resync tasks; the cache stays readable."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def has_synced(self) -> bool:
        """Tell whether the first list is in the cache and has been passed to the handlers."""
        return self._synced.is_set()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until the first list is in the cache; return False on timeout."""
        try:
            await asyncio.wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- cache reads (never modify what these return: copy first) ---------------------

    def get(self, namespace: str | None, name: str) -> Obj | None:
        """Return the cached object (not a copy: copy before modifying), or None."""
        return self._cache.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> Obj | None:
        """Return the cached object for a ``namespace/name`` key (not a copy), or None."""
        return self._cache.get(key)

    def list(self, namespace: str | None = None) -> list[Obj]:
        """Return the cached objects (not copies), optionally only one namespace's."""
        if namespace is None:
            return list(self._cache.values())
        prefix = namespace + "/"
        return [obj for key, obj in self._cache.items() if key.startswith(prefix)]

    def keys(self) -> builtins.list[str]:
        """Return the keys of all cached objects."""
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Index the cache by ``func(obj)`` values (e.g. pods by spec.nodeName)."""
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._cache.items():
            self._index_add(name, key, obj)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """Return the cached objects (not copies) whose index ``name`` has ``value``."""
        keys = self._indices[name].get(value, ())
        return [self._cache[k] for k in keys if k in self._cache]

    # ---- the list/watch loop ----------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                    self.backoff.reset()
                if await self._watch_once():
                    self.backoff.reset()
                else:
                    await asyncio.sleep(self.backoff.next())
            except GoneError as e:
                log.info("informer %s: resourceVersion %s expired (%s); re-listing",
                         self.name, self.resource_version, e.message)
                need_list = True
            except asyncio.CancelledError:
                raise
            except Exception as e:
                delay = self.backoff.next()
                log.warning("informer %s: %s; retrying in %.1fs", self.name, e, delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        listed = await self.resource.list(
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            limit=self.page_size,
        )
        fresh, diff = diff_cache(self._cache, listed.items)
        self._cache = fresh
        self._rebuild_indices()
        self.resource_version = listed.resource_version
        log.debug("informer %s: listed %d at %s (+%d ~%d -%d)", self.name, len(fresh),
                  self.resource_version, len(diff.added), len(diff.updated), len(diff.deleted))
        for obj in diff.added:
            await self._notify_add(obj)
        for old, new in diff.updated:
            await self._notify_update(old, new)
        for obj in diff.deleted:
            await self._notify_delete(obj)
        # Synced only once the handlers have seen the first list, as client-go's HasSynced.
        self._synced.set()

    async def _watch_once(self) -> bool:
        """Watch until the stream ends; return whether it was useful (events or long-lived)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        # A random 5–10 minute server-side timeout spreads reconnects, as client-go does.
        timeout = random.randint(300, 600)
        async with self.resource.watch(
            resource_version=self.resource_version or None,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=timeout,
            allow_bookmarks=True,
        ) as watch:
            async for event in watch:
                await self.apply_event(event)
                self.resource_version = watch.resource_version or self.resource_version
            self.resource_version = watch.resource_version or self.resource_version
            return watch.events_seen > 0 or loop.time() - started >= 1.0

    async def apply_event(self, event: WatchEvent) -> None:
        """Apply one watch event to the cache and tell the handlers."""
        obj = event.object
        key = object_key(obj)
        if event.type in ("ADDED", "MODIFIED"):
            old = self._cache.get(key)
            self._store(key, obj)
            if old is None:
                await self._notify_add(obj)
            else:
                await self._notify_update(old, obj)
        elif event.type == "DELETED":
            self._remove(key)
            await self._notify_delete(obj)
        else:
            log.warning("informer %s: ignoring watch event of type %r", self.name, event.type)
        rv = resource_version_of(obj)
        if rv:
            self.resource_version = rv

    async def _resync_loop(self) -> None:
        assert self.resync_period
        await self._synced.wait()
        while True:
            await asyncio.sleep(self.resync_period)
            for obj in list(self._cache.values()):
                await self._notify_update(obj, obj)

    # ---- cache mutation and indices ----------------------------------------------------

    def _store(self, key: str, obj: Obj) -> None:
        old = self._cache.get(key)
        if old is not None:
            self._index_remove(key, old)
        self._cache[key] = obj
        for name in self._indexers:
            self._index_add(name, key, obj)

    def _remove(self, key: str) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._index_remove(key, old)

    def _rebuild_indices(self) -> None:
        for name in self._indexers:
            self._indices[name] = {}
            for key, obj in self._cache.items():
                self._index_add(name, key, obj)

    def _index_add(self, name: str, key: str, obj: Obj) -> None:
        index = self._indices[name]
        for value in self._index_values(name, obj):
            index.setdefault(value, set()).add(key)

    def _index_remove(self, key: str, obj: Obj) -> None:
        for name, index in self._indices.items():
            for value in self._index_values(name, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _index_values(self, name: str, obj: Obj) -> Iterable[str]:
        try:
            return list(self._indexers[name](obj))
        except Exception:
            log.exception("informer %s: index %s failed on %s", self.name, name, object_key(obj))
            return []

    # ---- handler calls -----------------------------------------------------------------

    async def _notify_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                await _call(h.on_add, obj)

    async def _notify_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                await _call(h.on_update, old, new)

    async def _notify_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                await _call(h.on_delete, obj)


async def _call(fn: Handler, *args: Obj) -> None:
    # A failing handler must not stop the informer or starve the other handlers.
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("informer handler %r failed", fn)


def index_by_namespace(obj: Obj) -> list[str]:
    """Index function: the object's namespace."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def index_by_node_name(obj: Obj) -> list[str]:
    """Index function: a pod's spec.nodeName ('' for pods not yet bound)."""
    return [str((obj.get("spec") or {}).get("nodeName") or "")]


class InformerFactory:
    """Shares one Informer per (resource, namespace, selectors) among a process' loops."""

    def __init__(self, api: ApiClient, resync_period: float | None = None) -> None:
        self.api = api
        self.resync_period = resync_period
        self._informers: dict[tuple[str, str, str | None, str | None, str | None], Informer] = {}

    def informer(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Informer:
        """Return the shared informer for a resource, creating it on first request."""
        key = (api_version, plural, namespace, label_selector, field_selector)
        if key not in self._informers:
            resource = self.api.resource(api_version, plural, namespace)
            self._informers[key] = Informer(resource, label_selector, field_selector,
                                            resync_period=self.resync_period)
        return self._informers[key]

    async def start(self) -> None:
        """Start every informer created so far."""
        for inf in self._informers.values():
            await inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Wait until every informer has synced; return False on timeout."""
        results = await asyncio.gather(
            *(inf.wait_for_sync(timeout) for inf in self._informers.values())
        )
        return all(results)

    async def stop(self) -> None:
        """Stop every informer."""
        await asyncio.gather(*(inf.stop() for inf in self._informers.values()))
