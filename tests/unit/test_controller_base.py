"""The shared controller loop: write conflicts are retried with backoff, not logged as errors,
and a key that keeps failing is never retried in a hot loop; claims adopt and release."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.client import ApiClient, ClientConfig, ConflictError, EventRecorder, RequeueAfter
from dockyard.client.fake import FakeApiClient
from dockyard.controllers.base import (
    Controller,
    claim,
    clone,
    controller_ref,
    owner_reference,
    write_status,
)

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


def pod(name: str, labels: dict[str, str], *owners: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "labels": labels,
                         "ownerReferences": [owner_reference(o) for o in owners]},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}


def replicaset(name: str, uid: str, deleting: bool = False) -> dict[str, object]:
    metadata = {"name": name, "namespace": "ns", "uid": uid}
    if deleting:
        metadata["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata,
            "spec": {"selector": {"matchLabels": {"app": "web"}}}}


async def claimed_world(owner: dict[str, object]) -> tuple[list[str], dict[str, list[str]]]:
    """Claim four pods for ``owner``; return (claimed names, each pod's owner uids after)."""
    api = FakeApiClient()
    pods = api.resource("v1", "pods", "ns")
    other = replicaset("other", "u-other")
    mine = replicaset("web", "u-web")
    for p in (pod("own", {"app": "web"}, mine), pod("orphan", {"app": "web"}),
              pod("moved", {"app": "db"}, mine), pod("theirs", {"app": "web"}, other)):
        await pods.create(p)
    owned = await claim(owner, (await pods.list()).items, api.resource("v1", "pods"))
    after = {p["metadata"]["name"]: [r["uid"] for r in p["metadata"].get("ownerReferences", [])]
             for p in (await pods.list()).items}
    return sorted(p["metadata"]["name"] for p in owned), after


async def test_claim_keeps_adopts_releases_and_leaves_others_alone() -> None:
    owned, after = await claimed_world(replicaset("web", "u-web"))
    assert owned == ["orphan", "own"]  # "moved" no longer matches, "theirs" has a controller
    assert after == {"own": ["u-web"], "orphan": ["u-web"], "moved": [], "theirs": ["u-other"]}


async def test_claim_by_a_deleting_owner_changes_nothing() -> None:
    owned, after = await claimed_world(replicaset("web", "u-web", deleting=True))
    assert owned == ["own"]
    assert after == {"own": ["u-web"], "orphan": [], "moved": ["u-web"], "theirs": ["u-other"]}


async def test_write_status_skips_an_unchanged_status() -> None:
    api = FakeApiClient()
    rss = api.resource("apps/v1", "replicasets", "ns")
    created = await rss.create(replicaset("web", "u-web"))
    await write_status(rss, clone(created), {"replicas": 1}, {"replicas": 1})
    assert (await rss.get("web")).get("status") in (None, {})  # equal: nothing written
    await write_status(rss, clone(created), {}, {"replicas": 2})
    assert (await rss.get("web"))["status"] == {"replicas": 2}
