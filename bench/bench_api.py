"""Benchmark the api server end to end over HTTPS on this machine; prints figures.

Figures (issue targets in brackets): create latency p50/p99 with N concurrent writers
[p99 < 20 ms at 100], list of 10,000 pods as JSON [< 300 ms], time for 1,000 concurrent
watchers to all see one update [p99 < 1 s], idle server RSS [< 80 MB].

    .venv/bin/python bench/bench_api.py [--writers 100] [--seconds 10] [--rate 0]
        [--pods 10000] [--watchers 1000] [--profile creates.folded]

Each writer opens its connection (TLS handshake) before the clock starts: a client keeps its
connections, and a hundred handshakes at once otherwise land in the first requests' latency.
By default the writers are a closed loop (each sends its next create when the last is
answered), so latency is about writers / throughput (Little's law): p50 mostly measures the
queue, and the server's CPU per create (printed, from /proc) is the figure to compare. With
--rate R the writers share a fixed schedule of R creates per second instead (latency counted
from each create's scheduled time, so a slow server cannot hide its backlog): p99 at a load
the server can carry. --profile FILE records the server during the creates with py-spy (a dev
dependency) into FILE (folded stacks) and prints where its time goes. --pods 0 and
--watchers 0 skip those parts.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from dockyard.api import app_keys
from dockyard.api.app import ApiConfig, build_app
from dockyard.api.tokens import TokenFile, User
from dockyard.store.sqlite import SQLiteStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import RunningServer, start_server  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

    async def get(self, path: str) -> int:
        async with self.session.get(self.server.url + path, headers=self.headers) as resp:
            await resp.read()
            return resp.status

    async def open_connections(self, count: int) -> None:
        """Open count kept-alive connections (TLS handshakes happen here, untimed)."""
        codes = await asyncio.gather(*(self.get("/api/v1/namespaces/writers")
                                       for _ in range(count)))
        assert set(codes) == {200}, codes

    async def create_latency(self, writers: int, seconds: float, rate: float) -> list[float]:
        await self.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "writers"}})
        await self.open_connections(writers)
        latencies: list[float] = []
        start = time.perf_counter()
        deadline = start + seconds
        schedule = iter(range(int(rate * seconds))) if rate else None

        async def writer(w: int) -> None:
            i = 0
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                if schedule is not None:
                    slot = next(schedule, None)
                    if slot is None:
                        return
                    started = start + slot / rate  # the create's scheduled time
                    await asyncio.sleep(max(0.0, started - time.perf_counter()))
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


async def run_creates(bench: Bench, server: RunningServer, args: argparse.Namespace) -> None:
    if not args.writers:
        return
    spy = start_profile(server.process.pid, args.seconds, args.profile)
    cpu_before, client_before = cpu_seconds(server.process.pid), time.process_time()
    latencies = await bench.create_latency(args.writers, args.seconds, args.rate)
    cpu = cpu_seconds(server.process.pid) - cpu_before
    client = time.process_time() - client_before
    ms = [x * 1000 for x in latencies]
    load = f"{args.rate:.0f}/s offered by" if args.rate else "closed loop,"
    print(f"create ({load} {args.writers} writers): {len(ms)} creates in "
          f"{args.seconds:.0f} s ({len(ms) / args.seconds:.0f}/s), "
          f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
          f"CPU per create: server {cpu * 1000 / len(ms):.2f} ms, "
          f"this client {client * 1000 / len(ms):.2f} ms")
    if spy is not None:
        spy.wait()
        print_profile(args.profile)


async def run_list(bench: Bench, pods: int, label: str = "") -> None:
    """Create pods by 32 writers, then list them five times; print both (label first)."""
    started = time.perf_counter()
    await bench.fill_pods(pods)
    print(f"{label}{pods} pods created by 32 writers in {time.perf_counter() - started:.1f} s")
    times = []
    for _ in range(5):
        elapsed, n = await bench.list_pods()
        times.append(elapsed * 1000)
    print(f"{label}list of {n} pods (JSON): median {statistics.median(times):.0f} ms, "
          f"best {min(times):.0f} ms")


def start_profile(pid: int, seconds: float, out: str) -> subprocess.Popen[bytes] | None:
    """Start py-spy on the server for the create phase (GIL holder only: where CPU goes)."""
    if not out:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
         "--rate", "200", "--gil", "--nonblocking", "--format", "raw", "--output", out],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def print_profile(path: str, top: int = 25) -> None:
    """Print the functions holding the most samples (inclusive), from folded stacks."""
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in {f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
                      for f in stack.split(";")}:
            inclusive[frame] += int(count)
    print(f"profile ({total} samples while holding the GIL) -> {path}")
    for frame, count in inclusive.most_common(top):
        print(f"  {count * 100 / max(total, 1):5.1f}%  {frame}")


async def handler_path(count: int, rounds: int = 5) -> list[float]:
    """Return the CPU ms per create of the api server's own create path, in this process, for
    each round of count creates: routing, decoding, managedFields, admission, validation, the
    SQLite write, the response body; no HTTP parsing, no TLS. Steadier than the end-to-end
    figure on a busy machine; the best round is the least disturbed by other processes."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = await SQLiteStore.open(data_dir / "state.db")
        runner = web.AppRunner(build_app(ApiConfig(store, TokenFile(data_dir), data_dir)))
        await runner.setup()  # startup: built-in namespaces, namespace cache
        try:
            handlers = runner.app[app_keys.RESOURCES]
            user = User("admin", ("system:masters",), "admin")
            # One set of aiohttp's test doubles for transport and protocol, shared by all.
            base = make_mocked_request("POST", "/")
            await handlers.handle(_create_request(-1, user, base))  # warm: first-use imports
            figures = []
            for round_ in range(rounds):
                requests = [_create_request(round_ * count + i, user, base)
                            for i in range(count)]
                started = time.process_time()
                for at in range(0, count, 100):  # 100 at a time, as concurrent writers
                    responses = await asyncio.gather(*map(handlers.handle,
                                                          requests[at:at + 100]))
                    assert {r.status for r in responses} == {201}, [r.status for r in responses]
                figures.append((time.process_time() - started) * 1000 / count)
            return figures
        finally:
            await runner.cleanup()
            await store.close()


