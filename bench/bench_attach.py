"""Benchmark attach (conmon's attach socket) against exec: latency and bytes/s.

    .venv/bin/python bench/bench_attach.py [--lines 500] [--mib 32] [--no-server]

Part 1, on the runtime: one busybox `cat` container created with stdin. Through
`Runtime.attach` (what pods/attach relays) and `Runtime.exec(["cat"], stdin=True)` (what
pods/exec relays), each:
- round trip: write one short line, wait for its echo; `--lines` times, median and p99;
- throughput: `--mib` MiB written in 64 KiB writes while the echo is read back, MiB/s.
Attach goes through conmon, which also writes every output line to the container's log, so
its figures include the logging; exec's output is not logged.
Part 2, the whole path a client sees: a `dockyard server` with its agent; the same figures
over pods/attach and pods/exec WebSockets (client → api server → agent, both hops TLS).
Needs root; everything made is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from dockyard.client import ApiClient
from dockyard.client.api import resource_path
from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import ContainerConfig, Runtime, SandboxConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_runtime import busybox_runtime  # noqa: E402

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
PROTOCOLS = ("v5.channel.k8s.io",)

Write = Callable[[bytes], Awaitable[None]]
Read = Callable[[], Awaitable[bytes]]
CHUNK = 64 * 1024


async def round_trips(write: Write, read: Read, lines: int) -> list[float]:
    """Return the seconds each one-line write took to come back."""
    took = []
    for i in range(lines):
        line = f"line {i}\n".encode()
        start = time.perf_counter()
        await write(line)
        got = b""
        while not got.endswith(line):
            got += await _some(read)
        took.append(time.perf_counter() - start)
    return took


async def throughput(write: Write, read: Read, mib: int) -> float:
    """Return MiB/s of `mib` MiB written and read back at the same time."""
    total = mib * 1024 * 1024
    block = b"x" * (CHUNK - 1) + b"\n"

    async def writer() -> None:
        for _ in range(total // CHUNK):
            await write(block)

    start = time.perf_counter()
    task = asyncio.create_task(writer())
    seen = 0
    while seen < total:
        seen += len(await _some(read))
    await task
    return mib / (time.perf_counter() - start)


async def _some(read: Read) -> bytes:
    data = await read()
    if not data:
        raise RuntimeError("the output ended before the echo came back")
    return data


def report(name: str, took: list[float], rate: float) -> None:
    """Print one row of figures."""
    p99 = statistics.quantiles(took, n=100, method="inclusive")[98]
    print(f"{name:<12} round trip median {statistics.median(took) * 1e3:6.2f} ms  "
          f"p99 {p99 * 1e3:6.2f} ms   throughput {rate:7.1f} MiB/s")  # fmt: skip


async def bench(rt: Runtime, template: ContainerConfig, lines: int, mib: int) -> None:
    """Run both paths against one `cat` container each."""
    sid = (await rt.create_sandbox(SandboxConfig(pod_uid="bench-attach", name="bench"))).id
    cfg = ContainerConfig(name="cat", lower_dirs=template.lower_dirs, stdin=True,
                          image_config=template.image_config, command=["cat"])  # fmt: skip
    cid = await rt.create_container(sid, cfg)
    await rt.start_container(cid)
    # exec first: ending the attach session closes cat's stdin (stdinOnce), and cat exits
    process = await rt.exec(cid, ["cat"], stdin=True)
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def exec_write(data: bytes) -> None:
        stdin.write(data)
        await stdin.drain()

    async def exec_read() -> bytes:
        return await stdout.read(CHUNK)

    took = await round_trips(exec_write, exec_read, lines)
    report("exec", took, await throughput(exec_write, exec_read, mib))
    stdin.close()
    await process.wait()
    session = await rt.attach(cid)

    async def attach_read() -> bytes:
        chunk = await session.read()
        return chunk[1] if chunk is not None else b""

    try:
        took = await round_trips(session.write, attach_read, lines)
        report("attach", took, await throughput(session.write, attach_read, mib))
    finally:
        session.close()


class Server:
    """A `dockyard server` with its agent in a temporary dir, stopped by PID."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bridge = f"dyb{secrets.token_hex(4)}"
        self.cidr = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start it with busybox in its store; return once it says it is ready."""
        bootstrap_busybox(ImageStore(self.base / "data"))
        log = open(self.base / "server.log", "a")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([
            DOCKYARD, "server", "--data-dir", str(self.base / "data"), "--port", "0",
            "--run-dir", str(self.base / "run"), "--bridge", self.bridge, "--pod-cidr",
            self.cidr, "--node-name", "bench-attach", "--node-ip", "127.0.0.1",
            "--agent-port", "0"], stdout=subprocess.PIPE, stderr=log, text=True)  # fmt: skip
        assert self.proc.stdout is not None
        while "ready at" not in (line := self.proc.stdout.readline()):
            if not line:
                raise RuntimeError(f"the server did not start; see {self.base / 'server.log'}")

    def stop(self) -> None:
        """Stop the server by PID."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    async def teardown(self) -> None:
        """Remove whatever the stopped agent left: containers, sandboxes, network."""
        rt = Runtime(run_dir=self.base / "run", data_dir=self.base / "data", bridge=self.bridge,
                     pod_cidr=self.cidr)  # fmt: skip
        for container in await rt.list_containers():
            await rt.remove_container(container.id)
        for sandbox in rt.list_sandboxes():
            await rt.remove_sandbox(sandbox.id)
        await rt.destroy_network()
        await rt.close()


