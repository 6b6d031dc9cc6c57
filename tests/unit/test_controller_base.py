"""The shared controller loop: write conflicts are retried with backoff, not logged as errors,
and a key that keeps failing is never retried in a hot loop."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.client import ApiClient, ClientConfig, ConflictError, EventRecorder, RequeueAfter
from dockyard.controllers.base import Controller, clone, controller_ref, owner_reference

pytestmark = pytest.mark.unit


class ScriptedController(Controller):
    """A controller whose reconcile raises what the test scripted, counting calls."""

    name = "scripted"

    def __init__(self, outcomes: list[BaseException | None]) -> None:
        api = ApiClient(ClientConfig(server="https://127.0.0.1:1"))
        super().__init__(api, EventRecorder(api, "test"), workers=2)
        self.outcomes = outcomes
        self.calls: list[float] = []

    async def reconcile(self, key: str) -> None:
        self.calls.append(asyncio.get_running_loop().time())
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


def conflict() -> ConflictError:
    return ConflictError(409, "Conflict", "the object has been modified")


async def test_conflicts_back_off_and_reset() -> None:
    c = ScriptedController([conflict(), conflict(), None, conflict()])
    delays = []
    for _ in range(2):
        with pytest.raises(RequeueAfter) as raised:
            await c._reconcile_once("ns/a")
        delays.append(raised.value.seconds)
    await c._reconcile_once("ns/a")  # a success resets the count
    with pytest.raises(RequeueAfter) as raised:
        await c._reconcile_once("ns/a")
    delays.append(raised.value.seconds)
    assert delays == [0.05, 0.1, 0.05]  # doubled, then back to the start after a success


async def test_failing_key_is_retried_with_growing_delays() -> None:
    c = ScriptedController([RuntimeError("boom")] * 4)
    runner = asyncio.create_task(c.run())
    c.queue.add("ns/a")
    for _ in range(200):
        if len(c.calls) >= 5:
            break
        await asyncio.sleep(0.01)
    c.shut_down()
    await asyncio.wait_for(runner, 5)
    gaps = [b - a for a, b in zip(c.calls, c.calls[1:], strict=False)]
    assert len(c.calls) == 5  # 4 failures, then the success
    # backoff 5 ms, 10 ms, 20 ms, 40 ms: lower bounds only (a loaded machine adds, never takes)
    assert gaps[-1] >= 0.04
    assert c.calls[-1] - c.calls[0] >= 0.075


def test_owner_reference_and_clone() -> None:
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
             "metadata": {"name": "web", "uid": "u"}}
    dependent = {"metadata": {"ownerReferences": [owner_reference(owner)]}}
    assert controller_ref(dependent) == {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                         "name": "web", "uid": "u", "controller": True,
                                         "blockOwnerDeletion": True}
    copy = clone(dependent)
    copy["metadata"]["ownerReferences"][0]["name"] = "x"
    assert dependent["metadata"]["ownerReferences"][0]["name"] == "web"
