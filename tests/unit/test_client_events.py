"""EventRecorder logic against a FakeApi: Event shape, 10-minute aggregation, never raising."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dockyard.client.errors import NotFoundError
from dockyard.client.events import EventRecorder, involved_object

pytestmark = pytest.mark.unit

Obj = dict[str, Any]


class FakeEvents:
    """Stands in for the events ResourceClient of one namespace."""

    def __init__(self, store: dict[tuple[str, str], Obj], namespace: str) -> None:
        self.store, self.namespace = store, namespace

    async def create(self, obj: Obj) -> Obj:
        if obj["metadata"]["name"].startswith("refuse"):
            raise RuntimeError("server said no")
        self.store[(self.namespace, obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    async def patch(self, name: str, body: Obj, patch_type: str) -> Obj:
        assert patch_type == "merge"
        event = self.store.get((self.namespace, name))
        if event is None:
            raise NotFoundError(404, "NotFound", f'events "{name}" not found')
        event.update(body)
        return event


class FakeApi:
    """Stands in for ApiClient.resource("v1", "events", ns)."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], Obj] = {}

    def resource(self, api_version: str, plural: str, namespace: str | None = None) -> FakeEvents:
        assert (api_version, plural) == ("v1", "events") and namespace
        return FakeEvents(self.store, namespace)


POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1", "resourceVersion": "7"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n"}}
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def test_involved_object_is_an_object_reference() -> None:
    assert involved_object(POD) == {"apiVersion": "v1", "kind": "Pod", "name": "web-1",
                                    "namespace": "prod", "uid": "u-1", "resourceVersion": "7"}


async def test_event_shape() -> None:
    api = FakeApi()
    rec = EventRecorder(api, "scheduler", host="h1")  # type: ignore[arg-type]
    event = await rec.write(POD, "Warning", "FailedScheduling", "0/3 nodes", now=T0)
    assert event["metadata"] == {"name": f"web-1.{int(T0 * 1e9):x}", "namespace": "prod"}
    assert event["count"] == 1 and event["type"] == "Warning"
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert event["source"] == {"component": "scheduler", "host": "h1"}
    assert event["reportingComponent"] == "scheduler" and event["reportingInstance"] == "h1"
    node_event = await rec.write(NODE, "Normal", "Ready", "ok", now=T0)
    assert node_event["metadata"]["namespace"] == "default"  # cluster-scoped object


async def test_identical_events_within_ten_minutes_are_counted() -> None:
    api = FakeApi()
    rec = EventRecorder(api, "kubelet")  # type: ignore[arg-type]
    await rec.write(POD, "Warning", "BackOff", "restarting", now=T0)
    await rec.write(POD, "Warning", "BackOff", "restarting", now=T0 + 300)
    bumped = await rec.write(POD, "Warning", "BackOff", "restarting", now=T0 + 900)
    # T0+900 is within 600 s of the previous sighting (T0+300), so still the same Event.
    assert len(api.store) == 1 and bumped["count"] == 3
    assert bumped["lastTimestamp"] == "2023-11-14T22:28:20Z"
    assert bumped["firstTimestamp"] == "2023-11-14T22:13:20Z"
    await rec.write(POD, "Warning", "BackOff", "a different message", now=T0 + 901)
    assert len(api.store) == 2
    await rec.write(POD, "Warning", "BackOff", "restarting", now=T0 + 900 + 601)
    assert len(api.store) == 3  # more than 10 minutes since the last one: a new Event


async def test_deleted_event_is_created_again() -> None:
    api = FakeApi()
    rec = EventRecorder(api, "kubelet")  # type: ignore[arg-type]
    await rec.write(POD, "Normal", "Pulled", "image pulled", now=T0)
    api.store.clear()
    again = await rec.write(POD, "Normal", "Pulled", "image pulled", now=T0 + 1)
    assert again["count"] == 1 and len(api.store) == 1


async def test_event_never_raises_and_flush_waits() -> None:
    api = FakeApi()
    rec = EventRecorder(api, "c")  # type: ignore[arg-type]
    rec.event({"kind": "Pod", "metadata": {"name": "refuse-me"}}, "Normal", "X", "y")
    rec.event(POD, "Normal", "Started", "m" * 5000)
    await rec.flush()
    assert len(api.store) == 1
    (stored,) = api.store.values()
    assert len(stored["message"]) == 1024
    await rec.close()


def test_event_without_a_loop_is_dropped_not_raised() -> None:
    rec = EventRecorder(FakeApi(), "c")  # type: ignore[arg-type]
    rec.event(POD, "Normal", "Started", "no loop running")
