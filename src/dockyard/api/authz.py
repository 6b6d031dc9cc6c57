"""Authorization: what each kind of token may do.

Admins may do everything. A node's token (user system:node:NAME) may read what an agent needs
and write only its own Node, its own Lease, Events, and the status and deletion of pods bound to
its node (Kubernetes' node authorizer and NodeRestriction admission, simplified: it may read all
secrets and configmaps, not only those its pods reference). A join token may only trade itself for
a node token. Decisions that depend on a stored object (which node a pod is bound to) are made by
``check_object``, once the handler has read it.
"""

from __future__ import annotations

from typing import Any

from dockyard.api import status
from dockyard.api.tokens import User

READ_VERBS = {"get", "list", "watch"}
NODE_LEASE_NAMESPACE = "kube-node-lease"


def authorize(
    user: User,
    verb: str,
    plural: str,
    subresource: str | None,
    namespace: str | None,
    name: str | None,
) -> None:
    """Raise 403 unless the user may do verb on the resource (object-independent rules)."""
    if user.is_admin:
        return
    if user.kind == "node" and _node_may(user, verb, plural, subresource, namespace, name):
        return
    resource = f"{plural}/{subresource}" if subresource else plural
    raise status.forbidden(user.name, verb, resource, namespace, _why(user))


def check_object(user: User, plural: str, obj: dict[str, Any] | None) -> None:
    """Raise 403 when a node user touches a pod or node that is not its own."""
    if user.is_admin or user.kind != "node" or obj is None:
        return
    if plural == "pods" and obj.get("spec", {}).get("nodeName") != user.node:
        raise status.forbidden(
            user.name, "update", "pods", obj.get("metadata", {}).get("namespace"),
            f"the pod is not bound to node {user.node}",
        )
    if plural == "nodes" and obj.get("metadata", {}).get("name") != user.node:
        raise status.forbidden(user.name, "update", "nodes", None, "a node may only change itself")


def _node_may(
    user: User,
    verb: str,
    plural: str,
    subresource: str | None,
    namespace: str | None,
    name: str | None,
) -> bool:
    if verb in READ_VERBS and subresource in (None, "status"):
        return True
    if plural == "events":
        return verb in ("create", "update", "patch")
    if plural == "nodes":
        return verb in ("create", "update", "patch") and (name is None or name == user.node)
    if plural == "leases":
        return namespace == NODE_LEASE_NAMESPACE and (name is None or name == user.node)
    if plural == "pods":
        # status writes and the final delete of its own pods; checked per object later
        return (subresource == "status" and verb in ("update", "patch")) or (
            subresource is None and verb == "delete"
        )
    return False


def _why(user: User) -> str:
    if user.kind == "join":
        return "a join token may only register a node"
    if user.kind == "node":
        return f"a node token acts only for node {user.node}"
    return "not allowed"
