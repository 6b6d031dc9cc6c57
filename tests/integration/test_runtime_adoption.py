"""Restart adoption: a container started by a process that has exited is found, read, exec'd
and stopped by a new Runtime on the same dirs, and was never restarted. Also log rotation."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.runtime import Runtime
from tests.integration import runtime_fixtures
from tests.integration.runtime_fixtures import BusyboxImage, make_runtime, teardown

pytestmark = pytest.mark.integration

busybox = runtime_fixtures.busybox
runtime = runtime_fixtures.runtime

STARTER = """
import asyncio, json, sys
from pathlib import Path
from dockyard.runtime import ContainerConfig, Runtime, SandboxConfig

async def main() -> None:
    base, bridge, cidr, layers, config = sys.argv[1:6]
    rt = Runtime(run_dir=Path(base) / "run", data_dir=Path(base) / "data", bridge=bridge,
                 pod_cidr=cidr)
    sb = await rt.create_sandbox(SandboxConfig(pod_uid="u1", name="adopt"))
    cfg = ContainerConfig(
        name="ticker", lower_dirs=[Path(p) for p in json.loads(layers)],
        image_config=json.loads(config),
        command=["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"])
    cid = await rt.create_container(sb.id, cfg)
    await rt.start_container(cid)
    status = await rt.container_status(cid)
    await rt.close()
    print(json.dumps({"sandbox": sb.id, "container": cid, "pid": status.pid}))

asyncio.run(main())
"""


async def test_new_runtime_adopts_running_container(tmp_path: Path, busybox: BusyboxImage) -> None:
    first = make_runtime(tmp_path)  # only to pick the bridge and CIDR the child will use
    bridge, cidr = first.network.bridge, first.network.pod_cidr
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", STARTER, str(tmp_path), bridge, cidr,
        json.dumps([str(p) for p in busybox.layers]), json.dumps(busybox.config),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    started = json.loads(out)
    rt = make_runtime(tmp_path, bridge=bridge, pod_cidr=cidr)
    try:
        assert [s.id for s in rt.list_sandboxes()] == [started["sandbox"]]
        [status] = await rt.list_containers()
        assert (status.id, status.state, status.pid) == (started["container"], "running",
                                                         started["pid"])  # fmt: skip
        await asyncio.sleep(0.5)
        ticks = [int(r.message.split()[1]) async for r in rt.read_logs(status.id)]
        assert ticks == list(range(len(ticks))) and len(ticks) >= 3  # one unbroken run
        result = await rt.exec_sync(status.id, ["echo", "adopted"], 10)
        assert (result.exit_code, result.stdout) == (0, b"adopted\n")
        stats = await rt.stats(status.id)
        assert stats.pids >= 1 and stats.memory_bytes > 0
        os.kill(started["pid"], 0)  # the very same process is still there
        final = await rt.stop_container(status.id, grace_seconds=2)
        assert final.state == "exited" and final.exit_code is not None
    finally:
        await teardown(rt)


async def test_log_rotation_keeps_n_files_and_reads_across(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    from dockyard.runtime import SandboxConfig

    runtime.log_max_bytes = 2000
    runtime.log_max_files = 3
    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="logs"))
    cfg = busybox.container(
        "chatty",
        command=["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.01; done"],
    )
    cid = await runtime.create_container(sb.id, cfg)
    await runtime.start_container(cid)
    path = runtime.log_path(cid)
    rotations = 0
    for _ in range(200):
        await asyncio.sleep(0.05)
        rotations += await runtime.rotate_logs()
        if rotations >= 4:
            break
    assert rotations >= 4
    await asyncio.sleep(0.3)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["0.log", "0.log.1", "0.log.2"]  # keep=3: live + 2 rotated
    numbers = [int(r.message.split(b"-")[1]) async for r in runtime.read_logs(cid)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # no gap across files
    assert numbers[0] > 0  # the oldest rotated file was dropped
    tail = [r.message async for r in runtime.read_logs(cid, tail=2)]
    assert len(tail) == 2
    follower = runtime.read_logs(cid, follow=True, tail=0)
    first = await asyncio.wait_for(follower.__anext__(), 5)
    assert first.message.startswith(b"line-")
    await follower.aclose()


async def test_two_runtime_objects_see_each_others_changes(
    tmp_path: Path, busybox: BusyboxImage
) -> None:
    from dockyard.runtime import SandboxConfig

    first = make_runtime(tmp_path)
    second = make_runtime(tmp_path, bridge=first.network.bridge, pod_cidr=first.network.pod_cidr)
    try:
        sb = await first.create_sandbox(SandboxConfig(pod_uid="u", name="shared"))
        cid = await first.create_container(sb.id, busybox.container("c", command=["sleep", "60"]))
        assert [c.id for c in await second.list_containers()] == [cid]  # made by the other
        await second.remove_container(cid)
        assert await first.list_containers() == []  # removed by the other
    finally:
        await teardown(first)


async def test_lost_monitor_reports_unknown(runtime: Runtime, busybox: BusyboxImage) -> None:
    from dockyard.runtime import SandboxConfig
    from dockyard.runtime.monitor import conmon_pid

    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="lost"))
    cid = await runtime.create_container(sb.id, busybox.container("c", command=["sleep", "60"]))
    await runtime.start_container(cid)
    status = await runtime.container_status(cid)
    rec = runtime._container_record(cid)
    monitor_pid = conmon_pid(runtime._monitor_paths(rec))
    assert monitor_pid
    os.kill(monitor_pid, 9)  # conmon, which this runtime started
    os.kill(status.pid, 9)  # and the container's process
    for _ in range(100):
        state = (await runtime.container_status(cid)).state
        if state == "unknown":
            break
        await asyncio.sleep(0.05)
    assert state == "unknown"
    await runtime.remove_container(cid)
    assert await runtime.list_containers() == []


async def test_garbage_collect_removes_what_a_crash_left(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    from dockyard.runtime import SandboxConfig
    from dockyard.runtime.network import create_namespaces
    from dockyard.runtime.rootfs import is_mounted, mount_rootfs

    sb = await runtime.create_sandbox(SandboxConfig(pod_uid="u", name="kept"))
    kept = await runtime.create_container(sb.id, busybox.container("c", command=["sleep", "60"]))
    await runtime.start_container(kept)
    # What a crash between steps of create_container / create_sandbox leaves behind:
    stray_container = runtime.data_dir / "containers" / ("ab" * 32)
    stray_container.mkdir()
    mount_rootfs(stray_container, busybox.layers)
    stray_sandbox = runtime.run_dir / "sandboxes" / ("cd" * 32)
    await create_namespaces(stray_sandbox, "stray")
    removed = await runtime.garbage_collect()
    assert f"container dir {stray_container}" in removed
    assert f"sandbox dir {stray_sandbox}" in removed
    assert not is_mounted(stray_container / "rootfs") and not stray_container.exists()
    assert not stray_sandbox.exists()
    assert (await runtime.container_status(kept)).state == "running"  # untouched
    assert await runtime.garbage_collect() == []
