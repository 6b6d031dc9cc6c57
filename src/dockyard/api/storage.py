"""Generic REST storage: every kind's create, read, update, patch and delete over a Store.

Kubernetes object semantics live here, once for all kinds: uid, creationTimestamp, generation
bumped on spec changes only, resourceVersion = the store's mod_revision (compare-and-swap on
every write), generateName, finalizers and deletionTimestamp, graceful deletion of pods bound
to a node, status written only through /status, defaults and validation from
``dockyard.objects``. Invariants: nothing invalid is ever stored; a failed request changes
nothing; ``dryRun`` runs every check and stores nothing; a no-op update does not write.

A namespaced create is refused in a missing or terminating namespace; ``namespaces`` (see
``dockyard.api.namespace_cache``) answers that from memory, and every namespace write made here
is reported to it as soon as the store commits it.
"""

from __future__ import annotations

import base64
import builtins
import functools
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from dockyard.api import status
from dockyard.api.admission import ADMITTERS, UPDATE_ADMITTERS
from dockyard.api.namespace_cache import NamespaceCache
from dockyard.api.status import StatusError
from dockyard.objects.kinds import (
    handlers_for,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
)
from dockyard.objects.resources import RESOURCES, ResourceInfo, lookup_kind
from dockyard.objects.selectors import FieldSelector, LabelSelector, SelectorError
from dockyard.objects.validation import FieldError
from dockyard.store.base import (
    MAX_VALUE_BYTES,
    AlreadyExistsError,
    CompactedError,
    ConflictError,
    KeyValue,
    NotFoundError,
    Store,
)

NAMESPACE_INFO = next(r for r in RESOURCES if r.kind == "Namespace" and r.group == "")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' generateName alphabet: no vowels
_UPDATE_RETRIES = 16
# uids need uniqueness, not secrecy: a PRNG seeded once from the OS costs far less per object
# than uuid4()'s os.urandom call on every create (measured: 6% of a create's CPU here).
_uid_random = random.Random(secrets.randbits(128))
Mutation = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")


def now_rfc3339() -> str:
    """Return the current time as Kubernetes writes timestamps (second precision, UTC)."""
    # Formatted once per second: datetime.now().strftime was 5% of a create's CPU.
    return _rfc3339(int(time.time()))