def _create_request(i: int, user: User, base: web.Request) -> web.Request:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": f"c{i}"}, "data": {"k": "v" * 100}}).encode()
    loop = asyncio.get_running_loop()
    payload = StreamReader(BaseProtocol(loop), 2**16, loop=loop)  # a real reader, no mocks
    payload.feed_data(body)
    payload.feed_eof()
    request = make_mocked_request(
        "POST", "/api/v1/namespaces/default/configmaps?fieldManager=bench",
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
        payload=payload, app=base.app, protocol=base.protocol, transport=base.transport,
        writer=base.writer,
    )
    request["user"] = user
    return request


async def main(args: argparse.Namespace) -> None:
    if args.handler_creates:
        figures = await handler_path(args.handler_creates)
        print(f"create path in process (no HTTP/TLS), {len(figures)} x "
              f"{args.handler_creates} creates: CPU per create best {min(figures):.3f} ms, "
              f"median {statistics.median(figures):.3f} ms")
    if not (args.writers or args.pods or args.watchers):
        return
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
                await run_creates(bench, server, args)
                if args.pods:
                    await run_list(bench, args.pods)
                if args.watchers:
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
    parser.add_argument("--rate", type=float, default=0.0,
                        help="creates per second for all writers together (0: closed loop)")
    parser.add_argument("--profile", default="", help="py-spy folded stacks of the creates")
    parser.add_argument("--handler-creates", type=int, default=1000,
                        help="creates per round through the handlers in process (0: skip)")
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--watchers", type=int, default=1000)
    asyncio.run(main(parser.parse_args()))
