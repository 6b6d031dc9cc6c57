"""ReplicaSet (apps/v1): defaults (replicas 1, pod template defaults) and validation.

Invariants: apply_defaults is idempotent; spec.selector is immutable and must select the
template's labels.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.validation import FieldError, validate_metadata, validate_metadata_update
from dockyard.objects.workload import (
    apply_template_defaults,
    validate_selector_update,
    validate_workload_spec,
    validate_workload_status,
)

Obj = dict[str, Any]


def apply_defaults(replicaset: Obj) -> None:
    """Fill the fields Kubernetes defaults on a ReplicaSet."""
    spec = replicaset.get("spec")
    if isinstance(spec, dict):
        apply_template_defaults(spec)


def validate(replicaset: Obj) -> list[FieldError]:
    """Return every problem with a ReplicaSet."""
    errs = validate_metadata(replicaset, namespaced=True)
    # Kubernetes says "empty selector is invalid for deployment" for ReplicaSets too.
    errs += validate_workload_spec(replicaset.get("spec"), "deployment")
    return errs + validate_workload_status(replicaset.get("status"))


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a ReplicaSet (spec.selector is immutable)."""
    return validate_metadata_update(new, old) + validate_selector_update(new, old)
