"""DefaultBinder: binds a pod by creating its pods/binding subresource (a v1 Binding)."""

from __future__ import annotations

from typing import Any

from dockyard.scheduler.framework import SUCCESS, Binder, BindPlugin, CycleState, Status

Obj = dict[str, Any]


def binding_for(namespace: str, name: str, uid: str, node: str) -> Obj:
    """Return the v1 Binding object that assigns the pod to the node."""
    meta: Obj = {"name": name, "namespace": namespace}
    if uid:
        meta["uid"] = uid
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": meta,
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


class DefaultBinder(BindPlugin):
    """Create the Binding through the binder the loop provides (pods/binding)."""

    name = "DefaultBinder"

    async def bind(self, state: CycleState, pi: Any, node: str, binder: Binder) -> Status:
        """Return SUCCESS once the api server accepted the Binding."""
        uid = (pi.pod.get("metadata") or {}).get("uid", "")
        await binder.create_binding(
            pi.namespace, pi.name, binding_for(pi.namespace, pi.name, uid, node)
        )
        return SUCCESS
