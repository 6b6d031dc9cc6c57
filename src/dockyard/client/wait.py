"""Wait until one object meets a condition, as ``kubectl wait`` / ``rollout status`` do.

``await wait_for(api.resource("apps/v1", "deployments", "default"), "web", is_rolled_out,
timeout=120)`` lists the object by ``fieldSelector=metadata.name=web``, checks the condition,
then watches from the list's resourceVersion and checks again on every event, so no change is
missed between the check and the watch. The condition receives the object, or None once it
does not exist (so "wait for deletion" is ``lambda o: o is None``).

Invariants: returns the object (or None) that met the condition; raises ``TimeoutError`` when
the deadline passes first. A watch that ends or expires (410) is reopened after a fresh list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dockyard.client.api import Obj, ResourceClient
from dockyard.client.errors import GoneError

Condition = Callable[[Obj | None], bool]


async def wait_for(
    resource: ResourceClient,
    name: str,
    condition: Condition,
    timeout: float,
) -> Obj | None:
    """Wait until condition(object or None) is true; return that object; TimeoutError if not."""
    async with asyncio.timeout(timeout):
        return await _wait(resource, name, condition)


async def _wait(resource: ResourceClient, name: str, condition: Condition) -> Obj | None:
    selector = f"metadata.name={name}"
    while True:
        listed = await resource.list(field_selector=selector)
        current = listed.items[0] if listed.items else None
        if condition(current):
            return current
        try:
            async with resource.watch(resource_version=listed.resource_version,
                                      field_selector=selector, timeout_seconds=300) as watch:
                async for event in watch:
                    current = None if event.type == "DELETED" else event.object
                    if condition(current):
                        return current
        except GoneError:
            continue  # the list above is re-read: nothing is missed
