"""Rules shared by the replicated workloads (Deployment, ReplicaSet): selector, template, counts.

Invariants: a workload's selector is required, non-empty and must select its own template's
labels ("`selector` does not match template `labels`", as Kubernetes words it); the template's
restartPolicy must be Always; spec.selector never changes after create.
"""

from __future__ import annotations

import re
from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.pod import apply_pod_spec_defaults, validate_pod_spec
from dockyard.objects.selectors import LabelSelector, SelectorError, validate_label_selector
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_str_map,
    forbidden,
    immutable,
    invalid,
    non_negative,
    not_supported,
    required,
    type_invalid,
    validate_labels,
)

Obj = dict[str, Any]

_PERCENT_RE = re.compile(r"^[0-9]+%\Z")
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  "
    "or '93%', regex used for validation is '[0-9]+%')"
)


def apply_template_defaults(spec: Obj) -> None:
    """Fill replicas (1) and the pod template's defaults in a workload spec."""
    set_default(spec, "replicas", 1)
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        apply_pod_spec_defaults(template["spec"])


def validate_workload_spec(spec: Any, kind: str) -> list[FieldError]:
    """Return the problems with replicas, minReadySeconds, selector and template."""
    if not isinstance(spec, dict):
        return [
            required("spec") if spec is None else type_invalid("spec", spec, "must be an object")
        ]
    errs: list[FieldError] = []
    non_negative("spec.replicas", spec.get("replicas"), errs)
    non_negative("spec.minReadySeconds", spec.get("minReadySeconds"), errs)
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        errs += validate_label_selector(selector, "spec.selector")
        if (
            isinstance(selector, dict)
            and not selector.get("matchLabels")
            and not selector.get("matchExpressions")
        ):
            errs.append(invalid("spec.selector", selector, f"empty selector is invalid for {kind}"))
    template = spec.get("template")
    if template is None:
        errs.append(required("spec.template"))
        return errs
    if not isinstance(template, dict):
        return [*errs, type_invalid("spec.template", template, "must be an object")]
    return errs + _validate_template(template, selector)


def _validate_template(template: Obj, selector: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    meta = as_dict(template, "metadata", "spec.template.metadata", errs)
    labels = as_str_map(meta, "labels", "spec.template.metadata.labels", errs)
    errs += validate_labels(labels, "spec.template.metadata.labels")
    if isinstance(selector, dict) and (
        selector.get("matchLabels") or selector.get("matchExpressions")
    ):
        try:
            matched = LabelSelector.from_dict(selector).matches(labels)
        except SelectorError:
            matched = True  # the selector's own errors are reported above
        if not matched:
            errs.append(
                invalid(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    spec = template.get("spec")
    if not isinstance(spec, dict):
        return [
            *errs,
            required("spec.template.spec")
            if spec is None
            else type_invalid("spec.template.spec", spec, "must be an object"),
        ]
    errs += validate_pod_spec(spec, "spec.template.spec")
    policy = spec.get("restartPolicy")
    if policy is not None and policy != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    if spec.get("activeDeadlineSeconds") is not None:
        errs.append(
            forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )
        )
    return errs


def validate_selector_update(new: Obj, old: Obj) -> list[FieldError]:
    """Refuse a change of spec.selector."""
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    assert isinstance(new_spec, dict) and isinstance(old_spec, dict)
    return immutable("spec.selector", new_spec.get("selector"), old_spec.get("selector"))


def int_or_percent(field: str, value: Any, *, max_percent: int | None = None) -> list[FieldError]:
    """Check an IntOrString that is an integer >= 0 or a percent string ("25%")."""
    if isinstance(value, bool):
        return [type_invalid(field, value, "must be an integer or percent string")]
    if isinstance(value, int):
        return [] if value >= 0 else [invalid(field, value, "must be greater than or equal to 0")]
    if not isinstance(value, str) or not _PERCENT_RE.match(value):
        return [invalid(field, value, _PERCENT_MSG)]
    if max_percent is not None and int(value[:-1]) > max_percent:
        return [invalid(field, value, f"must not be greater than {max_percent}%")]
    return []


def is_zero(value: Any) -> bool:
    """Return True for 0 and "0%" (an IntOrString that allows nothing)."""
    return value == 0 or value == "0%"


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """Resolve an IntOrString against a total, as Kubernetes: "25%" of 10 is 3 up, 2 down."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _PERCENT_RE.match(value):
        numerator = int(value[:-1]) * total
        return -(-numerator // 100) if round_up else numerator // 100
    return 0


_STATUS_COUNTS = (
    "replicas",
    "updatedReplicas",
    "readyReplicas",
    "availableReplicas",
    "unavailableReplicas",
    "fullyLabeledReplicas",
    "observedGeneration",
    "collisionCount",
    "terminatingReplicas",
)


def validate_workload_status(status: Any) -> list[FieldError]:
    """Return the problems with a Deployment or ReplicaSet status (counts that cannot be)."""
    if status is None:
        return []
    if not isinstance(status, dict):
        return [type_invalid("status", status, "must be an object")]
    errs: list[FieldError] = []
    for key in _STATUS_COUNTS:
        non_negative(f"status.{key}", status.get(key), errs)
    if errs:
        return errs
    counts = {k: status.get(k) or 0 for k in _STATUS_COUNTS}
    for key, limit in (
        ("readyReplicas", "replicas"),
        ("availableReplicas", "replicas"),
        ("availableReplicas", "readyReplicas"),
        ("updatedReplicas", "replicas"),
        ("fullyLabeledReplicas", "replicas"),
    ):
        if key in status and counts[key] > counts[limit]:
            # Kubernetes words the two bounds differently; keep its wording.
            bound = "status.replicas" if limit == "replicas" else limit
            errs.append(invalid(f"status.{key}", counts[key], f"cannot be greater than {bound}"))
    return errs
