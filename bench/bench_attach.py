"""Benchmark attach (conmon's attach socket) against exec, on the runtime: latency and bytes/s.

    .venv/bin/python bench/bench_attach.py [--lines 500] [--mib 32]

One busybox `cat` container created with stdin. Through `Runtime.attach` (what pods/attach
relays) and through `Runtime.exec(["cat"], stdin=True)` (what pods/exec relays), each:
- round trip: write one short line, wait for its echo; `--lines` times, median and p99;
- throughput: `--mib` MiB written in 64 KiB writes while the echo is read back, MiB/s.
Attach goes through conmon, which also writes every output line to the container's log, so
its figures include the logging; exec's output is not logged. The api server and agent hops
(TLS WebSocket relays) come on top of either. Needs root; everything made is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import ContainerConfig, Runtime, SandboxConfig

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
    print(f"{name:<8} round trip median {statistics.median(took) * 1e3:6.2f} ms  "
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


async def main(args: argparse.Namespace) -> None:
    """Run the benchmark in a temporary dir and clean everything up."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-bench-attach-"))
    store = ImageStore(base / "images")
    image = bootstrap_busybox(store)
    template = ContainerConfig(name="t", lower_dirs=store.unpacked_layers(image),
                               image_config=image.config)  # fmt: skip
    rt = Runtime(run_dir=base / "run", data_dir=base / "data", bridge=f"dyb{secrets.token_hex(4)}",
                 pod_cidr=f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24")
    try:
        await bench(rt, template, args.lines, args.mib)
    finally:
        for container in await rt.list_containers():
            await rt.stop_container(container.id, grace_seconds=0)
            await rt.remove_container(container.id)
        for sandbox in rt.list_sandboxes():
            await rt.remove_sandbox(sandbox.id)
        await rt.destroy_network()
        await rt.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=500, help="round trips per path")
    parser.add_argument("--mib", type=int, default=32, help="MiB echoed per path")
    asyncio.run(main(parser.parse_args()))
