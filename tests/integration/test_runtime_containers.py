"""Containers through conmon + runc: run, exit codes, env/args, logs, exec, stop, refusals."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from dockyard.runtime import (
    MonitorError,
    NotFoundError,
    RequestError,
    Runtime,
    SandboxConfig,
    SpecError,
)
from dockyard.runtime.spec import Mount
from tests.integration import runtime_fixtures
from tests.integration.runtime_fixtures import BusyboxImage

pytestmark = pytest.mark.integration

runtime = runtime_fixtures.runtime
busybox = runtime_fixtures.busybox

CRI_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) (stdout|stderr) [FP] "
)


async def wait_state(rt: Runtime, cid: str, state: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (await rt.container_status(cid)).state != state:
        assert time.monotonic() < deadline, f"container never became {state}"
        await asyncio.sleep(0.05)


async def sandbox(rt: Runtime, name: str = "pod") -> str:
    return (await rt.create_sandbox(SandboxConfig(pod_uid=f"uid-{name}", name=name))).id


async def test_echo_exit_code_env_args_and_cri_logs(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sid = await sandbox(runtime)
    cfg = busybox.container(
        "echo",
        command=["/bin/sh", "-c"],
        args=['echo "out $GREETING $0"; echo oops >&2; exit 7'],
        env={"GREETING": "hello"},
    )
    cid = await runtime.create_container(sid, cfg)
    assert (await runtime.container_status(cid)).state == "created"
    await runtime.start_container(cid)
    await wait_state(runtime, cid, "exited")
    status = await runtime.container_status(cid)
    assert status.exit_code == 7 and status.reason == "Error"
    assert status.started_at is not None and status.finished_at is not None
    raw = runtime.log_path(cid).read_bytes().splitlines()
    assert all(CRI_LINE.match(line) for line in raw), raw
    lines = [(r.stream, r.message) async for r in runtime.read_logs(cid)]
    assert lines == [("stdout", b"out hello /bin/sh"), ("stderr", b"oops")]
    assert [r.message async for r in runtime.read_logs(cid, tail=1)] == [b"oops"]


async def test_completed_reason_and_image_cmd(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    cid = await runtime.create_container(sid, busybox.container("ok", command=["true"]))
    await runtime.start_container(cid)
    await wait_state(runtime, cid, "exited")
    status = await runtime.container_status(cid)
    assert (status.exit_code, status.reason) == (0, "Completed")


async def test_exec_sync_and_streaming(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    cid = await runtime.create_container(
        sid, busybox.container("sleeper", command=["sleep", "300"], env={"WHO": "container"})
    )
    await runtime.start_container(cid)
    result = await runtime.exec_sync(cid, ["sh", "-c", "echo $WHO; echo bad >&2; exit 4"], 10)
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"container\n", b"bad\n")
    slow = await runtime.exec_sync(cid, ["sleep", "30"], timeout=0.5)
    assert slow.timed_out
    ps = await runtime.exec_sync(cid, ["ps", "-o", "comm"], 10)
    assert b"sleep\n" in ps.stdout and ps.stdout.count(b"sleep") == 1  # the timed-out one is dead
    proc = await runtime.exec(
        cid, ["sh", "-c", "read line; echo got:$line; echo e >&2"], stdin=True
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"ping\n")
    await proc.stdin.drain()
    assert await proc.stdout.readline() == b"got:ping\n"
    assert await proc.stderr.readline() == b"e\n"
    assert await proc.wait() == 0


async def test_exec_with_tty(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    cid = await runtime.create_container(sid, busybox.container("tty", command=["sleep", "300"]))
    await runtime.start_container(cid)
    proc = await runtime.exec(cid, ["sh", "-c", "tty; exit 3"], tty=True)
    assert proc.pty_master is not None
    assert await proc.wait() == 3
    out = await asyncio.to_thread(_read_all, proc.pty_master)  # still readable after the exit
    proc.close()
    assert proc.pty_master is None
    assert b"/dev/pts/" in out


def _read_all(fd: int) -> bytes:
    import os

    data = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO once the terminal's last user is gone
            return data
        if not chunk:
            return data
        data += chunk


async def test_stop_waits_grace_then_kills(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    stubborn = busybox.container(
        "stubborn",
        command=["sh", "-c", "trap 'echo got TERM' TERM; while true; do sleep 0.1; done"],
    )
    polite = busybox.container(
        "polite", command=["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]
    )
    ids = [await runtime.create_container(sid, c) for c in (stubborn, polite)]
    for cid in ids:
        await runtime.start_container(cid)
    await asyncio.sleep(0.3)  # let the shells install their traps
    t0 = time.monotonic()
    status = await runtime.stop_container(ids[0], grace_seconds=1.0)
    took = time.monotonic() - t0
    assert status.state == "exited" and status.exit_code == 137  # SIGKILL
    assert took >= 1.0
    assert b"got TERM" in runtime.log_path(ids[0]).read_bytes()
    status = await runtime.stop_container(ids[1], grace_seconds=30)
    assert (status.state, status.exit_code) == ("exited", 0)


async def test_two_containers_share_localhost(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    server = busybox.container(
        "server",
        command=[
            "sh",
            "-c",
            "mkdir /www && echo shared > /www/index.html && httpd -f -p 8080 -h /www",
        ],
    )
    client = busybox.container("client", command=["sleep", "300"])
    srv, cli = [await runtime.create_container(sid, c) for c in (server, client)]
    await runtime.start_container(srv)
    await runtime.start_container(cli)
    for _ in range(50):
        result = await runtime.exec_sync(cli, ["wget", "-qO-", "http://127.0.0.1:8080/"], 5)
        if result.exit_code == 0:
            break
        await asyncio.sleep(0.1)
    assert result.stdout == b"shared\n"


async def test_refusals_leave_nothing(
    runtime: Runtime, busybox: BusyboxImage, tmp_path: Path
) -> None:
    sid = await sandbox(runtime)
    with pytest.raises(SpecError, match="working dir"):
        await runtime.create_container(sid, busybox.container("a", working_dir="/proc/self"))
    with pytest.raises(SpecError, match="out of range"):
        await runtime.create_container(sid, busybox.container("b", user="4294967295"))
    with pytest.raises(SpecError, match="out of range"):
        await runtime.create_container(sid, busybox.container("c", user="-1"))
    with pytest.raises(SpecError, match="outside the allowed"):
        await runtime.create_container(
            sid, busybox.container("d", mounts=[Mount(Path("/etc"), "/x")])
        )
    bad_image = {"config": {"Cmd": ["true"], "Volumes": {"/../../etc": {}}}}
    with pytest.raises(SpecError, match="Volumes"):
        await runtime.create_container(
            sid,
            busybox.container("e").__class__(
                name="e", lower_dirs=busybox.layers, image_config=bad_image
            ),
        )
    with pytest.raises(RequestError, match="DNS label"):
        await runtime.create_container(sid, busybox.container("Bad_Name"))
    with pytest.raises(NotFoundError):
        await runtime.create_container("0" * 64, busybox.container("f"))
    assert await runtime.list_containers() == []
    assert list((runtime.data_dir / "containers").iterdir()) == []


async def test_user_by_name_from_image(
    runtime: Runtime, busybox: BusyboxImage, tmp_path: Path
) -> None:
    etc = tmp_path / "etc-layer"
    (etc / "etc").mkdir(parents=True)
    (etc / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1234:4321::/:/bin/sh\n")
    (etc / "etc" / "group").write_text("root:x:0:\napp:x:4321:\nextra:x:777:app\n")
    cfg = busybox.container("named", command=["id"], user="app").__class__(
        name="named",
        lower_dirs=[*busybox.layers, etc],
        image_config=busybox.config,
        command=["id"],
        user="app",
    )
    sid = await sandbox(runtime)
    cid = await runtime.create_container(sid, cfg)
    await runtime.start_container(cid)
    await wait_state(runtime, cid, "exited")
    out = b"".join([r.message async for r in runtime.read_logs(cid)])
    assert out.startswith(b"uid=1234(app) gid=4321(app) groups=777(extra)")


async def test_missing_binary_fails_clearly_and_leaves_nothing(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sid = await sandbox(runtime)
    with pytest.raises(MonitorError, match='"nonexistent": executable file not found'):
        await runtime.create_container(sid, busybox.container("bad", command=["nonexistent"]))
    assert await runtime.list_containers() == []
    assert list((runtime.data_dir / "containers").iterdir()) == []
    cid = await runtime.create_container(sid, busybox.container("ok", command=["sleep", "60"]))
    await runtime.start_container(cid)
    result = await runtime.exec_sync(cid, ["nonexistent"], 5)
    assert result.exit_code == 127 and b"not found" in result.stderr
    assert (await runtime.exec_sync(cid, ["/etc/hosts"], 5)).exit_code == 126


async def test_previous_attempt_logs(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    first = await runtime.create_container(
        sid, busybox.container("app", command=["echo", "first run"], attempt=0)
    )
    await runtime.start_container(first)
    await wait_state(runtime, first, "exited")
    await runtime.remove_container(first)  # the kubelet keeps logs of a replaced container
    second = await runtime.create_container(
        sid, busybox.container("app", command=["echo", "second run"], attempt=1)
    )
    await runtime.start_container(second)
    await wait_state(runtime, second, "exited")
    assert [r.message async for r in runtime.read_logs(second)] == [b"second run"]
    assert [r.message async for r in runtime.read_logs(second, previous=True)] == [b"first run"]
    with pytest.raises(RequestError, match="already exists"):
        await runtime.create_container(sid, busybox.container("app", attempt=1))
    third = await runtime.create_container(sid, busybox.container("solo", command=["true"]))
    with pytest.raises(NotFoundError, match="no previous log"):
        [r async for r in runtime.read_logs(third, previous=True)]


async def test_attach_to_stdin_and_output(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    script = "while read l; do echo got:$l; done; echo bye >&2"
    cfg = busybox.container("cat", command=["sh", "-c", script], stdin=True, stdin_once=True)
    cid = await runtime.create_container(sid, cfg)
    await runtime.start_container(cid)
    session = await runtime.attach(cid)
    await session.write(b"one\n")
    assert await asyncio.wait_for(session.read(), 10) == ("stdout", b"got:one\n")
    session.close_stdin()
    assert await asyncio.wait_for(session.read(), 10) == ("stderr", b"bye\n")
    session.close()
    await wait_state(runtime, cid, "exited")
    assert (await runtime.container_status(cid)).exit_code == 0
    assert [r.message async for r in runtime.read_logs(cid)] == [b"got:one", b"bye"]


async def test_stdin_stays_open_for_the_next_attach_without_stdin_once(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sid = await sandbox(runtime)
    script = "while read l; do echo got:$l; done"
    cid = await runtime.create_container(
        sid, busybox.container("shell", command=["sh", "-c", script], stdin=True))
    await runtime.start_container(cid)
    for line in (b"first", b"second"):
        session = await runtime.attach(cid)
        await session.write(line + b"\n")
        assert await asyncio.wait_for(session.read(), 10) == ("stdout", b"got:" + line + b"\n")
        session.close_stdin()
        session.close()
    assert (await runtime.container_status(cid)).state == "running"
    await runtime.stop_container(cid, 5)


async def test_tty_container_resize(runtime: Runtime, busybox: BusyboxImage) -> None:
    sid = await sandbox(runtime)
    cfg = busybox.container("term", command=["sh", "-c", "sleep 1; stty size"], tty=True)
    cid = await runtime.create_container(sid, cfg)
    await runtime.start_container(cid)
    await runtime.resize_tty(cid, 40, 100)
    await wait_state(runtime, cid, "exited")
    out = b"".join([r.message async for r in runtime.read_logs(cid)])
    assert b"40 100" in out


async def test_seccomp_refuses_namespaces_and_keyrings_unless_privileged(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    sid = await sandbox(runtime)
    plain = await runtime.create_container(sid, busybox.container("plain", command=["sleep", "60"]))
    await runtime.start_container(plain)
    for cmd in (["unshare", "-U", "true"], ["unshare", "-n", "true"]):
        result = await runtime.exec_sync(plain, cmd, 10)
        assert result.exit_code != 0 and b"Operation not permitted" in result.stderr, result
    forked = await runtime.exec_sync(plain, ["sh", "-c", "(echo child) && echo parent"], 10)
    assert forked.stdout == b"child\nparent\n"  # plain fork/clone still works
    priv = await runtime.create_container(
        sid, busybox.container("priv", command=["sleep", "60"], privileged=True)
    )
    await runtime.start_container(priv)
    assert (await runtime.exec_sync(priv, ["unshare", "-n", "true"], 10)).exit_code == 0


async def test_runc_agrees_the_started_container_runs(
    runtime: Runtime, busybox: BusyboxImage
) -> None:
    from dockyard.runtime.runc import RuncError

    sid = await sandbox(runtime)
    cid = await runtime.create_container(sid, busybox.container("c", command=["sleep", "60"]))
    assert (await runtime.runc.state(cid) or {}).get("status") == "created"
    await runtime.start_container(cid)  # through the exec fifo, as `runc start` does
    assert (await runtime.runc.state(cid) or {}).get("status") == "running"
    assert not (runtime.run_dir / "runc" / cid / "exec.fifo").exists()
    with pytest.raises(RuncError, match="does not exist"):
        await runtime.runc.start("0" * 64)  # no fifo: falls back to `runc start`, its message
