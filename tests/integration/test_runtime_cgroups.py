"""Resource limits through cgroups: cpu/memory/pids applied, usage read, fork bomb and memory
hog contained (OOMKilled reported), the host and the runtime stay responsive."""

from __future__ import annotations

import asyncio
import time

import pytest

from dockyard.runtime import Resources, Runtime, SandboxConfig
from dockyard.runtime.cgroups import controller_dir
from tests.integration import runtime_fixtures
from tests.integration.runtime_fixtures import BusyboxImage

pytestmark = pytest.mark.integration

runtime = runtime_fixtures.runtime
busybox = runtime_fixtures.busybox

MiB = 1024 * 1024


async def wait_exited(rt: Runtime, cid: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (await rt.container_status(cid)).state != "exited":
        assert time.monotonic() < deadline, "container never exited"
        await asyncio.sleep(0.1)


async def test_limits_are_applied_and_usage_is_read(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="p", pids_limit=300))
    res = Resources(cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=64 * MiB,
                    pids_limit=50)  # fmt: skip
    cid = await runtime.create_container(
        sb.id, busybox.container("busy", command=["sh", "-c", "while :; do :; done"], resources=res)
    )
    await runtime.start_container(cid)
    path = f"{runtime.cgroup_root}/pod-{sb.id}/{cid}"
    cpu = controller_dir("cpu", path)
    assert (cpu / "cpu.shares").read_text().strip() == "256"  # 250m * 1024 / 1000
    assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "50000"  # 500m of a 100ms period
    assert (cpu / "cpu.cfs_period_us").read_text().strip() == "100000"
    memory_limit = controller_dir("memory", path) / "memory.limit_in_bytes"
    assert memory_limit.read_text().strip() == str(64 * MiB)
    assert (controller_dir("pids", path) / "pids.max").read_text().strip() == "50"
    pod_pids = controller_dir("pids", f"{runtime.cgroup_root}/pod-{sb.id}") / "pids.max"
    assert pod_pids.read_text().strip() == "300"
    await asyncio.sleep(1.0)
    stats = await runtime.stats(cid)
    # A busy loop capped at 500m uses at most ~0.5 cpu-seconds per second (slack for startup).
    assert 0.1 < stats.cpu_seconds < 1.0
    assert 0 < stats.memory_bytes < 64 * MiB
    assert stats.pids == 1


async def test_pids_limit_is_clamped_to_4096(runtime: Runtime, busybox: BusyboxImage) -> None:
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="p", pids_limit=100000))
    cid = await runtime.create_container(
        sb.id,
        busybox.container("c", command=["sleep", "60"], resources=Resources(pids_limit=99999)),
    )
    path = f"{runtime.cgroup_root}/pod-{sb.id}"
    assert (controller_dir("pids", path) / "pids.max").read_text().strip() == "4096"
    assert (controller_dir("pids", f"{path}/{cid}") / "pids.max").read_text().strip() == "4096"


async def test_fork_bomb_is_contained(runtime: Runtime, busybox: BusyboxImage) -> None:
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="bomb"))
    bomb = busybox.container(
        "bomb", command=["sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 300"],
        resources=Resources(pids_limit=64, cpu_limit_millis=500),
    )  # fmt: skip
    cid = await runtime.create_container(sb.id, bomb)
    await runtime.start_container(cid)
    await asyncio.sleep(2.0)
    stats = await runtime.stats(cid)
    assert stats.pids <= 64
    failcnt = controller_dir("pids", f"{runtime.cgroup_root}/pod-{sb.id}/{cid}") / "pids.events"
    assert int(failcnt.read_text().split()[1]) > 0  # forks were refused by the pids cgroup
    t0 = time.monotonic()
    other = await runtime.create_sandbox(SandboxConfig(pod_uid="u2", name="calm"))
    calm = await runtime.create_container(other.id, busybox.container("calm", command=["true"]))
    await runtime.start_container(calm)
    await wait_exited(runtime, calm)
    assert (await runtime.container_status(calm)).exit_code == 0
    assert time.monotonic() - t0 < 30  # the runtime still answers while the bomb runs
    status = await runtime.stop_container(cid, grace_seconds=0)
    assert status.state == "exited"


async def test_memory_hog_is_oom_killed(runtime: Runtime, busybox: BusyboxImage) -> None:
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="hog"))
    hog = busybox.container(
        "hog", command=["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo done"],
        resources=Resources(memory_limit_bytes=32 * MiB),
    )  # fmt: skip
    cid = await runtime.create_container(sb.id, hog)
    await runtime.start_container(cid)
    await wait_exited(runtime, cid)
    status = await runtime.container_status(cid)
    assert status.reason == "OOMKilled", status
    assert status.exit_code == 137
