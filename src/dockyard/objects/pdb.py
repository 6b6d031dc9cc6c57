"""PodDisruptionBudget (policy/v1): validation and its initial status.

Invariants: at most one of minAvailable and maxUnavailable; each is an integer >= 0 or a
percent string up to 100%; the selector is a valid metav1.LabelSelector.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.selectors import validate_label_selector
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    invalid,
    not_supported,
    validate_metadata,
    validate_metadata_update,
)
from dockyard.objects.workload import int_or_percent

Obj = dict[str, Any]

EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


def apply_defaults(pdb: Obj) -> None:
    """Leave PodDisruptionBudgets as written (policy/v1 defaults nothing we serve)."""


def validate(pdb: Obj) -> list[FieldError]:
    """Return every problem with a PodDisruptionBudget."""
    errs = validate_metadata(pdb, namespaced=True)
    spec = as_dict(pdb, "spec", "spec", errs)
    low, high = spec.get("minAvailable"), spec.get("maxUnavailable")
    if low is not None and high is not None:
        errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
    if low is not None:
        errs += int_or_percent("spec.minAvailable", low, max_percent=100)
    if high is not None:
        errs += int_or_percent("spec.maxUnavailable", high, max_percent=100)
    if spec.get("selector") is not None:
        errs += validate_label_selector(spec["selector"], "spec.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in EVICTION_POLICIES:
        errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, EVICTION_POLICIES))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a PodDisruptionBudget."""
    return validate_metadata_update(new, old)


def initial_status(pdb: Obj) -> Obj | None:
    """Return the zero status Kubernetes gives a new PodDisruptionBudget."""
    return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
