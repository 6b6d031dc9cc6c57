"""Informers against a real `dockyard server`: sync, add/update/delete, surviving a crash."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from dockyard.client import ApiClient, Informer, load_kubeconfig
from dockyard.client.informer import Backoff
from tests.servers import RunningServer, start_server

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]


def configmap(name: str, suite: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"suite": suite}}, "data": data}


class Seen:
    """Handlers recording (event, name, data) as the informer reports them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Obj]] = []

    def register(self, informer: Informer) -> None:
        informer.add_handler(
            on_add=lambda o: self.events.append(("add", o["metadata"]["name"], o.get("data", {}))),
            on_update=lambda old, new: self.events.append(
                ("update", new["metadata"]["name"], new.get("data", {}))),
            on_delete=lambda o: self.events.append(
                ("delete", o["metadata"]["name"], o.get("data", {}))),
        )

    def names(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.events if k == kind]


async def eventually(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_informer_sees_add_update_delete(dockyard_server: RunningServer) -> None:
    suite = f"inf-{uuid.uuid4().hex[:8]}"
    async with ApiClient(load_kubeconfig(str(dockyard_server.kubeconfig))) as api:
        cms = api.resource("v1", "configmaps", "default")
        await cms.create(configmap(f"{suite}-old", suite, v="0"))
        informer = Informer(api.resource("v1", "configmaps", None), label_selector=f"suite={suite}")
        seen = Seen()
        seen.register(informer)
        await informer.start()
        try:
            assert await informer.wait_for_sync(15)
            assert seen.names("add") == [f"{suite}-old"]
            await cms.create(configmap(f"{suite}-new", suite, v="1"))
            await cms.patch(f"{suite}-old", {"data": {"v": "2"}})
            await cms.delete(f"{suite}-new")
            await eventually(lambda: len(seen.events) == 4)
            assert seen.events[1:] == [
                ("add", f"{suite}-new", {"v": "1"}),
                ("update", f"{suite}-old", {"v": "2"}),
                ("delete", f"{suite}-new", {"v": "1"}),
            ]
            cached = informer.get("default", f"{suite}-old")
            assert cached is not None and cached["data"] == {"v": "2"}
            assert informer.get("default", f"{suite}-new") is None
            assert [o["metadata"]["name"] for o in informer.list()] == [f"{suite}-old"]
        finally:
            await informer.stop()
            await cms.delete(f"{suite}-old")


async def test_informer_recovers_after_server_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    port = urlparse(server.url).port
    assert port
    suite = "restart"
    try:
        async with ApiClient(load_kubeconfig(str(server.kubeconfig))) as api:
            cms = api.resource("v1", "configmaps", "default")
            await cms.create(configmap("keep", suite, v="0"))
            await cms.create(configmap("doomed", suite, v="0"))
            informer = Informer(cms, label_selector=f"suite={suite}")
            informer.backoff = Backoff(0.2, 1.0)  # the defaults (1 s → 30 s) only slow the test
            seen = Seen()
            seen.register(informer)
            await informer.start()
            try:
                assert await informer.wait_for_sync(15)
                # A crash (SIGKILL) and restart on the same port and data dir: the harsher case.
                server.stop(signal.SIGKILL)
                await asyncio.sleep(1.5)  # the informer's watch fails and it backs off
                server = start_server(data_dir, port=port)
                await cms.patch("keep", {"data": {"v": "after-restart"}})
                await cms.delete("doomed")
                await cms.create(configmap("born", suite, v="1"))
                await eventually(lambda: sorted(informer.keys()) == ["default/born",
                                                                     "default/keep"])
                keep = informer.get("default", "keep")
                assert keep is not None and keep["data"] == {"v": "after-restart"}
                assert "doomed" in seen.names("delete") and "born" in seen.names("add")
                assert ("update", "keep", {"v": "after-restart"}) in seen.events
                # Still watching: a later change arrives too.
                await cms.patch("born", {"data": {"v": "2"}})
                await eventually(lambda: (informer.get("default", "born") or {}).get("data")
                                 == {"v": "2"})
            finally:
                await informer.stop()
    finally:
        server.stop()


async def test_informer_cache_matches_server_after_concurrent_writes(
    dockyard_server: RunningServer,
) -> None:
    suite = f"conv-{uuid.uuid4().hex[:8]}"
    async with ApiClient(load_kubeconfig(str(dockyard_server.kubeconfig))) as api:
        cms = api.resource("v1", "configmaps", "default")
        informer = Informer(cms, label_selector=f"suite={suite}")
        await informer.start()
        assert await informer.wait_for_sync(15)

        async def writer(w: int) -> None:
            # Each writer: create 10, update every other one twice, delete every third.
            names = [f"{suite}-{w}-{i}" for i in range(10)]
            for name in names:
                await cms.create(configmap(name, suite, v="0"))
            for name in names[::2]:
                await cms.patch(name, {"data": {"v": "1"}})
                await cms.patch(name, {"data": {"v": "2"}})
            for name in names[::3]:
                await cms.delete(name)

        try:
            await asyncio.gather(*(writer(w) for w in range(8)))
            truth = await cms.list(label_selector=f"suite={suite}")
            expected = {f"default/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
                        for o in truth.items}
            assert len(expected) == 8 * (10 - 4)  # names[::3] deletes i = 0, 3, 6, 9

            def cached() -> dict[str, str]:
                return {f"default/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
                        for o in informer.list()}

            await eventually(lambda: cached() == expected)
        finally:
            await informer.stop()
            await cms.delete_collection(label_selector=f"suite={suite}")
