"""Event (v1, the core group's events): validation of the involved object and type.

Invariants: an event lives in its involved object's namespace (or in "default" for
cluster-scoped objects such as Nodes), as Kubernetes requires; type is Normal or Warning.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.validation import (
    FieldError,
    as_dict,
    dict_of,
    invalid,
    not_supported,
    required,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

EVENT_TYPES = ("Normal", "Warning")


def apply_defaults(event: Obj) -> None:
    """Leave events as written (Kubernetes defaults nothing on core events)."""


def validate(event: Obj) -> list[FieldError]:
    """Return every problem with an Event."""
    errs = validate_metadata(event, namespaced=True)
    namespace = dict_of(event.get("metadata")).get("namespace") or ""
    involved = as_dict(event, "involvedObject", "involvedObject", errs)
    target_ns = involved.get("namespace") or ""
    if not involved:
        errs.append(required("involvedObject"))
    elif not target_ns and namespace not in ("", "default") or target_ns and target_ns != namespace:
        errs.append(
            invalid("involvedObject.namespace", target_ns, "does not match event.namespace")
        )
    kind = event.get("type")
    if kind and kind not in EVENT_TYPES:
        errs.append(not_supported("type", kind, EVENT_TYPES))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to an Event."""
    return validate_metadata_update(new, old)
