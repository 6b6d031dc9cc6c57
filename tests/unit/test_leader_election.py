"""LeaderElector's rules on FakeApiClient: who may take the Lease when, what each write records,
and the term's life cycle (callbacks, lost leadership, release on cancel).

The two-servers-on-one-etcd proof (real api servers, real etcd, kubectl) is in
tests/e2e/test_leader_election.py; here the point is the timing logic, so a fake clock drives
expiry and the run() cases use sub-second durations.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from dockyard.client.errors import ServerUnreachableError
from dockyard.client.fake import FakeApiClient, FakeResourceClient
from dockyard.client.leader_election import (
    LeaderElectionConfig,
    LeaderElector,
    check_durations,
)
from dockyard.server import leader_identity

pytestmark = pytest.mark.unit

LEASE = "dockyard-controllers"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Events:
    """Records the callbacks, in order."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def started(self) -> None:
        self.seen.append("started")

    async def stopped(self) -> None:
        self.seen.append("stopped")


def elector(api: FakeApiClient, identity: str, clock: Any = time.monotonic,
            events: Events | None = None, **durations: float) -> LeaderElector:
    events = events or Events()
    timing = durations or {"lease_duration": 15.0, "renew_deadline": 10.0, "retry_period": 2.0}
    config = LeaderElectionConfig(lease_name=LEASE, identity=identity, **timing)
    return LeaderElector(api, config, events.started, events.stopped, clock=clock)  # type: ignore[arg-type]


FAST = {"lease_duration": 0.9, "renew_deadline": 0.5, "retry_period": 0.1}


async def lease_spec(api: FakeApiClient) -> dict[str, Any]:
    lease = await api.resource("coordination.k8s.io/v1", "leases", "kube-system").get(LEASE)
    return dict(lease["spec"])


async def wait_until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_first_candidate_creates_the_lease_and_holds_it() -> None:
    api = FakeApiClient()
    assert await elector(api, "a").try_acquire_or_renew()
    spec = await lease_spec(api)
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"]


async def test_a_held_lease_expires_a_lease_duration_after_we_saw_it_change() -> None:
    api, clock = FakeApiClient(), FakeClock()
    assert await elector(api, "a").try_acquire_or_renew()
    # The holder's clock is far behind ours: its renewTime must not make the Lease look old.
    leases = api.resource("coordination.k8s.io/v1", "leases", "kube-system")
    lease = await leases.get(LEASE)
    lease["spec"]["renewTime"] = "2000-01-01T00:00:00.000000Z"
    await leases.update(lease)
    b = elector(api, "b", clock)
    assert not await b.try_acquire_or_renew()  # first sight: the term counts from now
    clock.now += 14.9  # 15 s lease: still 0.1 s left
    assert not await b.try_acquire_or_renew()
    clock.now += 0.1  # 1000 + 15 = expiry
    assert await b.try_acquire_or_renew()
    spec = await lease_spec(api)
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1  # 0 + one change of holder


