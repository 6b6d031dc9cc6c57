"""Garbage collector: deletes dependents whose owners are gone, with the three propagations.

Kubernetes records ownership in ``metadata.ownerReferences``; deleting an owner says what
happens to its dependents (``propagationPolicy``):

- Background: the owner goes at once; afterwards every dependent whose owners are all gone
  (dangling) is deleted here.
- Foreground: the api server keeps the owner, with a deletionTimestamp and the
  ``foregroundDeletion`` finalizer; this collector deletes its dependents, waits until none with
  ``blockOwnerDeletion: true`` is left, then removes the finalizer (and the object goes).
- Orphan: the owner keeps the ``orphan`` finalizer until this collector has removed the
  owner's reference from every dependent; then it removes the finalizer.

Work items are keys ``<verb>|<apiVersion>|<plural>|<namespace/name>``: ``dependent`` checks one
object's owners, ``owner`` processes one deleting owner's finalizer.

Invariants: a dependent is deleted only after every owner was confirmed absent (or replaced
by a new object with another uid) by a live GET, never on a cache miss alone; deletes carry a
uid precondition, so an object re-created under the same name is never hit; finalizer and
ownerReference edits are compare-and-swap PUTs of a copy, retried with backoff on conflict.
Only the resources given to the collector are watched (by default pods, replicasets,
deployments, services, configmaps, secrets); owners of any served kind are looked up live.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from dockyard.client import (
    ApiClient,
    EventRecorder,
    Informer,
    InformerFactory,
    NotFoundError,
    ResourceClient,
    split_key,
)
from dockyard.controllers.base import Controller, Obj, clone, is_deleting, meta, uid_of
from dockyard.objects.resources import ResourceInfo, lookup_kind, lookup_kind_any_version

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"

DEFAULT_RESOURCES: tuple[tuple[str, str], ...] = (
    ("v1", "pods"),
    ("apps/v1", "replicasets"),
    ("apps/v1", "deployments"),
    ("v1", "services"),
    ("v1", "configmaps"),
    ("v1", "secrets"),
)


@dataclass(frozen=True)
class OwnerState:
    """What the collector learned about one ownerReference."""

    ref: Obj
    state: str  # "solid", "dangling" or "waiting" (owner in foreground deletion)


def owner_refs(obj: Obj) -> list[Obj]:
    """Return the object's ownerReferences that are dicts with a uid."""
    return [r for r in meta(obj).get("ownerReferences") or []
            if isinstance(r, dict) and r.get("uid")]


def classify(ref: Obj, owner: Obj | None) -> str:
    """Return "dangling", "waiting" or "solid" for an ownerReference and the owner found."""
    if owner is None or uid_of(owner) != ref.get("uid"):
        return "dangling"
    if is_deleting(owner) and FOREGROUND in (meta(owner).get("finalizers") or []):
        return "waiting"
    return "solid"


def without_owner(obj: Obj, uids: set[str]) -> Obj:
    """Return a copy of the object without the ownerReferences whose uid is in ``uids``."""
    copy = clone(obj)
    copy["metadata"]["ownerReferences"] = [r for r in owner_refs(obj)
                                           if r.get("uid") not in uids]
    if not copy["metadata"]["ownerReferences"]:
        del copy["metadata"]["ownerReferences"]
    return copy


def without_finalizer(obj: Obj, finalizer: str) -> Obj:
    """Return a copy of the object without one finalizer."""
    copy = clone(obj)
    copy["metadata"]["finalizers"] = [f for f in meta(obj).get("finalizers") or []
                                      if f != finalizer]
    return copy


def blocks(dependent: Obj, owner_uid: str) -> bool:
    """Tell whether a dependent's reference to the owner has blockOwnerDeletion: true."""
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") is True
               for r in owner_refs(dependent))


