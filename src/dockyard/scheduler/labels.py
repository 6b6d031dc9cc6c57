"""Label matching the scheduler needs: LabelSelector and NodeSelectorRequirement semantics.

Invariants (as in Kubernetes): a ``None`` LabelSelector matches nothing and an empty one ``{}``
matches everything; all matchLabels and matchExpressions must hold (AND); NodeSelectorTerms
are ORed and the requirements inside one term are ANDed; Gt/Lt compare integers and fail on
a missing or non-integer label. ``dockyard.objects.selectors`` was not yet written when the
scheduler needed these rules, so they live here, small and pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]


def requirement_matches(req: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Return whether one requirement ({key, operator, values}) holds for the labels."""
    key = req.get("key", "")
    op = req.get("operator", "")
    values = req.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        return present and _compare_int(labels[key], values, op)
    raise ValueError(f"unknown selector operator {op!r} for key {key!r}")


def _compare_int(value: str, values: list[str], op: str) -> bool:
    try:
        have, bound = int(value), int(values[0])
    except (ValueError, IndexError):
        return False
    return have > bound if op == "Gt" else have < bound


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Return whether a metav1 LabelSelector matches the labels (None matches nothing)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(requirement_matches(r, labels) for r in selector.get("matchExpressions") or [])


def node_term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    """Return whether one NodeSelectorTerm (matchExpressions AND matchFields) holds for a node."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects, as in Kubernetes
    if not all(requirement_matches(r, labels) for r in exprs):
        return False
    return all(requirement_matches(f, {"metadata.name": name}) for f in fields)


def freeze(value: Any) -> Any:
    """Return a hashable copy of a JSON-like value, for use as a cache key."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(freeze(v) for v in value)
    return value
