"""Benchmark the api server on etcd against the same server on SQLite; prints figures.

The same measurements as bench_api.py (create latency with N writers, list of many pods,
fan-out of one update to many watchers, RSS), once per store: SQLite under the data dir, and a
throwaway etcd (Debian's etcd-server, on loopback, data in a temp dir, stopped by PID). With
etcd it also starts a second api server on the same etcd and measures how long a write through
the first takes to reach a watch on the second. Defaults are smaller than bench_api.py's so
both stores fit in about two minutes; pass bench_api's (--seconds 10 --pods 10000 --watchers
1000) for its figures.

    .venv/bin/python bench/bench_api_etcd.py [--store both|sqlite|etcd] [--writers 100]
        [--seconds 5] [--pods 2000] [--watchers 500] [--hops 50]
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

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.bench_api import Bench, percentile, rss_mb, run_list  # noqa: E402
from tests.etcds import RunningEtcd, start_etcd  # noqa: E402
from tests.servers import RunningServer, start_server  # noqa: E402


async def measure(label: str, server: RunningServer, args: argparse.Namespace) -> None:
    """Print bench_api's figures for one server."""
    await asyncio.sleep(1.0)
    print(f"[{label}] idle server RSS: {rss_mb(server.process.pid):.1f} MB")
    context = ssl.create_default_context(cafile=str(server.ca_file))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0)) as s:
        bench = Bench(server, s)
        ms = [x * 1000 for x in await bench.create_latency(args.writers, args.seconds, 0.0)]
        print(f"[{label}] create with {args.writers} concurrent writers: {len(ms)} creates in "
              f"{args.seconds:.0f} s ({len(ms) / args.seconds:.0f}/s), "
              f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms")
        await run_list(bench, args.pods, f"[{label}] ")
        seen = [x * 1000 for x in await bench.watchers(args.watchers)]
        print(f"[{label}] {len(seen)} watchers saw one update: p50 {statistics.median(seen):.0f}"
              f" ms, p99 {percentile(seen, 0.99):.0f} ms, max {max(seen):.0f} ms")
    print(f"[{label}] server RSS after the run: {rss_mb(server.process.pid):.1f} MB")


async def cross_server(a: RunningServer, b: RunningServer, hops: int
                       ) -> tuple[list[float], list[float]]:  # fmt: skip
    """Return, per create sent to a, seconds until a answered and until b's watch had it."""
    context = ssl.create_default_context(cafile=str(a.ca_file))
    headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
    path = "/api/v1/namespaces/default/configmaps"
    answered: list[float] = []
    seen: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
        url = f"{b.url}{path}?watch=1&labelSelector=hop%3Dyes&timeoutSeconds=300"
        async with session.get(url, headers=headers) as watch:
            for i in range(hops):
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"hop-{i}", "labels": {"hop": "yes"}}}
                sent = time.perf_counter()
                line = asyncio.ensure_future(watch.content.readline())
                async with session.post(a.url + path, data=json.dumps(body),
                                        headers=headers) as resp:
                    assert resp.status == 201, await resp.text()
                answered.append(time.perf_counter() - sent)
                event = json.loads(await asyncio.wait_for(line, 30))
                seen.append(time.perf_counter() - sent)  # upper bound: after A's answer
                assert event["object"]["metadata"]["name"] == f"hop-{i}"
    return answered, seen


async def run_etcd(tmp: Path, args: argparse.Namespace) -> None:
    """Measure a server on a fresh etcd, then the write-to-other-server's-watch delay."""
    etcd: RunningEtcd = start_etcd(tmp / "etcd")
    try:
        a = start_server(tmp / "etcd-a", "--store", etcd.store_spec, "--no-scheduler",
                         controllers=False)
        try:
            await measure("etcd", a, args)
            b = start_server(tmp / "etcd-b", "--store", etcd.store_spec, "--no-scheduler",
                             "--shared-dir", str(a.data_dir), controllers=False)
            try:
                answered, seen = await cross_server(a, b, args.hops)
                ms = [x * 1000 for x in answered]
                print(f"[etcd] {len(ms)} creates through server A: answered in p50 "
                      f"{statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms")
                ms = [x * 1000 for x in seen]
                print(f"[etcd] ... and on a watch through server B within p50 "
                      f"{statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms "
                      f"of the send")
            finally:
                b.stop()
        finally:
            a.stop()
    finally:
        etcd.stop()


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.store in ("both", "sqlite"):
            server = start_server(tmp / "sqlite", "--no-scheduler", controllers=False)
            try:
                await measure("sqlite", server, args)
            finally:
                server.stop()
        if args.store in ("both", "etcd"):
            await run_etcd(tmp, args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", choices=("both", "sqlite", "etcd"), default="both")
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--hops", type=int, default=50)
    asyncio.run(main(parser.parse_args()))
