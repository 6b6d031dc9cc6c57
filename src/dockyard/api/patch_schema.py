"""Merge rules per field for the kinds dockyard serves: strategic merge patch and apply.

Kubernetes records these rules as struct tags in k8s.io/api: `patchMergeKey` and
`patchStrategy` drive strategic merge patch, and `+listType`/`+listMapKey`/`+structType`/
`+mapType` drive server-side apply. The rules here were read from core/v1, apps/v1,
policy/v1, autoscaling/v2 and meta/v1 types.go and are written as a tree of FieldSchema
nodes so that one node (POD_SPEC, CONTAINER...) serves every place it appears: `spec` of
a Pod and `spec.template.spec` of a Deployment or ReplicaSet share the same rules.

PatchError and json_copy live here because every module of the patch family (strategic,
patching, apply) uses them; dockyard.api.patching re-exports PatchError.

Invariants: a field absent from the tree has the default rules (maps merge key by key,
lists are atomic: replaced whole). Strategic and apply rules differ in places on purpose,
as they do in Kubernetes: container ports merge by `containerPort` in a strategic patch but
are keyed by (`containerPort`, `protocol`) in apply; node taints and tolerations have no
merge key (replaced whole) in both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Any

import orjson

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def json_copy(value: Any) -> Any:
    """Return a deep copy of a JSON-compatible value (orjson round trip: ~10x deepcopy)."""
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return copy.deepcopy(value)  # ints beyond 64 bits or non-JSON values


class PatchError(Exception):
    """A patch or apply that cannot be carried out, with the HTTP status to answer."""

    def __init__(self, status: int, reason: str, message: str,
                 causes: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.causes: list[dict[str, str]] = causes or []


@dataclass(frozen=True)
class FieldSchema:
    """How one field (and, for a list, each of its items) merges."""

    # Strategic merge patch: a list of maps merged by this key (patchMergeKey).
    merge_key: str | None = None
    # Strategic merge patch strategy: "merge" for keyed or set-like primitive lists,
    # "retainKeys" for unions whose old member is cleared, or both.
    strategy: frozenset[str] = frozenset()
    # Server-side apply: "atomic" (default), "map" (keyed by list_keys) or "set".
    list_type: str = "atomic"
    list_keys: tuple[str, ...] = ()
    # Values a missing list key takes (the server defaults them, e.g. protocol "TCP").
    key_defaults: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    # Server-side apply: a struct or map owned and replaced as one value.
    atomic: bool = False
    # Child fields of this struct, or of each item of this list.
    fields: Mapping[str, FieldSchema] = field(default_factory=lambda: _EMPTY)

    def child(self, name: str) -> FieldSchema:
        """Return the rules of a child field (defaults when the field is not described)."""
        return self.fields.get(name, DEFAULT)

    @cached_property
    def item(self) -> FieldSchema:
        """Return the rules of one item of this list (its fields, no list rules)."""
        return FieldSchema(fields=self.fields)

    @property
    def merges_list(self) -> bool:
        """Tell whether strategic merge patch merges this list rather than replacing it."""
        return "merge" in self.strategy

    @property
    def retains_keys(self) -> bool:
        """Tell whether this field honours `$retainKeys`."""
        return "retainKeys" in self.strategy


DEFAULT = FieldSchema()


def _struct(**fields: FieldSchema) -> FieldSchema:
    return FieldSchema(fields=MappingProxyType(dict(fields)))


def _keyed(
    merge_key: str | None,
    item: FieldSchema = DEFAULT,
    *,
    apply_keys: Iterable[str] | None = None,
    key_defaults: Mapping[str, Any] | None = None,
    retain_keys: bool = False,
) -> FieldSchema:
    """Describe a list of maps: strategic merge by merge_key, apply keyed by apply_keys."""
    keys = tuple(apply_keys) if apply_keys is not None else ((merge_key,) if merge_key else ())
    strategy = {"merge"} if merge_key else set()
    if retain_keys:
        strategy.add("retainKeys")
    return FieldSchema(
        merge_key=merge_key,
        strategy=frozenset(strategy),
        list_type="map" if keys else "atomic",
        list_keys=keys,
        key_defaults=MappingProxyType(dict(key_defaults or {})),
        fields=item.fields,
    )


def _primitive_set(*, strategic_merge: bool) -> FieldSchema:
    """Describe a list of strings that apply treats as a set."""
    strategy = frozenset({"merge"}) if strategic_merge else frozenset()
    return FieldSchema(strategy=strategy, list_type="set")


ATOMIC = FieldSchema(atomic=True)
RETAIN_KEYS = FieldSchema(strategy=frozenset({"retainKeys"}))
CONDITIONS = _keyed("type")
FINALIZERS = _primitive_set(strategic_merge=True)

OBJECT_META = _struct(
    ownerReferences=_keyed("uid"),
    finalizers=FINALIZERS,
)

CONTAINER = _struct(
    ports=_keyed(
        "containerPort", apply_keys=("containerPort", "protocol"), key_defaults={"protocol": "TCP"}
    ),
    env=_keyed("name", _struct(valueFrom=_struct(
        configMapKeyRef=ATOMIC, secretKeyRef=ATOMIC, fieldRef=ATOMIC, resourceFieldRef=ATOMIC,
    ))),
    volumeMounts=_keyed("mountPath"),
    volumeDevices=_keyed("devicePath"),
    resources=_struct(claims=_keyed(None, apply_keys=("name",))),
)

POD_SPEC = _struct(
    volumes=_keyed("name", retain_keys=True),
    initContainers=_keyed("name", CONTAINER),
    containers=_keyed("name", CONTAINER),
    ephemeralContainers=_keyed("name", CONTAINER),
    imagePullSecrets=_keyed("name"),
    hostAliases=_keyed("ip"),
    topologySpreadConstraints=_keyed(
        "topologyKey", apply_keys=("topologyKey", "whenUnsatisfiable")
    ),
    schedulingGates=_keyed("name"),
    resourceClaims=_keyed("name", retain_keys=True),
)

POD_STATUS = _struct(
    conditions=CONDITIONS,
    podIPs=_keyed("ip"),
    # hostIPs merge by ip in a strategic patch; apply treats the list as atomic.
    hostIPs=_keyed("ip", apply_keys=()),
)

POD_TEMPLATE_SPEC = _struct(metadata=OBJECT_META, spec=POD_SPEC)

_WORKLOAD_SPEC = _struct(selector=ATOMIC, template=POD_TEMPLATE_SPEC)

KINDS: Mapping[str, FieldSchema] = MappingProxyType(
    {
        "Pod": _struct(metadata=OBJECT_META, spec=POD_SPEC, status=POD_STATUS),
        "PodTemplate": _struct(metadata=OBJECT_META, template=POD_TEMPLATE_SPEC),
        "Deployment": _struct(
            metadata=OBJECT_META,
            spec=_struct(selector=ATOMIC, template=POD_TEMPLATE_SPEC, strategy=RETAIN_KEYS),
            status=_struct(conditions=CONDITIONS),
        ),
        "ReplicaSet": _struct(
            metadata=OBJECT_META, spec=_WORKLOAD_SPEC, status=_struct(conditions=CONDITIONS)
        ),
        "StatefulSet": _struct(
            metadata=OBJECT_META, spec=_WORKLOAD_SPEC, status=_struct(conditions=CONDITIONS)
        ),
        "DaemonSet": _struct(
            metadata=OBJECT_META, spec=_WORKLOAD_SPEC, status=_struct(conditions=CONDITIONS)
        ),
        "Service": _struct(
            metadata=OBJECT_META,
            spec=_struct(
                ports=_keyed(
                    "port", apply_keys=("port", "protocol"), key_defaults={"protocol": "TCP"}
                ),
                selector=ATOMIC,
            ),
            status=_struct(conditions=CONDITIONS),
        ),
        "Node": _struct(
            metadata=OBJECT_META,
            spec=_struct(podCIDRs=_primitive_set(strategic_merge=True)),
            status=_struct(conditions=CONDITIONS, addresses=_keyed("type")),
        ),
        "Namespace": _struct(metadata=OBJECT_META, status=_struct(conditions=CONDITIONS)),
        "ServiceAccount": _struct(metadata=OBJECT_META, secrets=_keyed("name")),
        "PodDisruptionBudget": _struct(
            metadata=OBJECT_META, spec=_struct(selector=ATOMIC),
            status=_struct(conditions=CONDITIONS),
        ),
        "HorizontalPodAutoscaler": _struct(
            metadata=OBJECT_META, status=_struct(conditions=CONDITIONS)
        ),
        "PersistentVolumeClaim": _struct(
            metadata=OBJECT_META, status=_struct(conditions=CONDITIONS)
        ),
    }
)

GENERIC = _struct(metadata=OBJECT_META)


def schema_for(kind: str) -> FieldSchema:
    """Return the merge rules of a kind (only metadata rules for a kind not described)."""
    return KINDS.get(kind, GENERIC)


def field_at(kind: str, path: Iterable[str]) -> FieldSchema:
    """Return the rules at a dotted field path, list items being transparent."""
    node = schema_for(kind)
    for name in path:
        node = node.child(name)
    return node