async def test_each_renewal_seen_restarts_the_candidates_wait() -> None:
    api, clock = FakeApiClient(), FakeClock()
    a, b = elector(api, "a"), elector(api, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # saw it at 1000
    clock.now += 10
    assert await a.try_acquire_or_renew()  # renewed: a new renewTime
    assert not await b.try_acquire_or_renew()  # saw the change at 1010
    clock.now += 10  # 1020 < 1010 + 15
    assert not await b.try_acquire_or_renew()
    clock.now += 5  # 1025 = 1010 + 15
    assert await b.try_acquire_or_renew()


async def test_renewal_keeps_acquire_time_and_transitions() -> None:
    api = FakeApiClient()
    a = elector(api, "a")
    assert await a.try_acquire_or_renew()
    first = await lease_spec(api)
    await asyncio.sleep(0.002)  # a later MicroTime
    assert await a.try_acquire_or_renew()
    second = await lease_spec(api)
    assert second["acquireTime"] == first["acquireTime"]
    assert second["leaseTransitions"] == 0
    assert second["renewTime"] > first["renewTime"]


async def test_the_holders_announced_duration_decides_expiry() -> None:
    api, clock = FakeApiClient(), FakeClock()
    assert await elector(api, "a", **FAST).try_acquire_or_renew()  # announces 1 s
    b = elector(api, "b", clock)  # b itself would hold for 15 s
    assert not await b.try_acquire_or_renew()
    clock.now += 1.0
    assert await b.try_acquire_or_renew()


async def test_a_released_lease_is_taken_at_once() -> None:
    api, clock = FakeApiClient(), FakeClock()
    a, b = elector(api, "a"), elector(api, "b", clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert await a.release()
    released = await lease_spec(api)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert await b.try_acquire_or_renew()  # no wait: nobody holds it
    assert (await lease_spec(api))["leaseTransitions"] == 1


async def test_release_leaves_a_lease_someone_else_holds_alone() -> None:
    api, clock = FakeApiClient(), FakeClock()
    a, b = elector(api, "a"), elector(api, "b", clock)
    assert await a.try_acquire_or_renew()
    assert await b.release()
    assert (await lease_spec(api))["holderIdentity"] == "a"


class FakeInterleavedLeases:
    """Leases whose get() lets another candidate write right after the read (a lost race)."""

    def __init__(self, inner: FakeResourceClient, rival: LeaderElector) -> None:
        self.inner = inner
        self.rival = rival

    async def get(self, name: str) -> dict[str, Any]:
        lease = await self.inner.get(name)
        assert await self.rival.try_acquire_or_renew()
        return lease

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_of_two_candidates_on_an_expired_lease_only_one_wins() -> None:
    api, clock = FakeApiClient(), FakeClock()
    assert await elector(api, "dead").try_acquire_or_renew()
    b, c = elector(api, "b", clock), elector(api, "c", clock)
    assert not await b.try_acquire_or_renew() and not await c.try_acquire_or_renew()
    clock.now += 15  # expired for both
    b.leases = FakeInterleavedLeases(b.leases, c)  # type: ignore[assignment]
    assert not await b.try_acquire_or_renew()  # its update carried a stale resourceVersion
    spec = await lease_spec(api)
    assert spec["holderIdentity"] == "c"
    assert spec["leaseTransitions"] == 1  # one change of holder, not two


async def test_run_leads_at_once_and_releases_on_cancel_for_the_next() -> None:
    api = FakeApiClient()
    first, second = Events(), Events()
    a = elector(api, "a", events=first, **FAST)
    b = elector(api, "b", events=second, lease_duration=30.0, renew_deadline=10.0,
                retry_period=0.1)  # fmt: skip
    running_a = asyncio.create_task(a.run())
    await wait_until(lambda: first.seen == ["started"], timeout=0.5)  # no lease to wait for
    running_b = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)  # b campaigns; a renews
    assert second.seen == [] and a.is_leader and not b.is_leader
    running_a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running_a
    assert first.seen == ["started", "stopped"]
    began = time.monotonic()
    await wait_until(lambda: second.seen == ["started"])
    assert time.monotonic() - began < 1.0  # released: no 1 s (a's announced) wait
    running_b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running_b
    assert (await lease_spec(api))["holderIdentity"] == ""


async def test_run_stops_leading_when_another_takes_the_lease_and_campaigns_again() -> None:
    api, events = FakeApiClient(), Events()
    a = elector(api, "a", events=events, **FAST)
    running = asyncio.create_task(a.run())
    await wait_until(lambda: events.seen == ["started"])
    leases = api.resource("coordination.k8s.io/v1", "leases", "kube-system")
    lease = await leases.get(LEASE)
    lease["spec"].update(holderIdentity="usurper", leaseDurationSeconds=1)
    await leases.update(lease)
    await wait_until(lambda: events.seen == ["started", "stopped"], timeout=1.0)
    assert not a.is_leader
    # The usurper never renews: a takes the Lease back once 1 s has passed since it saw it.
    await wait_until(lambda: events.seen == ["started", "stopped", "started"], timeout=3.0)
    assert (await lease_spec(api))["holderIdentity"] == "a"
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


class FakeUnreachableLeases:
    """Leases behind a server that stops answering when ``down`` is set."""

    def __init__(self, inner: FakeResourceClient) -> None:
        self.inner = inner
        self.down = False

    def __getattr__(self, name: str) -> Any:
        verb = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ServerUnreachableError("https://127.0.0.1:1", "connection refused")
            return await verb(*args, **kwargs)
        return call


async def test_run_stops_leading_when_it_cannot_renew_within_the_deadline() -> None:
    api, events = FakeApiClient(), Events()
    a = elector(api, "a", events=events, **FAST)
    leases = FakeUnreachableLeases(a.leases)  # type: ignore[arg-type]
    a.leases = leases  # type: ignore[assignment]
    running = asyncio.create_task(a.run())
    await wait_until(lambda: events.seen == ["started"])
    leases.down = True
    cut = time.monotonic()
    await wait_until(lambda: events.seen == ["started", "stopped"], timeout=2.0)
    # The deadline counts from the last renewal sent, at most one retry period before the cut.
    assert time.monotonic() - cut <= FAST["renew_deadline"] + 0.3
    assert not a.is_leader
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


async def test_a_slow_started_callback_is_cancelled_when_the_term_ends() -> None:
    api, seen = FakeApiClient(), []

    async def started() -> None:
        seen.append("started")
        await asyncio.sleep(60)  # a start that never finishes

    async def stopped() -> None:
        seen.append("stopped")

    config = LeaderElectionConfig(lease_name=LEASE, identity="a", **FAST)
    a = LeaderElector(api, config, started, stopped)  # type: ignore[arg-type]
    running = asyncio.create_task(a.run())
    await wait_until(lambda: seen == ["started"])
    running.cancel()
    await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 2.0)
    assert seen == ["started", "stopped"]


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "words"),
    [
        (15, 10, 0, "retry period must be greater than 0"),
        (15, 2.4, 2, "renew deadline (2.4s) must be greater than 1.2 x"),  # 1.2 * 2 = 2.4
        (10, 10, 2, "lease duration (10s) must be greater than the renew deadline"),
    ],
)
def test_durations_out_of_order_are_refused(lease: float, renew: float, retry: float,
                                            words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_durations(lease, renew, retry)
    with pytest.raises(ValueError):
        LeaderElectionConfig(lease_name=LEASE, identity="a", lease_duration=lease,
                             renew_deadline=renew, retry_period=retry)


def test_an_empty_identity_is_refused() -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElectionConfig(lease_name=LEASE, identity="")


def test_a_data_dir_keeps_its_identity_and_a_copy_gets_its_own(tmp_path: Path) -> None:
    first = tmp_path / "a"
    first.mkdir()
    identity = leader_identity(first)
    assert identity.startswith(socket.gethostname().lower() + "_")
    assert leader_identity(first) == identity  # a restart leads again as itself
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    assert leader_identity(copy) != identity  # else two servers would both "hold" the Lease
    (first / "leader-identity").write_text("garbage")
    assert leader_identity(first) not in ("garbage", identity)


def test_server_refuses_durations_out_of_order_before_writing_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, [
        "server", "--data-dir", str(tmp_path / "data"), "--no-agent",
        "--leader-elect-lease-duration", "5", "--leader-elect-renew-deadline", "8"])
    assert result.exit_code == 2
    assert "lease duration (5.0s) must be greater than the renew deadline (8.0s)" in (
        result.output)
    assert not (tmp_path / "data").exists()
