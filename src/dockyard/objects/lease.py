"""Lease (coordination.k8s.io/v1): validation of holder, duration and transitions.

Invariants: leaseDurationSeconds > 0 when set; leaseTransitions >= 0; acquireTime and renewTime
are RFC 3339 MicroTime strings when set.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.meta import parse_time
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    invalid,
    non_negative,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]


def apply_defaults(lease: Obj) -> None:
    """Leave Leases as written (Kubernetes defaults nothing on them)."""


def validate(lease: Obj) -> list[FieldError]:
    """Return every problem with a Lease."""
    errs = validate_metadata(lease, namespaced=True)
    spec = as_dict(lease, "spec", "spec", errs)
    holder = spec.get("holderIdentity")
    if holder is not None and not isinstance(holder, str):
        errs.append(type_invalid("spec.holderIdentity", holder, "must be a string"))
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and (not isinstance(duration, int) or duration <= 0):
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    non_negative("spec.leaseTransitions", spec.get("leaseTransitions"), errs)
    for key in ("acquireTime", "renewTime"):
        if spec.get(key) is not None and parse_time(spec[key]) is None:
            errs.append(invalid(f"spec.{key}", spec[key], "must be an RFC 3339 time"))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Lease."""
    return validate_metadata_update(new, old)
