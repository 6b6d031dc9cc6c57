"""Support for the API client e2e tests (no tests here): the quiet server fixture, object
builders with unique names, and a watch reader.

A test module binds the fixture with ``quiet_server = quiet_server_fixture()``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dockyard.client import WatchEvent
from tests.servers import RunningServer, start_server

Obj = dict[str, Any]


def quiet_server_fixture() -> Any:
    """Return a module-scoped ``quiet_server`` fixture: the API alone, no scheduler/controllers.

    No loop then races the tests' writes.
    """

    @pytest.fixture(scope="module")
    def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
        server = start_server(tmp_path_factory.mktemp("quiet") / "data", "--no-scheduler",
                              "--no-controllers")
        try:
            yield server
        finally:
            server.stop()

    return quiet_server


def unique(prefix: str) -> str:
    """Return ``prefix`` with a random suffix, so tests sharing a server never collide."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> Obj:
    """Return a ConfigMap manifest."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


def pod(name: str) -> Obj:
    """Return a one-container Pod manifest."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def deployment(name: str, replicas: int = 1) -> Obj:
    """Return a Deployment manifest selecting app=<name>."""
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


async def next_events(watch: Any, n: int) -> list[WatchEvent]:
    """Return the next ``n`` events of an open watch (Watch or FakeWatch)."""
    events: list[WatchEvent] = []
    async for event in watch:
        events.append(event)
        if len(events) == n:
            break
    return events


async def take(watch: Any, n: int) -> list[WatchEvent]:
    """Open ``watch``, return its next ``n`` events and close it."""
    async with watch:
        return await next_events(watch, n)
