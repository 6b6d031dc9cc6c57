"""HorizontalPodAutoscaler (autoscaling/v2): defaults and validation.

Defaults as Kubernetes: minReplicas 1; no metrics means cpu at 80% average utilization; when
a behavior is given, its missing scaleUp/scaleDown rules are filled with Kubernetes' defaults
(scale up: no stabilization, max of 4 pods or 100% per 15s; scale down: 300s stabilization,
100% per 15s).

Invariants: minReplicas >= 1; maxReplicas >= minReplicas; every metric names a supported
source type and a well-formed target.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.quantity import QuantityError, parse_quantity
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    check,
    invalid,
    not_supported,
    path_segment,
    required,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

DEFAULT_CPU_UTILIZATION = 80
METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")
_SCALE_UP = {
    "stabilizationWindowSeconds": 0,
    "selectPolicy": "Max",
    "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ],
}
_SCALE_DOWN = {
    "stabilizationWindowSeconds": 300,
    "selectPolicy": "Max",
    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
}


def apply_defaults(hpa: Obj) -> None:
    """Fill minReplicas, the default cpu metric and behavior rules as Kubernetes does."""
    spec = hpa.get("spec")
    if not isinstance(spec, dict):
        return
    set_default(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": DEFAULT_CPU_UTILIZATION,
                    },
                },
            }
        ]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for key, default in (("scaleUp", _SCALE_UP), ("scaleDown", _SCALE_DOWN)):
            rules = set_default(behavior, key, {})
            if isinstance(rules, dict):
                for name, value in default.items():
                    set_default(rules, name, copy.deepcopy(value))


def validate(hpa: Obj) -> list[FieldError]:
    """Return every problem with a HorizontalPodAutoscaler."""
    # Kubernetes only asks an HPA name to be a valid path segment.
    errs = validate_metadata(hpa, namespaced=True, name_rule=path_segment)
    spec = hpa.get("spec")
    if not isinstance(spec, dict):
        return [*errs, required("spec")]
    ref = as_dict(spec, "scaleTargetRef", "spec.scaleTargetRef", errs)
    for key in ("kind", "name"):
        if not ref.get(key):
            errs.append(required(f"spec.scaleTargetRef.{key}"))
        elif isinstance(ref[key], str):
            errs += check(f"spec.scaleTargetRef.{key}", ref[key], path_segment)
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if low is not None and (not isinstance(low, int) or low < 1):
        errs.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
    if not isinstance(high, int) or isinstance(high, bool):
        errs.append(
            required("spec.maxReplicas")
            if high is None
            else type_invalid("spec.maxReplicas", high, "must be an integer")
        )
    elif high < 1:
        errs.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    elif isinstance(low, int) and high < low:
        errs.append(
            invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`")
        )
    for i, metric in enumerate(as_list(spec, "metrics", "spec.metrics", errs)):
        errs += _validate_metric(metric, f"spec.metrics[{i}]")
    behavior = as_dict(spec, "behavior", "spec.behavior", errs)
    for key in ("scaleUp", "scaleDown"):
        rules = as_dict(behavior, key, f"spec.behavior.{key}", errs)
        if rules:
            errs += _validate_rules(rules, f"spec.behavior.{key}")
    return errs


SELECT_POLICIES = ("Disabled", "Max", "Min")
POLICY_TYPES = ("Percent", "Pods")


def _validate_rules(rules: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        errs.append(not_supported(f"{field}.selectPolicy", select, SELECT_POLICIES))
    window = rules.get("stabilizationWindowSeconds")
    if window is not None and (not isinstance(window, int) or not 0 <= window <= 3600):
        errs.append(
            invalid(
                f"{field}.stabilizationWindowSeconds",
                window,
                "must be between 0 and 3600, inclusive",
            )
        )
    policies = as_list(rules, "policies", f"{field}.policies", errs)
    if not policies:
        errs.append(required(f"{field}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(policies):
        item = f"{field}.policies[{i}]"
        if not isinstance(policy, dict):
            errs.append(type_invalid(item, policy, "must be an object"))
            continue
        if policy.get("type") not in POLICY_TYPES:
            errs.append(not_supported(f"{item}.type", policy.get("type"), POLICY_TYPES))
        value, period = policy.get("value"), policy.get("periodSeconds")
        if not isinstance(value, int) or value <= 0:
            errs.append(invalid(f"{item}.value", value, "must be greater than zero"))
        if not isinstance(period, int) or not 0 < period <= 1800:
            errs.append(
                invalid(
                    f"{item}.periodSeconds",
                    period,
                    "must be greater than zero and less than or equal to 1800",
                )
            )
    return errs


_SOURCE_KEYS = {
    "Resource": "resource",
    "ContainerResource": "containerResource",
    "Pods": "pods",
    "Object": "object",
    "External": "external",
}


def _validate_metric(metric: Any, field: str) -> list[FieldError]:
    if not isinstance(metric, dict):
        return [type_invalid(field, metric, "must be an object")]
    kind = metric.get("type")
    if kind not in METRIC_TYPES:
        return [not_supported(f"{field}.type", kind, METRIC_TYPES)]
    key = _SOURCE_KEYS[str(kind)]
    source = metric.get(key)
    if not isinstance(source, dict):
        return [required(f"{field}.{key}", "must populate information for the given metric source")]
    errs: list[FieldError] = []
    if kind in ("Resource", "ContainerResource") and not source.get("name"):
        errs.append(required(f"{field}.{key}.name"))
    if kind == "ContainerResource" and not source.get("container"):
        errs.append(required(f"{field}.{key}.container"))
    target = source.get("target")
    if not isinstance(target, dict):
        return [*errs, required(f"{field}.{key}.target")]
    return errs + _validate_target(target, f"{field}.{key}.target")


def _validate_target(target: Obj, field: str) -> list[FieldError]:
    kind = target.get("type")
    if kind not in TARGET_TYPES:
        return [not_supported(f"{field}.type", kind, TARGET_TYPES)]
    if kind == "Utilization":
        value = target.get("averageUtilization")
        if not isinstance(value, int) or value < 1:
            return [invalid(f"{field}.averageUtilization", value, "must be greater than 0")]
        return []
    name = "averageValue" if kind == "AverageValue" else "value"
    value = target.get(name)
    if value is None:
        return [
            required(
                f"{field}.{name}", "must set either a target raw value or a target average value"
            )
        ]
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:
        return [invalid(f"{field}.{name}", value, str(exc))]
    return [] if amount > 0 else [invalid(f"{field}.{name}", value, "must be positive")]


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a HorizontalPodAutoscaler."""
    return validate_metadata_update(new, old)
