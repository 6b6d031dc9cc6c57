"""Namespace (v1, cluster-scoped): defaults and validation.

Defaults as Kubernetes: spec.finalizers ["kubernetes"] and status.phase Active.
Invariants: namespace names are DNS-1123 labels; apply_defaults is idempotent.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    check,
    dns1123_label,
    qualified_name,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

PHASES = ("Active", "Terminating")


def apply_defaults(namespace: Obj) -> None:
    """Fill spec.finalizers and status.phase as Kubernetes does."""
    spec = set_default(namespace, "spec", {})
    if isinstance(spec, dict):
        set_default(spec, "finalizers", ["kubernetes"])
    status = set_default(namespace, "status", {})
    if isinstance(status, dict):
        set_default(status, "phase", "Active")


def validate(namespace: Obj) -> list[FieldError]:
    """Return every problem with a Namespace."""
    errs = validate_metadata(namespace, namespaced=False, name_rule=dns1123_label)
    spec = as_dict(namespace, "spec", "spec", errs)
    for i, name in enumerate(as_list(spec, "finalizers", "spec.finalizers", errs)):
        if not isinstance(name, str):
            errs.append(type_invalid(f"spec.finalizers[{i}]", name, "must be a string"))
        else:
            errs += check(f"spec.finalizers[{i}]", name, qualified_name)
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Namespace."""
    return validate_metadata_update(new, old)


def initial_status(namespace: Obj) -> Obj | None:
    """Return the status a new Namespace starts with."""
    return {"phase": "Active"}
