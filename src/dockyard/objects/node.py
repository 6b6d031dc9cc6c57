"""Node (v1, cluster-scoped): defaults, validation and helpers for node conditions.

Defaults: status.allocatable copies status.capacity when absent (Kubernetes does the same).
Invariants: taints are unique per (key, effect); spec.podCIDR and spec.providerID never
change once set.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.quantity import QuantityError, parse_quantity
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    check,
    dict_of,
    duplicate,
    hashable,
    immutable,
    invalid,
    label_value,
    not_supported,
    qualified_name,
    required,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")


def apply_defaults(node: Obj) -> None:
    """Copy status.capacity into status.allocatable when allocatable is absent."""
    status = node.get("status")
    if isinstance(status, dict) and isinstance(status.get("capacity"), dict):
        set_default(status, "allocatable", dict(status["capacity"]))


def validate(node: Obj) -> list[FieldError]:
    """Return every problem with a Node."""
    errs = validate_metadata(node, namespaced=False)
    spec = as_dict(node, "spec", "spec", errs)
    for key in ("podCIDR",):
        if spec.get(key):
            errs += _cidr(f"spec.{key}", spec[key])
    for i, cidr in enumerate(as_list(spec, "podCIDRs", "spec.podCIDRs", errs)):
        errs += _cidr(f"spec.podCIDRs[{i}]", cidr)
    seen: set[tuple[Any, Any]] = set()
    for i, taint in enumerate(as_list(spec, "taints", "spec.taints", errs)):
        errs += _validate_taint(taint, f"spec.taints[{i}]", seen)
    unschedulable = spec.get("unschedulable")
    if unschedulable is not None and not isinstance(unschedulable, bool):
        errs.append(type_invalid("spec.unschedulable", unschedulable, "must be a boolean"))
    return errs + _validate_status(as_dict(node, "status", "status", errs))


ADDRESS_TYPES = ("ExternalDNS", "ExternalIP", "Hostname", "InternalDNS", "InternalIP")
CONDITION_STATUSES = ("False", "True", "Unknown")


def _validate_status(status: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("capacity", "allocatable"):
        for name, value in as_dict(status, key, f"status.{key}", errs).items():
            try:
                amount = parse_quantity(value)
            except QuantityError as exc:
                errs.append(invalid(f"status.{key}[{name}]", value, str(exc)))
                continue
            if amount < 0:
                errs.append(
                    invalid(f"status.{key}[{name}]", value, "must be greater than or equal to 0")
                )
    for i, condition in enumerate(as_list(status, "conditions", "status.conditions", errs)):
        item = f"status.conditions[{i}]"
        if not isinstance(condition, dict) or not condition.get("type"):
            errs.append(required(f"{item}.type"))
        elif condition.get("status") not in CONDITION_STATUSES:
            errs.append(
                not_supported(f"{item}.status", condition.get("status"), CONDITION_STATUSES)
            )
    for i, address in enumerate(as_list(status, "addresses", "status.addresses", errs)):
        item = f"status.addresses[{i}]"
        if not isinstance(address, dict):
            errs.append(type_invalid(item, address, "must be an object"))
        elif address.get("type") not in ADDRESS_TYPES:
            errs.append(not_supported(f"{item}.type", address.get("type"), ADDRESS_TYPES))
        elif not address.get("address"):
            errs.append(required(f"{item}.address"))
    return errs


def _cidr(field: str, value: Any) -> list[FieldError]:
    try:
        ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        return [
            invalid(field, value, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")
        ]
    return []


def _validate_taint(taint: Any, field: str, seen: set[tuple[Any, Any]]) -> list[FieldError]:
    if not isinstance(taint, dict):
        return [type_invalid(field, taint, "must be an object")]
    errs: list[FieldError] = []
    key, effect = taint.get("key"), taint.get("effect")
    if not key:
        errs.append(required(f"{field}.key"))
    else:
        errs += check(f"{field}.key", key, qualified_name)
    if taint.get("value"):
        errs += check(f"{field}.value", taint["value"], label_value)
    if not effect:
        errs.append(required(f"{field}.effect"))
    elif effect not in TAINT_EFFECTS:
        errs.append(not_supported(f"{field}.effect", effect, TAINT_EFFECTS))
    if hashable((key, effect)) in seen:
        errs.append(duplicate(field, taint))
    seen.add(hashable((key, effect)))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Node (podCIDR and providerID are set once)."""
    errs = validate_metadata_update(new, old)
    new_spec, old_spec = dict_of(new.get("spec")), dict_of(old.get("spec"))
    for key in ("podCIDR", "providerID"):
        if old_spec.get(key):
            errs += immutable(f"spec.{key}", new_spec.get(key), old_spec[key])
    return errs


def node_condition(node: Obj, kind: str) -> Obj | None:
    """Return the node condition of a type ("Ready"), or None."""
    status = node.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for condition in conditions or []:
        if isinstance(condition, dict) and condition.get("type") == kind:
            return condition
    return None


def is_node_ready(node: Obj) -> bool:
    """Return True if the node's Ready condition is True."""
    condition = node_condition(node, "Ready")
    return condition is not None and condition.get("status") == "True"
