"""EventRecorder against a real `dockyard server`: Events written, identical ones aggregated."""

from __future__ import annotations

import uuid

import pytest

from dockyard.client import ApiClient, EventRecorder, load_kubeconfig
from tests.servers import RunningServer

pytestmark = pytest.mark.e2e


async def test_events_are_created_and_aggregated(dockyard_server: RunningServer) -> None:
    name = f"ev-{uuid.uuid4().hex[:8]}"
    async with ApiClient(load_kubeconfig(str(dockyard_server.kubeconfig))) as api:
        cms = api.resource("v1", "configmaps", "default")
        target = await cms.create({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": name}})
        recorder = EventRecorder(api, "client-test", host="host-1")
        try:
            recorder.event(target, "Warning", "Broken", "it broke")
            recorder.event(target, "Warning", "Broken", "it broke")
            recorder.event(target, "Warning", "Broken", "it broke")
            recorder.event(target, "Normal", "Fixed", "it works again")
            await recorder.flush()
            events = api.resource("v1", "events", "default")
            listed = await events.list(field_selector=f"involvedObject.name={name}")
            by_reason = {e["reason"]: e for e in listed.items}
            assert sorted(by_reason) == ["Broken", "Fixed"] and len(listed.items) == 2
            broken = by_reason["Broken"]
            assert broken["count"] == 3 and broken["type"] == "Warning"
            assert broken["message"] == "it broke"
            assert broken["involvedObject"]["uid"] == target["metadata"]["uid"]
            assert broken["involvedObject"]["kind"] == "ConfigMap"
            assert broken["source"] == {"component": "client-test", "host": "host-1"}
            assert broken["reportingComponent"] == "client-test"
            assert broken["firstTimestamp"] <= broken["lastTimestamp"]
            assert by_reason["Fixed"]["count"] == 1
        finally:
            await recorder.close()
            await cms.delete(name)


async def test_recording_never_raises(dockyard_server: RunningServer) -> None:
    async with ApiClient(load_kubeconfig(str(dockyard_server.kubeconfig))) as api:
        recorder = EventRecorder(api, "client-test")
        # An invalid involved object name makes the server refuse the Event; the caller is
        # untouched and the failure is only logged.
        recorder.event({"kind": "ConfigMap", "metadata": {"name": "Bad Name!",
                                                          "namespace": "default"}},
                       "Normal", "Odd", "x")
        await recorder.flush()
        await recorder.close()
