"""What every controller shares: the work-queue loop, owner references, claims, expectations,
copies and status writes.

A controller registers handlers on shared informers that only put keys on its ``WorkQueue``;
``run()`` starts N workers (``dockyard.client.run_workers``) that call ``reconcile(key)``.
``reconcile`` reads the world fresh from the informer caches, is safe to run twice on the same
key, and never modifies a cached object: ``clone()`` first. A failing reconcile raises, and the
worker loop re-queues the key with per-key exponential backoff (5 ms doubling to 1000 s), so an
error never becomes a hot loop.

``Expectations`` are client-go's ControllerExpectations: before creating or deleting N pods a
controller records that it expects to see N adds or deletes in its informer; until it has seen
them (or 5 minutes pass) it does not trust the cache's count, so a slow informer cannot cause a
second round of creates for the same replicas.

``claim`` is client-go's ControllerRefManager.ClaimObjects: an owner keeps the objects it
controls that still match its selector, adopts matching orphans and releases the ones that no
longer match, each change a PUT with the cached resourceVersion (a concurrent writer answers
409 and the retry works on the fresh object). An owner being deleted adopts and releases
nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from dockyard.client import (
    ApiClient,
    ConflictError,
    EventRecorder,
    Informer,
    NotFoundError,
    RequeueAfter,
    ResourceClient,
    WorkQueue,
    object_key,
    run_workers,
)
from dockyard.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

Obj = dict[str, Any]

EXPECTATIONS_TIMEOUT = 300.0  # seconds: client-go's ExpectationsTimeout


def clone(obj: Obj) -> Obj:
    """Return a deep copy of a JSON-shaped object (faster than copy.deepcopy for big dicts)."""
    copied: Obj = orjson.loads(orjson.dumps(obj))
    return copied


def meta(obj: Obj) -> Obj:
    """Return an object's metadata dict ({} when absent; read-only use)."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def uid_of(obj: Obj) -> str:
    """Return metadata.uid ('' when absent)."""
    return str(meta(obj).get("uid") or "")


def is_deleting(obj: Obj) -> bool:
    """Tell whether the object has a deletionTimestamp."""
    return bool(meta(obj).get("deletionTimestamp"))


def controller_ref(obj: Obj) -> Obj | None:
    """Return the ownerReference with controller=true, or None."""
    for ref in meta(obj).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def owner_reference(owner: Obj, controller: bool = True, block: bool = True) -> Obj:
    """Return an ownerReference to ``owner`` (controller and blockOwnerDeletion by default)."""
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta(owner).get("name", ""),
        "uid": uid_of(owner),
        "controller": controller,
        "blockOwnerDeletion": block,
    }


def index_by_controller_uid(obj: Obj) -> list[str]:
    """Index function: the uid of the object's controller (none for orphans)."""
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


def index_by_owner_uids(obj: Obj) -> list[str]:
    """Index function: the uids of all the object's owners."""
    refs = meta(obj).get("ownerReferences") or []
    return [str(r["uid"]) for r in refs if isinstance(r, dict) and r.get("uid")]


def selector_of(obj: Obj) -> LabelSelector:
    """Return the LabelSelector of a workload's spec.selector (an invalid one matches nothing)."""
    try:
        return LabelSelector.from_dict((obj.get("spec") or {}).get("selector"))
    except SelectorError:
        return LabelSelector.nothing()