@functools.lru_cache(maxsize=1)
def _rfc3339(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def object_key(info: ResourceInfo, namespace: str | None, name: str) -> str:
    """Return the store key of one object."""
    return f"{collection_prefix(info, namespace if info.namespaced else None)}{name}"


def collection_prefix(info: ResourceInfo, namespace: str | None) -> str:
    """Return the key prefix of a collection (one namespace, or all namespaces when None)."""
    base = f"/registry/{info.plural}.{info.group}" if info.group else f"/registry/{info.plural}"
    return f"{base}/{namespace}/" if info.namespaced and namespace else f"{base}/"


def decode(kv: KeyValue) -> dict[str, Any]:
    """Return the stored object with its resourceVersion filled in."""
    obj: dict[str, Any] = orjson.loads(kv.value)
    obj["metadata"]["resourceVersion"] = str(kv.mod_revision)
    return obj


def encode(obj: dict[str, Any]) -> bytes:
    """Return the bytes to store: apiVersion, kind, metadata (without resourceVersion, which is
    the store's revision) first, then the rest. ``encoded_with_version`` relies on that order."""
    data = orjson.dumps(_stored_layout(obj))
    if len(data) > MAX_VALUE_BYTES:
        raise status.too_large("the object", MAX_VALUE_BYTES)
    return data


def _stored_layout(obj: dict[str, Any]) -> dict[str, Any]:
    """Return obj (shallowly copied) in the stored key order, without resourceVersion."""
    metadata = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    ordered = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": metadata}
    ordered.update((k, v) for k, v in obj.items() if k not in ordered)
    return ordered


_METADATA_OPEN = b'"metadata":{'


def encoded_with_version(kv: KeyValue) -> bytes:
    """Return the stored JSON with metadata.resourceVersion spliced in, without decoding it.

    Lists of thousands of objects are served this way. It is exact because ``encode`` puts
    metadata before any other object-valued field, and a JSON string never holds an unescaped
    quote, so the first ``"metadata":{`` is the top-level one; anything else is re-encoded.
    """
    value = kv.value
    start = value.find(_METADATA_OPEN)
    if start < 0 or value.find(b"{", 1) != start + len(_METADATA_OPEN) - 1:
        return orjson.dumps(decode(kv))
    at = start + len(_METADATA_OPEN)
    separator = b"" if value[at:at + 1] == b"}" else b","
    return b"%s\"resourceVersion\":\"%d\"%s%s" % (value[:at], kv.mod_revision, separator,
                                                   value[at:])


@dataclass
class ListResult:
    """One page of a list: the matching objects, the revision and the continue token."""

    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str = ""


@dataclass(frozen=True)
class DeleteOptions:
    """What a DELETE asked for (metav1.DeleteOptions)."""

    propagation_policy: str = "Background"
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_resource_version: str | None = None
    dry_run: bool = False


class ResourceStorage:
    """Create, read, update, patch and delete objects of every served kind."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Started by the api server; until then (and in tools) every lookup reads the store.
        self.namespaces = NamespaceCache(store)

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
        """Return one object, or raise 404."""
        kv = await self.store.get(object_key(info, namespace, name))
        if kv is None:
            raise status.not_found(info.plural, name, info.group)
        return decode(kv)

    async def list(
        self,
        info: ResourceInfo,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> ListResult:
        """Return the objects of a collection that match the selectors, one page at a time."""
        labels, fields = parse_selectors(label_selector, field_selector, info.kind)

        def keep(kv: KeyValue) -> dict[str, Any] | None:
            obj = decode(kv)
            return obj if _matches(obj, labels, fields) else None

        items, revision, token = await self._scan(info, namespace, limit, continue_token, keep)
        return ListResult(items, revision, token)

    async def list_encoded(
        self, info: ResourceInfo, namespace: str | None, *, limit: int = 0,
        continue_token: str = "",
    ) -> tuple[builtins.list[bytes], int, str]:
        """Return a collection's objects as JSON bytes, unfiltered, without decoding them."""
        return await self._scan(info, namespace, limit, continue_token, encoded_with_version)

    async def _scan(
        self,
        info: ResourceInfo,
        namespace: str | None,
        limit: int,
        continue_token: str,
        keep: Callable[[KeyValue], T | None],
    ) -> tuple[builtins.list[T], int, str]:
        """Page through a collection, keeping what keep returns, up to limit items."""
        prefix = collection_prefix(info, namespace)
        start_after, revision = _decode_continue(continue_token, prefix)
        items: builtins.list[T] = []
        while True:
            page_size = max(limit - len(items), 0) if limit else 0
            try:
                kvs, rev, more = await self.store.list(
                    prefix, limit=page_size, start_after=start_after, revision=revision
                )
            except CompactedError:
                raise status.gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                ) from None
            revision = revision or rev
            for kv in kvs:
                kept = keep(kv)
                if kept is not None:
                    items.append(kept)
            if kvs:
                start_after = kvs[-1].key
            if not more or (limit and len(items) >= limit):
                break
        token = _encode_continue(start_after, revision) if more else ""
        return items, revision, token

    async def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        obj: dict[str, Any],
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Store a new object after defaults and validation; return it as stored."""
        check_type(info, obj)
        meta = _fresh_metadata(info, namespace, obj)
        if info.namespaced:
            await self._check_namespace_accepts(meta["namespace"])
        prepare_for_create(obj)
        handlers = handlers_for(info.kind)
        handlers.apply_defaults(obj)
        for admit in ADMITTERS:
            await admit(self, info, obj)
        generated = "name" not in meta
        for _attempt in range(8):
            if generated:
                meta["name"] = meta["generateName"] + "".join(
                    secrets.choice(_NAME_CHARS) for _ in range(5)
                )
            _raise_invalid(info, obj, handlers.validate(obj))
            if dry_run:
                return obj
            layout = _stored_layout(obj)
            try:
                kv = await self.store.create(object_key(info, namespace, meta["name"]),
                                             encode(layout))
            except AlreadyExistsError:
                if generated:
                    continue
                raise status.already_exists(info.plural, meta["name"], info.group) from None
            self._written(info, kv)
            # What decode(kv) would return, without decoding the bytes just encoded.
            layout["metadata"]["resourceVersion"] = str(kv.mod_revision)
            return layout
        raise StatusError(500, "InternalError", "could not generate a unique name; try again")

    async def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Mutation,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        expected_resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Apply mutate to the current object and store the result (CAS, retried on races).

        With expected_resource_version (a PUT that carries one) a stale version is a 409;
        without it (patches, unconditional PUT) a lost race is retried on a fresh read.
        """
        key = object_key(info, namespace, name)
        for _attempt in range(_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise status.not_found(info.plural, name, info.group)
            current = decode(kv)
            if expected_resource_version and expected_resource_version != str(kv.mod_revision):
                raise status.conflict(info.plural, name, info.group)
            proposed = mutate(decode(kv))  # a private copy: decoding beats copy.deepcopy
            check_type(info, proposed)
            new = await self._prepare_update(info, current, proposed, subresource)
            if new == current:
                return current
            if dry_run:
                return new
            try:
                return await self._write(info, key, new, kv.mod_revision)
            except ConflictError:
                if expected_resource_version:
                    raise status.conflict(info.plural, name, info.group) from None
        raise status.conflict(info.plural, name, info.group, "too many concurrent writers")

    async def delete(
        self, info: ResourceInfo, namespace: str | None, name: str, options: DeleteOptions
    ) -> dict[str, Any]:
        """Delete an object, or mark it deleting when finalizers or a grace period hold it."""
        key = object_key(info, namespace, name)
        for _attempt in range(_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise status.not_found(info.plural, name, info.group)
            current = decode(kv)
            _check_preconditions(info, current, options)
            marked = _mark_deleting(info, decode(kv), options)
            if options.dry_run:
                return marked if marked is not None else current
            try:
                if marked is None:
                    deleted = await self.store.delete(key, kv.mod_revision)
                    self._deleted(info, name, deleted.mod_revision)
                    return decode(deleted)
                if marked == current:
                    return current
                return await self._write(info, key, marked, kv.mod_revision)
            except (ConflictError, NotFoundError):
                continue
        raise status.conflict(info.plural, name, info.group, "too many concurrent writers")

    async def _write(
        self, info: ResourceInfo, key: str, new: dict[str, Any], revision: int
    ) -> dict[str, Any]:
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not _held(info, new):
            deleted = await self.store.delete(key, revision)
            self._deleted(info, meta["name"], deleted.mod_revision)
            # Answer with what the client asked for (finalizers gone), as the deleted state.
            meta["resourceVersion"] = str(deleted.mod_revision)
            return new
        kv = await self.store.update(key, encode(new), revision)
        self._written(info, kv)
        return decode(kv)

    def _written(self, info: ResourceInfo, kv: KeyValue) -> None:
        """Tell the namespace cache of a committed namespace write (no await: before anyone
        else runs, so the next create sees a namespace this server just marked terminating)."""
        if _is_namespace(info):
            self.namespaces.observe_value(kv)

    def _deleted(self, info: ResourceInfo, name: str, revision: int) -> None:
        if _is_namespace(info):
            self.namespaces.observe_deleted(name, revision)

    async def _prepare_update(
        self,
        info: ResourceInfo,
        current: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
    ) -> dict[str, Any]:
        """Return what to store: server-owned fields kept, defaults applied, admitted, valid.

        A /status write keeps everything but status; the binding subresource may set
        spec.nodeName (and the PodScheduled condition), which a client's update may not.
        """
        _keep_server_metadata(current, new)
        handlers = handlers_for(info.kind)
        if subresource == "status":
            prepare_for_status_update(new, current)
        elif subresource is None:
            handlers.apply_defaults(new)
            prepare_for_update(new, current)
            for admit in UPDATE_ADMITTERS:
                await admit(self, info, new, current)
        errors = handlers.validate(new)
        if subresource != "binding":
            errors += handlers.validate_update(new, current)
        _raise_invalid(info, new, errors)
        new["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return new

    async def _check_namespace_accepts(self, namespace: str) -> None:
        state = await self.namespaces.lookup(namespace)
        if state is None:
            raise status.not_found("namespaces", namespace)
        if state.terminating:
            raise StatusError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} "
                "because it is being terminated",
            )


def _is_namespace(info: ResourceInfo) -> bool:
    return info.plural == NAMESPACE_INFO.plural and info.group == NAMESPACE_INFO.group


def check_type(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """Refuse a body whose apiVersion or kind is not this resource's (an empty one is filled)."""
    if not isinstance(obj, dict):
        raise status.bad_request("the request body must be a JSON or YAML object")
    api_version = obj.setdefault("apiVersion", info.api_version)
    kind = obj.setdefault("kind", info.kind)
    if kind != info.kind:
        raise status.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
        )
    if api_version != info.api_version:
        other = lookup_kind(api_version, kind) if isinstance(api_version, str) else None
        hint = "" if other else f"; {info.kind} is served as {info.api_version}"
        raise status.bad_request(
            f"the API version in the data ({api_version}) does not match the expected "
            f"API version ({info.api_version}){hint}"
        )
    if not isinstance(obj.setdefault("metadata", {}), dict):
        raise status.bad_request("metadata must be an object")


def parse_selectors(
    label_selector: str, field_selector: str, kind: str
) -> tuple[LabelSelector | None, FieldSelector | None]:
    """Parse the labelSelector and fieldSelector query parameters (400 when malformed)."""
    try:
        labels = LabelSelector.parse(label_selector) if label_selector else None
        fields = FieldSelector.parse(field_selector, kind) if field_selector else None
    except SelectorError as error:
        raise status.bad_request(str(error)) from None
    return labels, fields


def matches(
    obj: dict[str, Any], labels: LabelSelector | None, fields: FieldSelector | None
) -> bool:
    """Tell whether an object passes the label and field selectors."""
    return _matches(obj, labels, fields)


def _matches(
    obj: dict[str, Any], labels: LabelSelector | None, fields: FieldSelector | None
) -> bool:
    if labels is not None and not labels.matches(obj["metadata"].get("labels") or {}):
        return False
    return fields is None or fields.matches(obj)


def _fresh_metadata(
    info: ResourceInfo, namespace: str | None, obj: dict[str, Any]
) -> dict[str, Any]:
    meta: dict[str, Any] = obj["metadata"]
    if info.namespaced:
        body_ns = meta.get("namespace")
        if body_ns and body_ns != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                f"the request ({body_ns!r} vs {namespace!r})"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if not meta.get("name"):
        meta.pop("name", None)
        if not meta.get("generateName"):
            raise status.invalid(
                info.kind,
                "",
                [{"reason": "FieldValueRequired", "field": "metadata.name",
                  "message": "Required value: name or generateName is required"}],
                info.group,
            )
    for server_owned in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(server_owned, None)
    meta["uid"] = str(uuid.UUID(int=_uid_random.getrandbits(128), version=4))
    meta["creationTimestamp"] = now_rfc3339()
    return meta


def _keep_server_metadata(current: dict[str, Any], new: dict[str, Any]) -> None:
    old_meta = current["metadata"]
    meta = new.setdefault("metadata", {})
    for owned in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds"):
        if owned in old_meta:
            meta[owned] = old_meta[owned]
        else:
            meta.pop(owned, None)
    new["apiVersion"] = current["apiVersion"]
    new["kind"] = current["kind"]


def _raise_invalid(info: ResourceInfo, obj: dict[str, Any], errors: list[FieldError]) -> None:
    if errors:
        name = obj.get("metadata", {}).get("name") or obj.get("metadata", {}).get(
            "generateName", ""
        )
        raise status.invalid(info.kind, str(name), [e.to_cause() for e in errors], info.group)


def _check_preconditions(info: ResourceInfo, obj: dict[str, Any], options: DeleteOptions) -> None:
    meta = obj["metadata"]
    if options.precondition_uid and options.precondition_uid != meta.get("uid"):
        raise status.conflict(
            info.plural, meta["name"], info.group,
            f"Precondition failed: UID in precondition: {options.precondition_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    wanted_rv = options.precondition_resource_version
    if wanted_rv and wanted_rv != meta.get("resourceVersion"):
        raise status.conflict(
            info.plural, meta["name"], info.group,
            f"Precondition failed: ResourceVersion in precondition: {wanted_rv}, "
            f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
        )


def _mark_deleting(
    info: ResourceInfo, obj: dict[str, Any], options: DeleteOptions
) -> dict[str, Any] | None:
    """Return the object marked for deletion, or None when it can go at once."""
    meta = obj["metadata"]
    finalizers: list[str] = list(meta.get("finalizers") or [])
    if options.propagation_policy == "Foreground" and "foregroundDeletion" not in finalizers:
        finalizers.append("foregroundDeletion")
    elif options.propagation_policy == "Orphan" and "orphan" not in finalizers:
        finalizers.append("orphan")
    grace = _grace_seconds(info, obj, options)
    if meta.get("deletionTimestamp"):
        if grace == 0 and info.kind == "Pod" and not meta.get("finalizers"):
            return None  # a forced delete of a pod already terminating
        return obj
    if not finalizers and not grace and not _spec_finalizers(obj):
        return None
    if finalizers:
        meta["finalizers"] = finalizers
    meta["deletionTimestamp"] = now_rfc3339()
    meta["deletionGracePeriodSeconds"] = grace or 0
    if info.kind == "Namespace":
        obj.setdefault("status", {})["phase"] = "Terminating"
    return obj


def _grace_seconds(info: ResourceInfo, obj: dict[str, Any], options: DeleteOptions) -> int:
    """Return the grace period: only pods already bound to a node get one."""
    if info.kind != "Pod" or not obj.get("spec", {}).get("nodeName"):
        return 0
    if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return 0
    if options.grace_period_seconds is not None:
        return max(options.grace_period_seconds, 0)
    return int(obj["spec"].get("terminationGracePeriodSeconds", 30))


def _held(info: ResourceInfo, obj: dict[str, Any]) -> bool:
    """Tell whether a deleting object must wait: a pod for its node's agent to confirm the
    kill, a namespace for its contents to be deleted (spec.finalizers)."""
    if info.kind == "Pod":
        return bool(obj["metadata"].get("deletionGracePeriodSeconds"))
    return bool(_spec_finalizers(obj))


def _spec_finalizers(obj: dict[str, Any]) -> list[str]:
    """Return a namespace's spec.finalizers (other kinds have none)."""
    if obj.get("kind") != "Namespace":
        return []
    return list(obj.get("spec", {}).get("finalizers") or [])


def _encode_continue(start_after: str, revision: int) -> str:
    raw = orjson.dumps({"k": start_after, "rv": revision})
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str, prefix: str) -> tuple[str, int]:
    if not token:
        return "", 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        key, revision = str(data["k"]), int(data["rv"])
    except (ValueError, KeyError, TypeError):
        raise status.bad_request("invalid continue token; start the list again") from None
    if not key.startswith(prefix):
        raise status.bad_request("the continue token belongs to another collection")
    return key, revision
