"""The api server's view of its namespaces, so a create need not read its namespace each time.

Every namespaced create must be refused when its namespace is missing or terminating
(Kubernetes' NamespaceLifecycle admission). Reading the namespace from the store on each create
cost a store round trip per request; this cache answers from memory instead. It is fed two ways:

- the store's watch on the namespaces prefix (list, then watch from the list's revision), which
  brings every writer's changes, this server's and other api servers' on a shared etcd;
- write-through: ``ResourceStorage`` reports each namespace write it makes as soon as the store
  has committed it, before answering, so on this server a namespace marked terminating is
  refused by the very next create, without waiting for the watch to deliver the change.

Invariants and the choice made for races:
- Only one answer comes from memory: "present and not terminating". A miss, a terminating
  namespace, a deleted one, or any lookup while the watch is not in sync (before the first list,
  after a watch error until the re-list) reads the store, which is authoritative. So a create in
  a namespace created a moment ago succeeds, and refusals are always confirmed by the store.
- Every entry carries the revision that produced it and is replaced only by a newer one, so the
  watch delivering an older change after write-through recorded a newer one (or a store read
  racing the watch) never moves an entry back in time. Deleted namespaces leave a tombstone
  with the delete's revision for the same reason (a late, older PUT cannot resurrect one).
- The window that remains: a namespace marked terminating by another api server is seen here
  when the watch delivers it (milliseconds); until then a create may pass. Kubernetes' own
  admission has that window too, and the namespace cleaner deletes what lands in a terminating
  namespace before it releases it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import orjson

from dockyard.store.base import KeyValue, Store, StoreError, WatchEvent

NAMESPACES_PREFIX = "/registry/namespaces/"
RETRY_SECONDS = 1.0
MAX_TOMBSTONES = 10_000
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NamespaceState:
    """What is known of one namespace, as of a store revision."""

    revision: int
    exists: bool
    terminating: bool = False


class NamespaceCache:
    """Namespace name → NamespaceState, kept current by a watch and by write-through."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._states: dict[str, NamespaceState] = {}
        self._synced = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start listing and watching namespaces in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="namespace-cache")

    async def stop(self) -> None:
        """Stop the watch; lookups then read the store."""
        self._synced = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def synced(self) -> bool:
        """Tell whether the watch has listed and is following the namespaces."""
        return self._synced

    async def lookup(self, name: str) -> NamespaceState | None:
        """Return the namespace's state (None when absent), from memory when it is active."""
        state = self._states.get(name)
        if self._synced and state is not None and state.exists and not state.terminating:
            return state
        kv = await self._store.get(NAMESPACES_PREFIX + name)
        if kv is None:
            return None
        fresh = _state_of(kv)
        self.observe(name, fresh)
        return fresh

    def observe(self, name: str, state: NamespaceState) -> None:
        """Record a namespace's state unless a newer one is already known."""
        known = self._states.get(name)
        if known is not None and known.revision >= state.revision:
            return
        self._states[name] = state
        if not state.exists and len(self._states) > MAX_TOMBSTONES:
            self._trim_tombstones()

    def observe_value(self, kv: KeyValue) -> None:
        """Record a namespace as stored in kv (write-through from a committed write)."""
        self.observe(kv.key.removeprefix(NAMESPACES_PREFIX), _state_of(kv))

    def observe_deleted(self, name: str, revision: int) -> None:
        """Record that a namespace was deleted at revision."""
        self.observe(name, NamespaceState(revision, exists=False))

    async def _run(self) -> None:
        while True:
            try:
                await self._list_and_watch()
            except asyncio.CancelledError:
                raise
            except StoreError as error:  # compacted, too slow, store closing: re-list
                log.info("namespace watch ended (%s); listing again", error)
            except Exception:  # the cache must outlive any one failure; it re-lists
                log.exception("namespace watch failed; listing again")
            self._synced = False
            await asyncio.sleep(RETRY_SECONDS)

    async def _list_and_watch(self) -> None:
        kvs, revision, _more = await self._store.list(NAMESPACES_PREFIX)
        listed = {kv.key.removeprefix(NAMESPACES_PREFIX): kv for kv in kvs}
        for name, state in list(self._states.items()):
            if name not in listed and state.revision <= revision:
                del self._states[name]  # gone as of the list: forget it (a miss reads the store)
        for name, kv in listed.items():
            self.observe(name, _state_of(kv))
        self._synced = True
        async for event in self._store.watch(NAMESPACES_PREFIX, revision):
            self._apply(event)
        raise StoreError("the store ended the namespace watch")

    def _apply(self, event: WatchEvent) -> None:
        if event.type == "PUT":
            self.observe_value(event.kv)
        else:
            self.observe_deleted(event.kv.key.removeprefix(NAMESPACES_PREFIX), event.revision)

    def _trim_tombstones(self) -> None:
        tombstones = [(s.revision, n) for n, s in self._states.items() if not s.exists]
        if len(tombstones) <= MAX_TOMBSTONES:
            return
        # The oldest deletes are long delivered by the watch; dropping them only costs a read.
        for _revision, name in sorted(tombstones)[: len(tombstones) - MAX_TOMBSTONES // 2]:
            del self._states[name]


def _state_of(kv: KeyValue) -> NamespaceState:
    metadata = orjson.loads(kv.value).get("metadata") or {}
    return NamespaceState(kv.mod_revision, exists=True,
                          terminating=bool(metadata.get("deletionTimestamp")))