def owner_key(obj: Obj, kind: str, owners: Informer) -> str | None:
    """Return the cache key of the object's controller of ``kind`` if it is cached, same uid."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    owner = owners.get(meta(obj).get("namespace"), str(ref.get("name")))
    if owner is None or uid_of(owner) != ref.get("uid"):
        return None  # a namesake that replaced the owner does not own this object
    return object_key(owner)


async def claim(owner: Obj, candidates: Iterable[Obj], resource: ResourceClient) -> list[Obj]:
    """Return the candidates ``owner`` controls after adopting and releasing (see module doc)."""
    selector = selector_of(owner)
    uid = uid_of(owner)
    owned: list[Obj] = []
    for cached in candidates:
        ref = controller_ref(cached)
        labels = meta(cached).get("labels") or {}
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if selector.matches(labels):
                owned.append(cached)
            elif not is_deleting(owner):
                await set_owner(resource, cached, owner, adopt=False)
        elif selector.matches(labels) and not is_deleting(owner) and not is_deleting(cached):
            adopted = await set_owner(resource, cached, owner, adopt=True)
            if adopted is not None:
                owned.append(adopted)
    return owned


async def set_owner(resource: ResourceClient, cached: Obj, owner: Obj, adopt: bool) -> Obj | None:
    """Adopt (add owner as controller) or release a copy of ``cached``; None if it is gone."""
    obj = clone(cached)
    uid = uid_of(owner)
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    if adopt:
        refs.append(owner_reference(owner))
    obj["metadata"]["ownerReferences"] = refs
    try:
        updated: Obj = await resource.update(obj)
        return updated
    except NotFoundError:
        return None  # gone meanwhile: nothing to adopt or release


async def write_status(resource: ResourceClient, obj: Obj, old_status: Obj, status: Obj) -> None:
    """Write ``status`` through /status unless it equals ``old_status``."""
    if status == old_status:
        return
    obj["status"] = status
    try:
        await resource.update_status(obj)
    except NotFoundError:
        pass  # deleted meanwhile: its status no longer matters
    except ConflictError:
        # The object changed since this reconcile read it (a spec edit, another writer): look
        # again shortly from the fresh cache (its watch event also re-queues it).
        raise RequeueAfter(0.2, "status write conflicted") from None


@dataclass
class _Expectation:
    add: int = 0
    delete: int = 0
    deleting: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)


class Expectations:
    """Per-controller-key counts of creates and deletes sent but not yet seen in the informer."""

    def __init__(self, timeout: float = EXPECTATIONS_TIMEOUT) -> None:
        self.timeout = timeout
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """Tell whether the cache can be trusted for ``key`` (nothing pending, or expired)."""
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.add <= 0 and exp.delete <= 0:
            return True
        # A lost watch event must not wedge the controller forever: after the timeout, re-check.
        return time.monotonic() - exp.stamp > self.timeout

    def expect_creations(self, key: str, count: int) -> None:
        """Record that ``count`` creates are about to be sent for ``key``."""
        self._items[key] = _Expectation(add=count)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        """Record the keys of the objects about to be deleted for ``key``."""
        keys = set(pod_keys)
        self._items[key] = _Expectation(delete=len(keys), deleting=keys)

    def creation_observed(self, key: str) -> None:
        """Lower the pending creates of ``key`` by one (an add was seen, or a create failed)."""
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, obj_key: str | None = None) -> None:
        """Lower the pending deletes of ``key`` (once per deleted object when keys are known)."""
        exp = self._items.get(key)
        if exp is None:
            return
        if obj_key is not None:
            if obj_key not in exp.deleting:
                return
            exp.deleting.discard(obj_key)
        exp.delete -= 1

    def forget(self, key: str) -> None:
        """Drop everything recorded for ``key`` (its owner is gone)."""
        self._items.pop(key, None)

    def pending(self, key: str) -> tuple[int, int]:
        """Return (creates, deletes) still expected for ``key``."""
        exp = self._items.get(key)
        return (exp.add, exp.delete) if exp else (0, 0)


class Controller:
    """A work queue of keys and N workers calling ``reconcile``; subclasses fill in the rest."""

    name = "controller"

    def __init__(self, api: ApiClient, recorder: EventRecorder, workers: int = 4) -> None:
        self.api = api
        self.recorder = recorder
        self.workers = workers
        self.queue = WorkQueue(self.name)
        self._conflicts: dict[str, int] = {}

    def enqueue(self, obj: Obj) -> None:
        """Queue the key of an object."""
        self.queue.add(object_key(obj))

    def enqueue_after(self, obj: Obj, seconds: float) -> None:
        """Queue the key of an object after a delay."""
        self.queue.add_after(object_key(obj), seconds)

    def selects_all(self, obj: Obj, noun: str) -> bool:
        """Tell whether ``obj`` has an empty selector, recording a SelectingAll Warning if so."""
        if not selector_of(obj).empty():
            return False
        # An empty selector would claim every object in the namespace: refuse, as Kubernetes
        # does, and say why nothing happens (the Event is aggregated).
        self.recorder.event(obj, "Warning", "SelectingAll",
                            f"This {noun} is selecting all pods. A non-empty selector is "
                            "required.")
        return True

    async def reconcile(self, key: str) -> None:
        """Move the world toward what the object at ``key`` declares."""
        raise NotImplementedError

    async def run(self) -> None:
        """Run the workers until ``shut_down``."""
        await run_workers(self.queue, self._reconcile_once, self.workers)

    async def _reconcile_once(self, key: str) -> None:
        try:
            await self.reconcile(key)
        except ConflictError:
            # Optimistic concurrency: another writer changed the object after our cache read.
            # That is expected, not a failure: retry soon from the fresh cache, backing off
            # (50 ms doubling to 10 s) if it keeps happening.
            count = self._conflicts.get(key, 0) + 1
            self._conflicts[key] = count
            log.debug("%s: %s conflicted (%d); retrying", self.name, key, count)
            raise RequeueAfter(min(0.05 * 2 ** (count - 1), 10.0), "write conflict") from None
        except RequeueAfter:
            self._conflicts.pop(key, None)
            raise
        self._conflicts.pop(key, None)

    def shut_down(self) -> None:
        """Stop handing out keys; workers exit once the queue is drained."""
        self.queue.shut_down()
