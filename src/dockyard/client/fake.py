"""FakeApiClient: an in-memory stand-in for ApiClient, for fast unit tests of the loops.

It keeps objects, a resourceVersion counter and a watch history the way the api server does,
so a controller's or scheduler's reconcile logic can be unit-tested without a process:
``api = FakeApiClient(); await reconcile(api, "default/web"); api.cluster.objects``.
The same contract tests (tests/e2e/test_client_contract.py) run against it and against the
real `dockyard server`, so where it answers, it answers as the server does:
- create sets uid, creationTimestamp, resourceVersion, generation (1), namespace; names from
  generateName; 409 AlreadyExists; 422 when neither name nor generateName is given;
- update/patch are compare-and-swap on metadata.resourceVersion (409 Conflict); on resources
  with a status subresource, update ignores status and update_status changes only status;
  generation grows when anything outside metadata/status changes; a no-op write keeps the
  resourceVersion;
- delete honours preconditions, finalizers (deletionTimestamp, removed when the last finalizer
  goes) and, for a pod bound to a node, graceful deletion (deletionTimestamp; the node's agent
  deletes with grace_period_seconds=0);
- watch replays history after a resourceVersion, filters by selectors (an object moving out of
  a selection is DELETED, into it ADDED), ends at timeout_seconds, and answers 410 Gone from
  before ``cluster.compact()``;
- subresources: status, scale (Scale of spec.replicas), binding (409 when already bound),
  eviction (deletes).
What it does NOT do (so it never stands in for the server in tests that prove a feature):
validation and defaulting of specs, strategic merge and server-side apply patches
(NotImplementedError), garbage collection of dependents, admission, auth, pod logs.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonpatch

from dockyard.client.api import AsyncClosing, Obj, ObjectList, WatchEvent, WatchStream
from dockyard.client.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    GoneError,
    InvalidError,
    NotFoundError,
)
from dockyard.objects.resources import ResourceInfo, lookup
from dockyard.objects.selectors import FieldSelector, LabelSelector

Key = tuple[str, str, str, str]  # (api_version, plural, namespace, name)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (null deletes a key) and return the result."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class _Change:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED (as stored, before selector filtering)
    key: Key
    obj: Obj
    prev: Obj | None


class FakeCluster:
    """The shared state behind every FakeResourceClient of one FakeApiClient."""

    def __init__(self) -> None:
        # Like etcd, revision 1 exists before any write, so a list never reports "0" (which
        # a watch would read as "start from the current state").
        self.rv = 1
        self.objects: dict[Key, Obj] = {}
        self.history: list[_Change] = []
        self.compacted = 0
        self._watchers: list[FakeWatch] = []

    def compact(self) -> None:
        """Forget the watch history: watches from an older resourceVersion now get 410 Gone."""
        self.compacted = self.rv
        self.history.clear()

    def drop_watches(self) -> None:
        """End every open watch, as a server restart would."""
        for w in list(self._watchers):
            w.end()

    def _commit(self, type_: str, key: Key, obj: Obj, prev: Obj | None) -> Obj:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if type_ == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        change = _Change(self.rv, type_, key, copy.deepcopy(obj), prev)
        self.history.append(change)
        for w in list(self._watchers):
            w.offer(change)
        return copy.deepcopy(obj)


class FakeApiClient(AsyncClosing):
    """In-memory ApiClient: ``resource()`` hands out FakeResourceClients over one FakeCluster."""

    def __init__(self, cluster: FakeCluster | None = None) -> None:
        self.cluster = cluster or FakeCluster()

    async def close(self) -> None:
        """Close nothing (there is no connection); here for interface parity."""

    async def aclose(self) -> None:
        """Close nothing, as ``close()``."""

    def resource(self, api_version: str, plural: str,
                 namespace: str | None = None) -> FakeResourceClient:
        """Return the fake client of one resource, as ApiClient.resource does."""
        return FakeResourceClient(self, api_version, plural, namespace)

    async def request(self, method: str, path: str, **_: Any) -> Any:
        """Refuse raw requests: the fake models resources, not arbitrary paths."""
        raise NotImplementedError(f"FakeApiClient does not serve raw requests ({method} {path})")


class FakeResourceClient:
    """The ResourceClient verbs over a FakeCluster; same names, arguments and errors."""

    def __init__(self, api: FakeApiClient, api_version: str, plural: str,
                 namespace: str | None = None) -> None:
        group, _, version = api_version.rpartition("/")
        info = lookup(group, version, plural)
        if info is None:
            raise NotFoundError(404, "NotFound", f"the server could not find the requested "
                                f'resource "{plural}" in {api_version}')
        self.api = api
        self.info: ResourceInfo = info
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace if info.namespaced else None
        self._cluster = api.cluster

    def __repr__(self) -> str:
        return f"<FakeResourceClient {self.api_version} {self.plural} {self.namespace or ''}>"

    def in_namespace(self, namespace: str | None) -> FakeResourceClient:
        """Return the same resource's client for another namespace."""
        return FakeResourceClient(self.api, self.api_version, self.plural, namespace)

    # ---- helpers ---------------------------------------------------------------------

    def _key(self, name: str, namespace: str | None = None) -> Key:
        ns = (namespace or self.namespace or "") if self.info.namespaced else ""
        return (self.api_version, self.plural, ns, name)

    def _current(self, name: str, namespace: str | None = None) -> Obj:
        obj = self._cluster.objects.get(self._key(name, namespace))
        if obj is None:
            raise NotFoundError(404, "NotFound", f'{self._resource_name()} "{name}" not found',
                                {"name": name, "kind": self.plural})
        return obj

    def _resource_name(self) -> str:
        return f"{self.plural}.{self.info.group}" if self.info.group else self.plural

    def _conflict(self, name: str, why: str) -> ConflictError:
        return ConflictError(409, "Conflict", f"Operation cannot be fulfilled on "
                             f'{self._resource_name()} "{name}": {why}',
                             {"name": name, "kind": self.plural})

    def _obj_namespace(self, obj: Obj) -> str | None:
        meta = obj.get("metadata") or {}
        ns = self.namespace or meta.get("namespace")
        if self.namespace and meta.get("namespace") and meta["namespace"] != self.namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not "
                           "match the namespace sent on the request")
        if self.info.namespaced and not ns:
            raise ApiError(400, "BadRequest", "a namespace is required")
        return ns

    def _matcher(self, label_selector: str | None,
                 field_selector: str | None) -> Any:
        labels = LabelSelector.parse(label_selector) if label_selector else None
        fields = FieldSelector.parse(field_selector) if field_selector else None

        def matches(obj: Obj) -> bool:
            if labels and not labels.matches((obj.get("metadata") or {}).get("labels")):
                return False
            return not fields or fields.matches(obj)
        return matches

    def _in_scope(self, key: Key) -> bool:
        return key[:2] == (self.api_version, self.plural) and (
            not self.namespace or key[2] == self.namespace)

    # ---- reads -------------------------------------------------------------------------

    async def get(self, name: str) -> Obj:
        """Read one object by name."""
        return copy.deepcopy(self._current(name))

    async def list(self, label_selector: str | None = None, field_selector: str | None = None,
                   limit: int | None = None, resource_version: str | None = None) -> ObjectList:
        """List the objects matching the selectors (all of them: limit only pages)."""
        matches = self._matcher(label_selector, field_selector)
        items = [copy.deepcopy(o) for k, o in sorted(self._cluster.objects.items())
                 if self._in_scope(k) and matches(o)]
        return ObjectList(items, str(self._cluster.rv), self.info.kind + "List",
                          self.api_version, {"resourceVersion": str(self._cluster.rv)})

    # ---- writes ------------------------------------------------------------------------

    async def create(self, obj: Obj, dry_run: bool = False,
                     field_manager: str | None = None) -> Obj:
        """Create an object."""
        new = copy.deepcopy(obj)
        meta = new.setdefault("metadata", {})
        ns = self._obj_namespace(new)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise InvalidError(422, "Invalid", f'{self.info.kind} "" is invalid: '
                                   "metadata.name: Required value: name or generateName is "
                                   "required", {"causes": [{"reason": "FieldValueRequired",
                                                            "field": "metadata.name"}]})
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        key = self._key(meta["name"], ns)
        if key in self._cluster.objects:
            raise AlreadyExistsError(409, "AlreadyExists",
                                     f'{self._resource_name()} "{meta["name"]}" already exists',
                                     {"name": meta["name"], "kind": self.plural})
        new["apiVersion"], new["kind"] = self.api_version, self.info.kind
        if ns:
            meta["namespace"] = ns
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1)
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        if "status" in self.info.subresources:
            new.pop("status", None)  # status is the controllers' to write, not the creator's
        if dry_run:
            return new
        return self._cluster._commit("ADDED", key, new, None)

    async def update(self, obj: Obj, dry_run: bool = False,
                     field_manager: str | None = None) -> Obj:
        """Replace an object, compare-and-swap on resourceVersion; status is kept as stored."""
        return self._write(obj, status_only=False, dry_run=dry_run)

    async def update_status(self, obj: Obj, field_manager: str | None = None) -> Obj:
        """Replace an object's status, compare-and-swap on resourceVersion."""
        return self._write(obj, status_only=True)

    def _write(self, obj: Obj, status_only: bool, dry_run: bool = False) -> Obj:
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ValueError(f"{self.plural}: the object has no metadata.name")
        ns = self._obj_namespace(obj)
        current = self._current(name, ns)
        sent_rv = meta.get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(name, "the object has been modified; please apply your "
                                 "changes to the latest version and try again")
        new = self._merge_write(current, obj, status_only)
        if dry_run:
            return new
        return self._store(current, new)

    def _merge_write(self, current: Obj, sent: Obj, status_only: bool) -> Obj:
        has_status = "status" in self.info.subresources
        if status_only:
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(sent.get("status"))
            if new["status"] is None:
                new.pop("status")
            return new
        new = copy.deepcopy(sent)
        new["apiVersion"], new["kind"] = self.api_version, self.info.kind
        meta = new.setdefault("metadata", {})
        cur_meta = current["metadata"]
        for kept in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "resourceVersion"):
            if kept in cur_meta:
                meta[kept] = cur_meta[kept]
            else:
                meta.pop(kept, None)
        if has_status:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        return new

    def _store(self, current: Obj, new: Obj) -> Obj:
        if new == current:
            return copy.deepcopy(current)  # a no-op write keeps the resourceVersion
        if _spec_part(new) != _spec_part(current):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        key = self._key(new["metadata"]["name"], new["metadata"].get("namespace"))
        meta = new["metadata"]
        if (meta.get("deletionTimestamp") and not meta.get("finalizers")
                and not meta.get("deletionGracePeriodSeconds")):
            return self._cluster._commit("DELETED", key, new, copy.deepcopy(current))
        return self._cluster._commit("MODIFIED", key, new, copy.deepcopy(current))

    async def patch(self, name: str, body: Any, patch_type: str = "merge",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool | None = None, dry_run: bool = False) -> Obj:
        """Patch an object (or its status/scale) with a merge or json patch."""
        if patch_type not in ("merge", "json"):
            raise NotImplementedError(f"FakeApiClient does not implement {patch_type} patches; "
                                      "test that against the real server")
        current = self._current(name)
        if subresource == "scale":
            scale = _scale_of(current, self.info)
            patched = _apply_patch(scale, body, patch_type)
            return await self.update_subresource(name, "scale", patched)
        patched = _apply_patch(current, body, patch_type)
        sent_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(name, "the object has been modified; please apply your "
                                 "changes to the latest version and try again")
        patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
            "resourceVersion"]
        return self._write(patched, status_only=subresource == "status", dry_run=dry_run)

    async def delete(self, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None,
                     dry_run: bool = False) -> Obj:
        """Delete an object (or mark it deleting while finalizers or a node's agent remain)."""
        current = self._current(name)
        meta = current["metadata"]
        for field in ("uid", "resourceVersion"):
            want = (preconditions or {}).get(field)
            if want and want != meta.get(field):
                raise self._conflict(name, f"Precondition failed: {field}: {want}, "
                                     f"ObjectMeta.{field}: {meta.get(field)}")
        if dry_run:
            return copy.deepcopy(current)
        key = self._key(name, meta.get("namespace"))
        graceful = self._grace(current, grace_period_seconds)
        if meta.get("finalizers") or graceful:
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(current)  # already being deleted
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            if graceful:
                new["metadata"]["deletionGracePeriodSeconds"] = graceful
            return self._cluster._commit("MODIFIED", key, new, copy.deepcopy(current))
        return self._cluster._commit("DELETED", key, copy.deepcopy(current),
                                     copy.deepcopy(current))

    def _grace(self, obj: Obj, grace_period_seconds: int | None) -> int:
        # Only pods on a node wait for their agent; grace 0 (the agent's own call) is final.
        if self.plural != "pods" or not (obj.get("spec") or {}).get("nodeName"):
            return 0
        if grace_period_seconds is not None:
            return grace_period_seconds
        return int((obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30))

    async def delete_collection(self, label_selector: str | None = None,
                                field_selector: str | None = None,
                                propagation_policy: str | None = None) -> Obj:
        """Delete every matching object."""
        for obj in (await self.list(label_selector, field_selector)).items:
            await self.in_namespace(obj["metadata"].get("namespace")).delete(
                obj["metadata"]["name"])
        return {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    # ---- watch -------------------------------------------------------------------------

    def watch(self, resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = True) -> FakeWatch:
        """Watch from a resourceVersion (None or "0": current objects first, as ADDED)."""
        return FakeWatch(self, resource_version, self._matcher(label_selector, field_selector),
                         timeout_seconds)

    # ---- subresources --------------------------------------------------------------------

    async def get_subresource(self, name: str, subresource: str) -> Obj:
        """Read status (the whole object) or scale."""
        current = self._current(name)
        if subresource == "status":
            return copy.deepcopy(current)
        if subresource == "scale":
            return _scale_of(current, self.info)
        raise self._no_subresource(subresource)

    async def create_subresource(self, name: str, subresource: str, body: Obj) -> Obj:
        """POST binding (assign a pod to a node) or eviction (delete the pod)."""
        current = self._current(name)
        if self.plural == "pods" and subresource == "binding":
            node = (current.get("spec") or {}).get("nodeName")
            if node:
                raise self._conflict(name, f'pod {name} is already assigned to node "{node}"')
            new = copy.deepcopy(current)
            new.setdefault("spec", {})["nodeName"] = (body.get("target") or {}).get("name")
            self._store(current, new)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
        if self.plural == "pods" and subresource == "eviction":
            await self.delete(name)
            return {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
        raise self._no_subresource(subresource)

    async def update_subresource(self, name: str, subresource: str, body: Obj) -> Obj:
        """PUT status or scale."""
        if subresource == "status":
            return await self.update_status(body)
        if subresource != "scale" or "scale" not in self.info.subresources:
            raise self._no_subresource(subresource)
        current = self._current(name)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise self._conflict(name, "the object has been modified; please apply your "
                                 "changes to the latest version and try again")
        new = copy.deepcopy(current)
        new["spec"]["replicas"] = (body.get("spec") or {}).get("replicas", 0)
        return _scale_of(self._store(current, new), self.info)

    def read_log(self, name: str, **_: Any) -> Any:
        """Refuse: pod logs come from an agent, which the fake does not have."""
        raise NotImplementedError("FakeApiClient has no pod logs")

    def _no_subresource(self, subresource: str) -> NotFoundError:
        return NotFoundError(404, "NotFound", f"the {subresource} subresource of "
                             f"{self.plural} is not served")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _apply_patch(target: Obj, body: Any, patch_type: str) -> Obj:
    if patch_type == "merge":
        merged: Obj = merge_patch(target, body)
        return merged
    try:
        result: Obj = jsonpatch.apply_patch(target, body)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
        raise InvalidError(422, "Invalid", f"json patch failed: {e}") from e
    return result


def _scale_of(obj: Obj, info: ResourceInfo) -> Obj:
    meta = obj["metadata"]
    selector = (obj.get("spec") or {}).get("selector")
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": str(LabelSelector.from_dict(selector)) if selector else ""},
    }


class FakeWatch(WatchStream):
    """A watch on a FakeCluster with the Watch interface (async iterator, resource_version)."""

    def __init__(self, rc: FakeResourceClient, resource_version: str | None, matches: Any,
                 timeout_seconds: int | None) -> None:
        self._rc = rc
        self._cluster = rc._cluster
        self._matches = matches
        self._timeout = timeout_seconds
        self._start = resource_version
        self.resource_version = resource_version
        self.events_seen = 0
        self._queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()
        self._gen: AsyncGenerator[WatchEvent, None] | None = None
        self._closed = False

    async def aclose(self) -> None:
        """Stop the watch."""
        self.end()
        self._closed = True

    def end(self) -> None:
        """End the stream (the iteration finishes after what is queued)."""
        if self in self._cluster._watchers:
            self._cluster._watchers.remove(self)
        self._queue.put_nowait(None)

    def offer(self, change: _Change) -> None:
        """Queue a stored change if it concerns this watch (selector transitions included)."""
        if not self._rc._in_scope(change.key):
            return
        now = change.type != "DELETED" and self._matches(change.obj)
        before = change.prev is not None and self._matches(change.prev)
        if change.type == "DELETED":
            event = "DELETED" if self._matches(change.obj) else None
        elif now:
            event = "MODIFIED" if before else "ADDED"
        else:
            event = "DELETED" if before else None
        if event is not None:
            self._queue.put_nowait(WatchEvent(event, copy.deepcopy(change.obj)))

    async def _events(self) -> AsyncGenerator[WatchEvent, None]:
        self._open()
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._timeout, self.end) if self._timeout else None
        try:
            while True:
                event = await self._queue.get()
                if event is None:
                    return
                self.resource_version = event.object["metadata"]["resourceVersion"]
                self.events_seen += 1
                yield event
        finally:
            if timer is not None:
                timer.cancel()
            self.end()

    def _open(self) -> None:
        if self._start in (None, "", "0"):
            for key, obj in sorted(self._cluster.objects.items()):
                if self._rc._in_scope(key) and self._matches(obj):
                    self._queue.put_nowait(WatchEvent("ADDED", copy.deepcopy(obj)))
        else:
            assert self._start is not None
            start = int(self._start)
            if start < self._cluster.compacted:
                raise GoneError(410, "Expired", f"too old resource version: {start} "
                                f"({self._cluster.compacted})")
            for change in self._cluster.history:
                if change.rv > start:
                    self.offer(change)
        self._cluster._watchers.append(self)