class GarbageCollector(Controller):
    """Deletes dangling dependents and carries out Foreground and Orphan deletions."""

    name = "garbagecollector"

    def __init__(self, api: ApiClient, recorder: EventRecorder, factory: InformerFactory,
                 resources: tuple[tuple[str, str], ...] = DEFAULT_RESOURCES,
                 workers: int = 4) -> None:
        super().__init__(api, recorder, workers)
        self.watched: dict[tuple[str, str], Informer] = {}
        for api_version, plural in resources:
            informer = factory.informer(api_version, plural)
            informer.add_index("owner-uid", _owner_uids)
            self.watched[(api_version, plural)] = informer
            informer.add_handler(
                lambda obj, av=api_version, pl=plural: self._added(av, pl, obj),
                lambda old, new, av=api_version, pl=plural: self._updated(av, pl, old, new),
                lambda obj, av=api_version, pl=plural: self._deleted(av, pl, obj),
            )

    # ---- event handlers --------------------------------------------------------------------

    def _key(self, verb: str, api_version: str, plural: str, obj: Obj) -> str:
        namespace = meta(obj).get("namespace")
        name = meta(obj).get("name", "")
        return f"{verb}|{api_version}|{plural}|{namespace}/{name}" if namespace else \
            f"{verb}|{api_version}|{plural}|{name}"

    def _added(self, api_version: str, plural: str, obj: Obj) -> None:
        if owner_refs(obj):
            self.queue.add(self._key("dependent", api_version, plural, obj))
        if _pending_finalizer(obj):
            self.queue.add(self._key("owner", api_version, plural, obj))

    def _updated(self, api_version: str, plural: str, old: Obj, new: Obj) -> None:
        if owner_refs(old) != owner_refs(new):
            self.queue.add(self._key("dependent", api_version, plural, new))
        if _pending_finalizer(new):
            self.queue.add(self._key("owner", api_version, plural, new))

    def _deleted(self, api_version: str, plural: str, obj: Obj) -> None:
        for (av, pl), informer in self.watched.items():
            for dependent in informer.by_index("owner-uid", uid_of(obj)):
                self.queue.add(self._key("dependent", av, pl, dependent))
        # An owner in foreground deletion waits for exactly this event.
        for ref in owner_refs(obj):
            info = _info_for(ref)
            owner = self._cached_owner(info, meta(obj).get("namespace"), ref) if info else None
            if info is not None and owner is not None and _pending_finalizer(owner):
                self.queue.add(self._key("owner", info.api_version, info.plural, owner))

    # ---- lookups ---------------------------------------------------------------------------

    def _cached_owner(self, info: ResourceInfo, namespace: str | None, ref: Obj) -> Obj | None:
        informer = self.watched.get((info.api_version, info.plural))
        if informer is None:
            return None
        return informer.get(namespace if info.namespaced else None, str(ref.get("name")))

    async def _owner(self, info: ResourceInfo, namespace: str | None, ref: Obj) -> Obj | None:
        """Return the owner named by a reference: from the cache if it matches, else live."""
        cached = self._cached_owner(info, namespace, ref)
        if cached is not None and uid_of(cached) == ref.get("uid"):
            return cached
        client = self.api.resource(info.api_version, info.plural,
                                   namespace if info.namespaced else None)
        try:
            # A cache miss may only be a watch that lags: confirm absence with the server.
            live: Obj = await client.get(str(ref.get("name")))
            return live
        except NotFoundError:
            return None

    def _dependents(self, owner_uid: str) -> list[tuple[ResourceClient, Obj]]:
        found = []
        for (api_version, plural), informer in self.watched.items():
            for dep in informer.by_index("owner-uid", owner_uid):
                found.append((self.api.resource(api_version, plural, meta(dep).get("namespace")),
                              dep))
        return found

    # ---- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        """Check one dependent's owners, or carry out one owner's deletion finalizer."""
        verb, api_version, plural, obj_key = key.split("|", 3)
        informer = self.watched.get((api_version, plural))
        if informer is None:
            return
        obj = informer.get_by_key(obj_key)
        if obj is None:
            return  # gone already: nothing left to collect or finalize
        client = self.api.resource(api_version, plural, split_key(obj_key)[0])
        if verb == "owner":
            await self._finalize_owner(client, obj)
        else:
            await self._check_dependent(client, obj)

    async def _check_dependent(self, client: ResourceClient, obj: Obj) -> None:
        if is_deleting(obj):
            return  # already on its way out
        states: list[OwnerState] = []
        for ref in owner_refs(obj):
            info = _info_for(ref)
            if info is None:
                # An owner kind this server does not serve cannot be checked: keep the object.
                log.debug("%s: owner kind %s/%s unknown", meta(obj).get("name"),
                          ref.get("apiVersion"), ref.get("kind"))
                return
            owner = await self._owner(info, meta(obj).get("namespace"), ref)
            states.append(OwnerState(ref, classify(ref, owner)))
        dangling = {str(s.ref["uid"]) for s in states if s.state == "dangling"}
        waiting = {str(s.ref["uid"]) for s in states if s.state == "waiting"}
        if not dangling and not waiting:
            return
        name = str(meta(obj).get("name"))
        if any(s.state == "solid" for s in states):
            # Another owner still holds it: only drop the references to gone owners.
            with contextlib.suppress(NotFoundError):
                await client.update(without_owner(obj, dangling | waiting))
            return
        policy = "Background"
        if waiting and self._dependents(uid_of(obj)):
            policy = "Foreground"  # keep blocking the waiting owner until our own go
        with contextlib.suppress(NotFoundError):  # already gone is what we wanted
            await client.delete(name, propagation_policy=policy,
                                preconditions={"uid": uid_of(obj)})

    async def _finalize_owner(self, client: ResourceClient, owner: Obj) -> None:
        finalizers = meta(owner).get("finalizers") or []
        if not is_deleting(owner):
            return
        owner_uid = uid_of(owner)
        if ORPHAN in finalizers:
            for dep_client, dep in self._dependents(owner_uid):
                with contextlib.suppress(NotFoundError):  # gone: nothing to orphan
                    await dep_client.update(without_owner(dep, {owner_uid}))
            await self._remove_finalizer(client, owner, ORPHAN)
        elif FOREGROUND in finalizers:
            blocking = False
            for dep_client, dep in self._dependents(owner_uid):
                if blocks(dep, owner_uid):
                    blocking = True
                if is_deleting(dep):
                    continue
                policy = "Foreground" if self._dependents(uid_of(dep)) else "Background"
                with contextlib.suppress(NotFoundError):  # already gone is what we wanted
                    await dep_client.delete(str(meta(dep).get("name")),
                                            propagation_policy=policy,
                                            preconditions={"uid": uid_of(dep)})
            if blocking:
                return  # the dependents' DELETED events re-queue this owner
            await self._remove_finalizer(client, owner, FOREGROUND)

    async def _remove_finalizer(self, client: ResourceClient, owner: Obj, finalizer: str) -> None:
        # A PUT of the cached copy: a conflict (the owner changed) raises and is retried with
        # backoff on a fresh read; NotFound means someone else finished the job.
        with contextlib.suppress(NotFoundError):
            await client.update(without_finalizer(owner, finalizer))


def _owner_uids(obj: Obj) -> list[str]:
    return [str(r["uid"]) for r in owner_refs(obj)]


def _pending_finalizer(obj: Obj) -> bool:
    finalizers = meta(obj).get("finalizers") or []
    return is_deleting(obj) and (FOREGROUND in finalizers or ORPHAN in finalizers)


def _info_for(ref: Obj) -> ResourceInfo | None:
    kind = str(ref.get("kind") or "")
    return lookup_kind(str(ref.get("apiVersion") or ""), kind) or lookup_kind_any_version(kind)
