"""Benchmark the api server end to end over HTTPS on this machine; prints figures.

Figures (issue targets in brackets): create latency p50/p99 with N concurrent writers
[p99 < 20 ms at 100], list of 10,000 pods as JSON [< 300 ms], time for 1,000 concurrent
watchers to all see one update [p99 < 1 s], idle server RSS [< 80 MB].

    .venv/bin/python bench/bench_api.py [--writers 100] [--seconds 10] [--pods 10000]
                                        [--watchers 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import RunningServer, start_server  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"},
                     "annotations": {"note": "x" * 200}},
        "spec": {"containers": [{
            "name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            "env": [{"name": f"E{i}", "value": "v" * 20} for i in range(10)],
        }]},
    }


class Bench:
    def __init__(self, server: RunningServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.headers = {"Authorization": f"Bearer {server.token}",
                        "Content-Type": "application/json"}

    async def post(self, path: str, obj: dict[str, Any]) -> int:
        async with self.session.post(self.server.url + path, data=json.dumps(obj),
                                     headers=self.headers) as resp:
            await resp.read()
            return resp.status

    async def create_latency(self, writers: int, seconds: float) -> list[float]:
        await self.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "writers"}})
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def writer(w: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                code = await self.post("/api/v1/namespaces/writers/configmaps", {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"w{w}-{i}"}, "data": {"k": "v" * 100}})
                assert code == 201, code
                latencies.append(time.perf_counter() - started)
                i += 1

        await asyncio.gather(*(writer(w) for w in range(writers)))
        return latencies

    async def fill_pods(self, count: int) -> None:
        await self.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "bench"}})
        queue = list(range(count))

        async def worker() -> None:
            while queue:
                i = queue.pop()
                await self.post("/api/v1/namespaces/bench/pods", pod(f"pod-{i:05d}"))

        await asyncio.gather(*(worker() for _ in range(32)))

    async def list_pods(self) -> tuple[float, int]:
        started = time.perf_counter()
        async with self.session.get(self.server.url + "/api/v1/namespaces/bench/pods",
                                    headers=self.headers) as resp:
            body = await resp.read()
        elapsed = time.perf_counter() - started
        return elapsed, len(json.loads(body)["items"])

    async def watchers(self, count: int) -> list[float]:
        path = "/api/v1/namespaces/default/configmaps"
        await self.post(path, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "watched"}, "data": {"v": "0"}})
        ready = 0
        all_ready = asyncio.Event()
        seen: list[float] = []
        sent_at: list[float] = []

        async def watch() -> None:
            nonlocal ready
            url = (f"{self.server.url}{path}?watch=1&fieldSelector=metadata.name%3Dwatched"
                   "&timeoutSeconds=60")
            async with self.session.get(url, headers=self.headers) as resp:
                first = True
                async for _line in resp.content:
                    if first:
                        first = False
                        ready += 1
                        if ready == count:
                            all_ready.set()
                        continue
                    seen.append(time.perf_counter() - sent_at[0])
                    return

        tasks = [asyncio.create_task(watch()) for _ in range(count)]
        await asyncio.wait_for(all_ready.wait(), 120)
        sent_at.append(time.perf_counter())
        async with self.session.patch(
            f"{self.server.url}{path}/watched", data=json.dumps({"data": {"v": "1"}}),
            headers={**self.headers, "Content-Type": "application/merge-patch+json"},
        ) as resp:
            await resp.read()
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return seen


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the api server and store alone: no scheduler or controllers reacting to the load
        server = start_server(Path(tmp) / "data", "--no-scheduler", controllers=False)
        try:
            await asyncio.sleep(1.0)
            print(f"idle server RSS: {rss_mb(server.process.pid):.1f} MB")
            context = ssl.create_default_context(cafile=str(server.ca_file))
            connector = aiohttp.TCPConnector(ssl=context, limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                bench = Bench(server, session)
                latencies = await bench.create_latency(args.writers, args.seconds)
                ms = [x * 1000 for x in latencies]
                print(f"create with {args.writers} concurrent writers: {len(ms)} creates in "
                      f"{args.seconds:.0f} s ({len(ms) / args.seconds:.0f}/s), "
                      f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms")
                await bench.fill_pods(args.pods)
                times = []
                for _ in range(5):
                    elapsed, n = await bench.list_pods()
                    times.append(elapsed * 1000)
                print(f"list of {n} pods (JSON): median {statistics.median(times):.0f} ms, "
                      f"best {min(times):.0f} ms")
                seen = await bench.watchers(args.watchers)
                print(f"{len(seen)} watchers saw one update: p50 "
                      f"{statistics.median(seen) * 1000:.0f} ms, p99 "
                      f"{percentile(seen, 0.99) * 1000:.0f} ms, max {max(seen) * 1000:.0f} ms")
            print(f"server RSS after the run: {rss_mb(server.process.pid):.1f} MB")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--watchers", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
