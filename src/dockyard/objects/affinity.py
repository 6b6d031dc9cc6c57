"""Scheduling constraints in a pod spec: node and pod (anti-)affinity, topology spread.

The scheduler trusts these shapes once stored, so every operator, weight and topology key is
checked here with Kubernetes' rules and wording.

Invariants: validators never raise on malformed input; node selector requirements use
In/NotIn/Exists/DoesNotExist/Gt/Lt, label selector requirements In/NotIn/Exists/DoesNotExist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dockyard.objects.selectors import operator_values_error, validate_label_selector
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    check,
    dict_of,
    dns1123_label,
    duplicate,
    hashable,
    invalid,
    list_of,
    not_supported,
    qualified_name,
    required,
    type_invalid,
)

Obj = dict[str, Any]

NODE_OPERATORS = ("DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn")
UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")
_REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
_PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


def validate_affinity(affinity: Any, field: str) -> list[FieldError]:
    """Validate spec.affinity (nodeAffinity, podAffinity, podAntiAffinity)."""
    if affinity is None:
        return []
    if not isinstance(affinity, dict):
        return [type_invalid(field, affinity, "must be an object")]
    errs: list[FieldError] = []
    node = as_dict(affinity, "nodeAffinity", f"{field}.nodeAffinity", errs)
    errs += _node_affinity(node, f"{field}.nodeAffinity")
    for key in ("podAffinity", "podAntiAffinity"):
        errs += _pod_affinity(as_dict(affinity, key, f"{field}.{key}", errs), f"{field}.{key}")
    return errs


def _node_affinity(node: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    selector = node.get(_REQUIRED)
    if selector is not None:
        errs += validate_node_selector(selector, f"{field}.{_REQUIRED}")
    errs += _preferred(node, field, "preference",
                       lambda term, at: _node_selector_term(dict_of(term), at), errs)
    return errs


def validate_node_selector(selector: Any, field: str) -> list[FieldError]:
    """Validate a NodeSelector: at least one term, each term's requirements well formed."""
    if not isinstance(selector, dict):
        return [type_invalid(field, selector, "must be an object")]
    errs: list[FieldError] = []
    terms = as_list(selector, "nodeSelectorTerms", f"{field}.nodeSelectorTerms", errs)
    if not terms and not errs:
        errs.append(
            required(f"{field}.nodeSelectorTerms", "must have at least one node selector term")
        )
    for i, term in enumerate(terms):
        errs += _node_selector_term(term, f"{field}.nodeSelectorTerms[{i}]")
    return errs


def _node_selector_term(term: Any, field: str) -> list[FieldError]:
    if not isinstance(term, dict):
        return [type_invalid(field, term, "must be an object")]
    errs: list[FieldError] = []
    for i, req in enumerate(as_list(term, "matchExpressions", f"{field}.matchExpressions", errs)):
        errs += node_requirement(req, f"{field}.matchExpressions[{i}]", label_key=True)
    for i, req in enumerate(as_list(term, "matchFields", f"{field}.matchFields", errs)):
        item = f"{field}.matchFields[{i}]"
        errs += node_requirement(req, item, label_key=False)
        if isinstance(req, dict) and req.get("key") != "metadata.name":
            errs.append(not_supported(f"{item}.key", req.get("key"), ["metadata.name"]))
    return errs


def node_requirement(req: Any, field: str, *, label_key: bool) -> list[FieldError]:
    """Validate one NodeSelectorRequirement (key, operator, values)."""
    if not isinstance(req, dict):
        return [type_invalid(field, req, "must be an object")]
    errs: list[FieldError] = []
    operator, values = req.get("operator"), list_of(req.get("values"))
    error = operator_values_error(operator, values, field)
    if error is not None:
        errs.append(error)
    elif operator in ("Gt", "Lt"):
        if len(values) != 1:
            errs.append(
                required(
                    f"{field}.values",
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                )
            )
        elif not _is_int(values[0]):
            errs.append(invalid(f"{field}.values[0]", values[0], "must be an integer"))
    elif operator not in NODE_OPERATORS:
        errs.append(invalid(f"{field}.operator", operator, "not a valid selector operator"))
    key = req.get("key")
    if not key:
        errs.append(required(f"{field}.key"))
    elif label_key and isinstance(key, str):
        errs += check(f"{field}.key", key, qualified_name)
    return errs


