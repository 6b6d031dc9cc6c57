"""ConfigMap: defaults and validation (metadata rules so far; kind rules follow).

Invariants: apply_defaults is idempotent; validators never raise on malformed input.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.validation import FieldError, validate_metadata, validate_metadata_update

Obj = dict[str, Any]


def apply_defaults(obj: Obj) -> None:
    """Fill the fields Kubernetes defaults on a ConfigMap."""


def validate(obj: Obj) -> list[FieldError]:
    """Return every problem with a ConfigMap."""
    return validate_metadata(obj, namespaced=True)


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return every problem with an update of a ConfigMap, immutable fields included."""
    return validate(new) + validate_metadata_update(new, old)
