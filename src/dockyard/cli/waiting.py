"""Waiting for the cluster to reach a state the CLI promised: an object gone, a pod started.

Each wait lists the object and watches from the list's resourceVersion (standard list+watch),
re-checking on every event and at least once a second, so a missed event only costs a second.

Invariant: a wait that runs out of time raises CliError naming what it waited for and what it
saw last, never returns as if it had succeeded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from dockyard.cli.kubeargs import CliError
from dockyard.client import NotFoundError, ResourceClient

Obj = dict[str, Any]


async def wait_gone(rc: ResourceClient, name: str, timeout: float) -> None:
    """Wait until GET answers 404 for the object (deletion finished, finalizers done)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await rc.get(name)
        except NotFoundError:
            return
        await asyncio.sleep(0.2)
    raise CliError(f'timed out waiting for the deletion of {rc.plural} "{name}"')


async def wait_for_object(rc: ResourceClient, name: str, done: Callable[[Obj], bool],
                          timeout: float, what: str) -> Obj:
    """Poll-and-watch one object until ``done(obj)``; return it (CliError on timeout)."""
    deadline = time.monotonic() + timeout
    last: Obj = {}
    while True:
        try:
            last = await rc.get(name)
        except NotFoundError:
            raise CliError(f'{rc.plural} "{name}" was deleted while waiting for {what}') from None
        if done(last):
            return last
        left = deadline - time.monotonic()
        if left <= 0:
            raise CliError(f"timed out waiting for {what}")
        await _next_change(rc, name, last, min(left, 1.0))


async def _next_change(rc: ResourceClient, name: str, obj: Obj, wait: float) -> None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        async with asyncio.timeout(wait):
            async with rc.watch(rv, field_selector=f"metadata.name={name}",
                                allow_bookmarks=False) as events:
                async for _event in events:
                    return
    except TimeoutError:
        return