def _is_int(value: Any) -> bool:
    try:
        int(value)
    except (TypeError, ValueError):
        return False
    return True


def _preferred(
    owner: Obj, field: str, term_key: str, check_term: Callable[[Any, str], list[FieldError]],
    errs: list[FieldError],
) -> list[FieldError]:
    """Return the errors of owner's preferred terms: each an object, a weight, a term_key term.

    A preferred list that is not a list is reported into errs (as_list's way).
    """
    found: list[FieldError] = []
    for i, weighted in enumerate(as_list(owner, _PREFERRED, f"{field}.{_PREFERRED}", errs)):
        item = f"{field}.{_PREFERRED}[{i}]"
        if not isinstance(weighted, dict):
            found.append(type_invalid(item, weighted, "must be an object"))
            continue
        found += _weight(weighted.get("weight"), f"{item}.weight")
        found += check_term(weighted.get(term_key), f"{item}.{term_key}")
    return found


def _weight(value: Any, field: str) -> list[FieldError]:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100:
        return [invalid(field, value, "must be in the range 1-100")]
    return []


def _pod_affinity(affinity: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, term in enumerate(as_list(affinity, _REQUIRED, f"{field}.{_REQUIRED}", errs)):
        errs += _pod_affinity_term(term, f"{field}.{_REQUIRED}[{i}]")
    errs += _preferred(affinity, field, "podAffinityTerm", _pod_affinity_term, errs)
    return errs


def _pod_affinity_term(term: Any, field: str) -> list[FieldError]:
    if not isinstance(term, dict):
        return [type_invalid(field, term, "must be an object")]
    errs: list[FieldError] = []
    key = term.get("topologyKey")
    if not key:
        errs.append(required(f"{field}.topologyKey", "can not be empty"))
    elif isinstance(key, str):
        errs += check(f"{field}.topologyKey", key, qualified_name)
    for name in ("labelSelector", "namespaceSelector"):
        if term.get(name) is not None:
            errs += validate_label_selector(term[name], f"{field}.{name}")
    for i, namespace in enumerate(as_list(term, "namespaces", f"{field}.namespaces", errs)):
        if not isinstance(namespace, str):
            errs.append(type_invalid(f"{field}.namespaces[{i}]", namespace, "must be a string"))
        else:
            errs += check(f"{field}.namespaces[{i}]", namespace, dns1123_label)
    return errs


def validate_topology_spread(constraints: list[Any], field: str) -> list[FieldError]:
    """Validate spec.topologySpreadConstraints (maxSkew, topologyKey, whenUnsatisfiable)."""
    errs: list[FieldError] = []
    seen: set[tuple[Any, Any]] = set()
    for i, constraint in enumerate(constraints):
        item = f"{field}[{i}]"
        if not isinstance(constraint, dict):
            errs.append(type_invalid(item, constraint, "must be an object"))
            continue
        skew = constraint.get("maxSkew")
        if not isinstance(skew, int) or isinstance(skew, bool) or skew <= 0:
            errs.append(invalid(f"{item}.maxSkew", skew, "must be greater than zero"))
        key = constraint.get("topologyKey")
        if not key:
            errs.append(required(f"{item}.topologyKey", "can not be empty"))
        elif isinstance(key, str):
            errs += check(f"{item}.topologyKey", key, qualified_name)
        when = constraint.get("whenUnsatisfiable")
        if when not in UNSATISFIABLE:
            errs.append(not_supported(f"{item}.whenUnsatisfiable", when, UNSATISFIABLE))
        min_domains = constraint.get("minDomains")
        if min_domains is not None:
            if not isinstance(min_domains, int) or min_domains <= 0:
                errs.append(invalid(f"{item}.minDomains", min_domains, "must be greater than 0"))
            elif when != "DoNotSchedule":
                errs.append(
                    invalid(
                        f"{item}.minDomains",
                        min_domains,
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                    )
                )
        if constraint.get("labelSelector") is not None:
            errs += validate_label_selector(constraint["labelSelector"], f"{item}.labelSelector")
        if hashable((key, when)) in seen:
            errs.append(duplicate(item, f"{{{key}, {when}}}"))
        seen.add(hashable((key, when)))
    return errs