def cat_pod(name: str, command: list[str]) -> dict[str, Any]:
    """Return a one-container busybox pod that keeps stdin."""
    container = {"name": "main", "image": "busybox", "command": command, "stdin": True,
                 "stdinOnce": True}  # fmt: skip
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [container]}}  # fmt: skip


async def channel_stream(api: ApiClient, pod: str, kind: str,
                         query: list[tuple[str, str]]) -> tuple[Write, Read, Any]:  # fmt: skip
    """Open pods/KIND as a WebSocket; return its stdin writer, stdout reader and socket."""
    url = api.config.server + resource_path("v1", "pods", "default", pod, kind)
    ws = await api.session().ws_connect(url, params=[*query, ("stdin", "true"),
                                                     ("stdout", "true")],
                                        protocols=PROTOCOLS, max_msg_size=0)  # fmt: skip

    async def write(data: bytes) -> None:
        await ws.send_bytes(b"\x00" + data)

    async def read() -> bytes:
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.BINARY:
                return b""
            if msg.data[:1] == b"\x01":
                return bytes(msg.data[1:])

    return write, read, ws


async def full_path(server: Server, lines: int, mib: int) -> None:
    """Time pods/attach and pods/exec through the api server and the agent."""
    async with ApiClient.from_kubeconfig(str(server.base / "data" / "kubeconfig")) as api:
        pods = api.resource("v1", "pods", "default")
        await pods.create(cat_pod("attached", ["cat"]))
        await pods.create(cat_pod("execd", ["sleep", "3600"]))
        for name in ("attached", "execd"):
            while not any("running" in (c.get("state") or {}) for c in
                          ((await pods.get(name)).get("status") or {}).get(
                              "containerStatuses") or []):  # fmt: skip
                await asyncio.sleep(0.2)
        for label, pod, kind, query in (("pods/exec", "execd", "exec", [("command", "cat")]),
                                        ("pods/attach", "attached", "attach", [])):
            write, read, ws = await channel_stream(api, pod, kind, query)
            try:
                took = await round_trips(write, read, lines)
                report(label, took, await throughput(write, read, mib))
            finally:
                await ws.close()


async def main(args: argparse.Namespace) -> None:
    """Run the benchmark in a temporary dir and clean everything up."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-attach-"))
    async with busybox_runtime(base) as (rt, template):
        await bench(rt, template, args.lines, args.mib)
    if args.server:
        server = Server(base / "server")
        server.base.mkdir()
        try:
            server.start()
            await full_path(server, args.lines, args.mib)
        finally:
            server.stop()
            await server.teardown()
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500, help="round trips per path")
    parser.add_argument("--mib", type=int, default=32, help="MiB echoed per path")
    parser.add_argument("--no-server", dest="server", action="store_false",
                        help="only the runtime part")
    asyncio.run(main(parser.parse_args()))
