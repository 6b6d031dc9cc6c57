"""Benchmark the API client: watch decoding, work queue, informer diffing, and a live server.

Run: .venv/bin/python bench/bench_client.py [--events 100000] [--objects 2000]
     [--concurrency 20] [--no-server]

Pure parts (no server): watch-stream decoding rate (events/s of ~1.5 KB pod events), work queue
add/get/done rate with 4 workers, informer re-list diff of 10,000 objects.
Live parts (starts `dockyard server --no-agent` in a temp dir unless --no-server): create
latency with N concurrent clients, a paged list of all objects, a watch's delivery rate, and the
time an Informer takes to sync.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from dockyard.client import ApiClient, Informer, WorkQueue, load_kubeconfig
from dockyard.client.api import parse_watch_stream
from dockyard.client.informer import diff_cache


def pct(samples: list[float], p: float) -> float:
    """Return the p-th percentile of samples (nearest rank), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000


def fake_pod(i: int, rv: int) -> dict[str, Any]:
    """Return a pod-shaped object of ~1.5 KB."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"pod-{i}", "namespace": "default", "resourceVersion": str(rv),
                     "uid": f"{i:08d}-0000-0000-0000-000000000000",
                     "labels": {"app": "web", "pod-template-hash": "abc123"}},
        "spec": {"nodeName": f"node-{i % 50}", "containers": [
            {"name": "web", "image": "registry.local/web:1.0",
             "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
             "ports": [{"containerPort": 8080, "protocol": "TCP"}],
             "env": [{"name": f"VAR_{k}", "value": "x" * 20} for k in range(10)]}]},
        "status": {"phase": "Running", "podIP": f"10.88.{i // 250}.{i % 250}",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


async def bench_watch_decoding(events: int) -> None:
    """Print how fast a watch body is split and decoded into WatchEvents."""
    lines = b"".join(orjson.dumps({"type": "MODIFIED", "object": fake_pod(i, i)}) + b"\n"
                     for i in range(1000))

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(events // 1000):
            for off in range(0, len(lines), 65536):  # aiohttp hands out up to 64 KiB pieces
                yield lines[off:off + 65536]

    start = time.perf_counter()
    n = 0
    async for _ in parse_watch_stream(chunks()):
        n += 1
    took = time.perf_counter() - start
    print(f"watch decoding       {n} events of {len(lines) // 1000} B: "
          f"{n / took:,.0f} events/s ({took:.2f} s)")


async def bench_workqueue(keys: int) -> None:
    """Print the add → get → done rate of a WorkQueue with 4 workers."""
    q = WorkQueue()
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            key = await q.get()
            q.forget(key)
            q.done(key)
            done += 1
            if done == keys:
                q.shut_down()

    start = time.perf_counter()
    tasks = [asyncio.create_task(worker()) for _ in range(4)]
    for i in range(keys):
        q.add(f"default/pod-{i}")
        if i % 100 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*tasks, return_exceptions=True)
    took = time.perf_counter() - start
    print(f"work queue           {keys} keys, 4 workers: {keys / took:,.0f} keys/s")


def bench_diff(objects: int) -> None:
    """Print the time to diff a re-list of N objects (10% changed, 1% new, 1% gone)."""
    cache = {f"default/pod-{i}": fake_pod(i, i) for i in range(objects)}
    fresh = [fake_pod(i, i + (1_000_000 if i % 10 == 0 else 0))
             for i in range(objects // 100, objects + objects // 100)]
    start = time.perf_counter()
    _, diff = diff_cache(cache, fresh)
    took = time.perf_counter() - start
    print(f"informer re-list diff {objects} objects: {took * 1000:.1f} ms "
          f"(+{len(diff.added)} ~{len(diff.updated)} -{len(diff.deleted)})")


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    """Start `dockyard server --no-agent` on a free port; return the process and its URL."""
    dockyard = shutil.which("dockyard", path=str(Path(sys.executable).parent)) or "dockyard"
    proc = subprocess.Popen(
        [dockyard, "server", "--data-dir", str(data_dir), "--port", "0", "--no-agent"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if "ready at" in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    proc.wait()
    raise RuntimeError("dockyard server did not start")


def configmap(i: int) -> dict[str, Any]:
    """Return a small ConfigMap for the live benchmarks."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"bench-{i}", "labels": {"bench": "client"}},
            "data": {"key": "v" * 200}}


async def bench_live(kubeconfig: Path, objects: int, concurrency: int) -> None:
    """Print create latency, list time, watch delivery and informer sync against a server."""
    async with ApiClient(load_kubeconfig(str(kubeconfig))) as api:
        cms = api.resource("v1", "configmaps", "default")
        start_rv = (await cms.list(limit=1)).resource_version
        latencies: list[float] = []
        next_i = 0

        async def creator() -> None:
            nonlocal next_i
            while next_i < objects:
                i, next_i = next_i, next_i + 1
                t = time.perf_counter()
                await cms.create(configmap(i))
                latencies.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(creator() for _ in range(concurrency)))
        took = time.perf_counter() - t0
        print(f"create               {objects} ConfigMaps, {concurrency} concurrent: "
              f"{objects / took:,.0f}/s  p50={pct(latencies, 50):.1f} ms "
              f"p99={pct(latencies, 99):.1f} ms")

        t0 = time.perf_counter()
        listed = await cms.list(label_selector="bench=client", limit=500)
        print(f"list (pages of 500)  {len(listed)} objects: "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms")

        t0 = time.perf_counter()
        seen = 0
        async with cms.watch(resource_version=start_rv, label_selector="bench=client",
                             timeout_seconds=60) as watch:
            async for _ in watch:
                seen += 1
                if seen == objects:
                    break
        took = time.perf_counter() - t0
        print(f"watch replay         {seen} events from an old resourceVersion: "
              f"{seen / took:,.0f} events/s")

        t0 = time.perf_counter()
        informer = Informer(cms, label_selector="bench=client")
        await informer.start()
        await informer.wait_for_sync()
        print(f"informer sync        {len(informer)} objects: "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms")
        await informer.stop()


async def main() -> None:
    """Run the benchmarks the flags select."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--no-server", action="store_true")
    args = parser.parse_args()
    await bench_watch_decoding(args.events)
    await bench_workqueue(args.events)
    bench_diff(10_000)
    if args.no_server:
        return
    with tempfile.TemporaryDirectory(prefix="bench-client-") as tmp:
        proc, _ = start_server(Path(tmp) / "data")
        try:
            await bench_live(Path(tmp) / "data" / "kubeconfig", args.objects, args.concurrency)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
