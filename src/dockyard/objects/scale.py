"""The autoscaling/v1 Scale view of a Deployment or ReplicaSet (the /scale subresource).

Invariants: ``scale_of`` carries the parent's name, namespace, uid, resourceVersion and
creationTimestamp; ``status.selector`` is the parent's selector in canonical string form;
``apply_scale`` changes only spec.replicas of the parent.
"""

from __future__ import annotations

from typing import Any

from dockyard.objects.selectors import LabelSelector, SelectorError
from dockyard.objects.validation import FieldError, dict_of, invalid, required, type_invalid

Obj = dict[str, Any]

_META_KEYS = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def scale_of(obj: Obj) -> Obj:
    """Return the autoscaling/v1 Scale of a scalable object."""
    meta = dict_of(obj.get("metadata"))
    spec = dict_of(obj.get("spec"))
    status = dict_of(obj.get("status"))
    try:
        selector = str(LabelSelector.from_dict(spec.get("selector")))
    except SelectorError:
        selector = ""
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in _META_KEYS if k in meta},
        "spec": {"replicas": spec.get("replicas", 0)},
        "status": {"replicas": status.get("replicas", 0), "selector": selector},
    }


def validate_scale(scale: Obj) -> list[FieldError]:
    """Return the problems with a Scale sent by a client (spec.replicas >= 0)."""
    replicas = dict_of(scale.get("spec")).get("replicas") if isinstance(scale, dict) else None
    if replicas is None:
        return [required("spec.replicas")]
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        return [type_invalid("spec.replicas", replicas, "must be an integer")]
    if replicas < 0:
        return [invalid("spec.replicas", replicas, "must be greater than or equal to 0")]
    return []


def apply_scale(obj: Obj, scale: Obj) -> None:
    """Set the parent's spec.replicas from a (validated) Scale."""
    obj.setdefault("spec", {})["replicas"] = scale["spec"]["replicas"]
