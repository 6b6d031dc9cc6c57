"""Namespaces' lifecycle inside the api server: the built-in ones, and emptying deleted ones.

A deleted namespace is marked Terminating (it keeps ``spec.finalizers: [kubernetes]``); this
loop deletes every namespaced object in it, and once nothing is left clears the finalizer, which
lets the storage remove the namespace. Kubernetes runs this in its namespace controller; here it
lives beside the storage it needs. Safe to run twice: each pass lists afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from dockyard.api.status import StatusError
from dockyard.api.storage import (
    NAMESPACE_INFO,
    DeleteOptions,
    ResourceStorage,
    collection_prefix,
    decode,
)
from dockyard.objects.resources import RESOURCES

BUILT_IN = ("default", "kube-system", "kube-public", "kube-node-lease")
RETRY_SECONDS = 2.0
log = logging.getLogger(__name__)


async def ensure_built_in(storage: ResourceStorage) -> None:
    """Create the namespaces every cluster starts with, if absent."""
    for name in BUILT_IN:
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        with contextlib.suppress(StatusError):
            await storage.create(NAMESPACE_INFO, None, obj)


class NamespaceCleaner:
    """Empties terminating namespaces and then lets them go."""

    def __init__(self, storage: ResourceStorage) -> None:
        self.storage = storage
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the loop in the background."""
        self._task = asyncio.create_task(self._run(), name="namespace-cleaner")

    async def stop(self) -> None:
        """Stop the loop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self._watch_and_clean()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any one failure; it re-lists
                log.exception("namespace cleanup failed; retrying")
                await asyncio.sleep(RETRY_SECONDS)

    async def _watch_and_clean(self) -> None:
        listed = await self.storage.list(NAMESPACE_INFO, None)
        pending = {n["metadata"]["name"] for n in listed.items if _terminating(n)}
        events = self.storage.store.watch(collection_prefix(NAMESPACE_INFO, None),
                                          listed.resource_version)
        iterator = aiter(events)
        while True:
            for name in sorted(pending):
                if await self.clean(name):
                    pending.discard(name)
            timeout = RETRY_SECONDS if pending else None
            try:
                event = await asyncio.wait_for(anext(iterator), timeout)
            except TimeoutError:
                continue
            if event.type == "PUT":
                ns = decode(event.kv)
                if _terminating(ns):
                    pending.add(ns["metadata"]["name"])

    async def clean(self, namespace: str) -> bool:
        """Delete what is left in a namespace; return True once the namespace is released."""
        remaining = 0
        for info in RESOURCES:
            if not info.namespaced:
                continue
            for obj in (await self.storage.list(info, namespace)).items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                with contextlib.suppress(StatusError):
                    await self.storage.delete(info, namespace, obj["metadata"]["name"],
                                              DeleteOptions())
        if remaining:
            return False
        with contextlib.suppress(StatusError):
            await self.storage.update(NAMESPACE_INFO, None, namespace, _clear_finalizers)
        return True


def _terminating(ns: dict[str, Any]) -> bool:
    return bool(ns["metadata"].get("deletionTimestamp"))


def _clear_finalizers(ns: dict[str, Any]) -> dict[str, Any]:
    ns.setdefault("spec", {})["finalizers"] = []
    return ns
