"""PriorityClass (scheduling.k8s.io/v1, cluster-scoped): defaults and validation.

Defaults: preemptionPolicy PreemptLowerPriority. User-defined classes have values up to
1000000000; the "system-" name prefix is reserved for Kubernetes' built-in classes
(system-node-critical 2000001000, system-cluster-critical 2000000000).

Invariants: value and preemptionPolicy never change after create. Only one class may be
globalDefault: that needs the other classes, so the api server checks it.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    dict_of,
    forbidden,
    invalid,
    not_supported,
    required,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_CLASSES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}
PREEMPTION_POLICIES = ("Never", "PreemptLowerPriority")


def apply_defaults(priority_class: Obj) -> None:
    """Default preemptionPolicy to PreemptLowerPriority."""
    set_default(priority_class, "preemptionPolicy", "PreemptLowerPriority")


def validate(priority_class: Obj) -> list[FieldError]:
    """Return every problem with a PriorityClass."""
    errs = validate_metadata(priority_class, namespaced=False)
    name = str(dict_of(priority_class.get("metadata")).get("name") or "")
    value = priority_class.get("value")
    if value is None:
        errs.append(required("value"))
    elif not isinstance(value, int) or isinstance(value, bool):
        errs.append(type_invalid("value", value, "must be an integer"))
    elif name in SYSTEM_CLASSES:
        if value != SYSTEM_CLASSES[name]:
            errs.append(invalid("value", value, f"must be {SYSTEM_CLASSES[name]} for {name}"))
    elif name.startswith("system-"):
        errs.append(
            invalid(
                "metadata.name", name, "priority class names with 'system-' prefix are reserved"
            )
        )
    elif value > HIGHEST_USER_PRIORITY:
        errs.append(
            forbidden(
                "value",
                f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}",
            )
        )
    policy = priority_class.get("preemptionPolicy")
    if policy is not None and policy not in PREEMPTION_POLICIES:
        errs.append(not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
    default = priority_class.get("globalDefault")
    if default is not None and not isinstance(default, bool):
        errs.append(type_invalid("globalDefault", default, "must be a boolean"))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a PriorityClass (value and policy are fixed)."""
    errs = validate_metadata_update(new, old)
    for key in ("value", "preemptionPolicy"):
        if new.get(key) != old.get(key):
            errs.append(forbidden(key, "may not be changed in an update."))
    return errs
