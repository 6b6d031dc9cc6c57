"""Deployment (apps/v1): defaults, validation, and the Scale view of its replicas.

Defaults as Kubernetes: replicas 1, strategy RollingUpdate with maxUnavailable and maxSurge
"25%", revisionHistoryLimit 10, progressDeadlineSeconds 600, pod template defaults.

Invariants: apply_defaults is idempotent; spec.selector is immutable; maxSurge and
maxUnavailable are never both zero; progressDeadlineSeconds > minReadySeconds.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    forbidden,
    invalid,
    non_negative,
    not_supported,
    validate_metadata,
    validate_metadata_update,
)
from dockyard.objects.workload import (
    apply_template_defaults,
    int_or_percent,
    is_zero,
    validate_selector_update,
    validate_workload_spec,
    validate_workload_status,
)

Obj = dict[str, Any]

STRATEGY_TYPES = ("Recreate", "RollingUpdate")


def apply_defaults(deployment: Obj) -> None:
    """Fill the fields Kubernetes defaults on a Deployment."""
    spec = deployment.get("spec")
    if not isinstance(spec, dict):
        return
    apply_template_defaults(spec)
    strategy = set_default(spec, "strategy", {})
    if isinstance(strategy, dict):
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = set_default(strategy, "rollingUpdate", {})
            if isinstance(rolling, dict):
                set_default(rolling, "maxUnavailable", "25%")
                set_default(rolling, "maxSurge", "25%")
    set_default(spec, "revisionHistoryLimit", 10)
    set_default(spec, "progressDeadlineSeconds", 600)


def validate(deployment: Obj) -> list[FieldError]:
    """Return every problem with a Deployment."""
    errs = validate_metadata(deployment, namespaced=True)
    spec = deployment.get("spec")
    errs += validate_workload_spec(spec, "deployment")
    errs += validate_workload_status(deployment.get("status"))
    if not isinstance(spec, dict):
        return errs
    errs += _validate_strategy(spec.get("strategy"))
    non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"), errs)
    deadline = spec.get("progressDeadlineSeconds")
    non_negative("spec.progressDeadlineSeconds", deadline, errs)
    min_ready = spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and isinstance(min_ready, int) and deadline <= min_ready:
        errs.append(
            invalid(
                "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
            )
        )
    return errs


def _validate_strategy(strategy: Any) -> list[FieldError]:
    if not isinstance(strategy, dict):
        return []
    kind = strategy.get("type")
    if kind not in STRATEGY_TYPES:
        return [not_supported("spec.strategy.type", kind, STRATEGY_TYPES)]
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [
                forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            ]
        return []
    if not isinstance(rolling, dict):
        return []
    field = "spec.strategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = int_or_percent(f"{field}.maxUnavailable", unavailable, max_percent=100)
    errs += int_or_percent(f"{field}.maxSurge", surge)
    if not errs and is_zero(unavailable) and is_zero(surge):
        errs.append(
            invalid(f"{field}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0")
        )
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Deployment (spec.selector is immutable)."""
    return validate_metadata_update(new, old) + validate_selector_update(new, old)
