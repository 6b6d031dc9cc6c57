"""Benchmark the Store backends: create latency under concurrency, big lists, watch fan-out.

Run: .venv/bin/python bench/bench_store.py [--backend sqlite|etcd] [--writers 100]
     [--creates 5000] [--list-keys 10000] [--watchers 1000] [--synchronous FULL NORMAL]
     [--rates 1000 4000]

"closed loop" runs each writer sending its next create as soon as the last is acknowledged:
that is the store's saturation throughput, and its latency is the group-commit batch time.
"N/s offered" runs the same writers at a steady total rate, as an api server's clients would.
"during compaction" runs the offered load with a 1 s history, so compaction runs all along.
``--backend etcd`` starts a throwaway etcd (/usr/bin/etcd) per section on loopback.

Targets (measured here, never asserted in tests): create p99 < 5 ms with 100 concurrent writers;
a list of 10,000 keys of ~2 KB well under 100 ms; 1,000 watchers on one prefix all see an update
within 1 s at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp

from dockyard.store.base import Store
from dockyard.store.etcd import EtcdStore
from dockyard.store.sqlite import SQLiteStore

PODS = "/registry/pods/default/"
Fresh = Callable[..., contextlib.AbstractAsyncContextManager[Store]]


def pct(samples: list[float], p: float) -> float:
    """Return the p-th percentile of samples (nearest rank), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000


def line(name: str, samples: list[float]) -> str:
    """Format p50/p99/max of samples in milliseconds."""
    return (
        f"{name:<60} n={len(samples):<6} p50={pct(samples, 50):7.2f} ms"
        f"  p99={pct(samples, 99):7.2f} ms  max={max(samples) * 1000:7.2f} ms"
    )


def sqlite_backend(tmp: Path, synchronous: str) -> Fresh:
    """Return a factory of fresh SQLite stores in tmp."""
    counter = iter(range(1_000_000))

    @contextlib.asynccontextmanager
    async def fresh(history_seconds: float = 300.0) -> AsyncIterator[Store]:
        path = tmp / f"store-{synchronous}-{next(counter)}.db"
        store = await SQLiteStore.open(
            path, history_seconds=history_seconds, synchronous=synchronous  # type: ignore[arg-type]
        )
        try:
            yield store
        finally:
            await store.close()

    return fresh


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def etcd_backend(tmp: Path) -> Fresh:
    """Return a factory of stores, each on its own throwaway etcd in tmp."""
    counter = iter(range(1_000_000))

    @contextlib.asynccontextmanager
    async def fresh(history_seconds: float = 300.0) -> AsyncIterator[Store]:
        n = next(counter)
        url = f"http://127.0.0.1:{free_port()}"
        peer = f"http://127.0.0.1:{free_port()}"
        proc = subprocess.Popen(
            ["/usr/bin/etcd", "--name", "bench", "--data-dir", str(tmp / f"etcd-{n}"),
             "--listen-client-urls", url, "--advertise-client-urls", url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"bench={peer}", "--max-request-bytes", str(3 << 20),
             "--quota-backend-bytes", str(4 << 30), "--logger", "zap", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            await wait_for_etcd(url)
            store = await EtcdStore.open(url, history_seconds=history_seconds)
            try:
                yield store
            finally:
                await store.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)

    return fresh


async def wait_for_etcd(url: str) -> None:
    """Return once etcd answers a range request."""
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.post(f"{url}/v3/kv/range", json={"key": "AA=="}) as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"etcd at {url} did not start")


async def bench_creates(fresh: Fresh, label: str, writers: int, creates: int) -> None:
    """Print create, CAS update and get latency with many concurrent closed-loop clients."""
    async with fresh() as store:
        value = b"x" * 1024
        per_writer = max(2, creates // writers)
        latencies: list[float] = []

        async def writer(w: int) -> None:
            for i in range(per_writer):
                start = time.perf_counter()
                await store.create(f"{PODS}w{w}-{i}", value)
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        rate = len(latencies) / (time.perf_counter() - began)
        print(line(f"{label} create 1 KiB, {writers} closed loop", latencies),
              f"{rate:7.0f} writes/s")
        updates: list[float] = []

        async def updater(w: int) -> None:
            kv = await store.get(f"{PODS}w{w}-0")
            assert kv is not None
            for _ in range(per_writer // 2):
                start = time.perf_counter()
                kv = await store.update(kv.key, value, kv.mod_revision)
                updates.append(time.perf_counter() - start)

        await asyncio.gather(*(updater(w) for w in range(writers)))
        print(line(f"{label} CAS update 1 KiB, {writers} closed loop", updates))
        gets: list[float] = []

        async def reader(w: int) -> None:
            for i in range(per_writer // 2):
                start = time.perf_counter()
                await store.get(f"{PODS}w{w}-{i}")
                gets.append(time.perf_counter() - start)

        await asyncio.gather(*(reader(w) for w in range(writers)))
        print(line(f"{label} get, {writers} closed loop", gets))


async def offered_load(store: Store, writers: int, rate: float, seconds: float) -> list[float]:
    """Return create latencies when writers together offer a steady rate."""
    value = b"x" * 1024
    period = writers / rate  # each writer's interval between creates
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def writer(w: int) -> None:
        next_at = loop.time() + period * w / writers  # spread the writers' phases
        i = 0
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            start = time.perf_counter()
            await store.create(f"{PODS}w{w}-{i}", value)
            latencies.append(time.perf_counter() - start)
            next_at += period
            i += 1

    await asyncio.gather(*(writer(w) for w in range(writers)))
    return latencies


async def bench_offered(fresh: Fresh, label: str, writers: int, rate: float) -> None:
    """Print create latency at a steady offered rate below saturation."""
    async with fresh() as store:
        latencies = await offered_load(store, writers, rate, 3.0)
    print(line(f"{label} create 1 KiB, {writers} writers, {rate:.0f}/s offered", latencies))


async def bench_compaction(fresh: Fresh, label: str, writers: int, rate: float) -> None:
    """Print create latency while compaction drops history all along (1 s history)."""
    async with fresh(history_seconds=1.0) as store:
        latencies = await offered_load(store, writers, rate, 5.0)
        stats = await store.stats()
    print(line(f"{label} create, {rate:.0f}/s during compaction", latencies),
          f"compacted to {stats['compacted_revision']} of {stats['revision']}")


async def bench_list(fresh: Fresh, label: str, keys: int) -> None:
    """Print the time to list keys of ~2 KB, whole and in pages of 500."""
    async with fresh() as store:
        value = b"y" * 2048
        for start in range(0, keys, 500):
            await asyncio.gather(
                *(store.create(f"{PODS}pod-{i:06d}", value)
                  for i in range(start, min(keys, start + 500)))
            )
        await asyncio.sleep(1.5)  # let the WAL checkpoint settle, as on a server at rest
        await store.list(PODS)  # warm the page cache, as a running server's would be
        whole: list[float] = []
        for _ in range(10):
            start = time.perf_counter()
            items, _, _ = await store.list(PODS)
            whole.append(time.perf_counter() - start)
        assert len(items) == keys
        print(line(f"{label} list {keys} keys of 2 KiB", whole))
        paged: list[float] = []
        for _ in range(5):
            start = time.perf_counter()
            after, more, at = "", True, 0
            while more:
                items, at, more = await store.list(
                    PODS, limit=500, start_after=after, revision=at
                )
                after = items[-1].key if items else after
            paged.append(time.perf_counter() - start)
        print(line(f"{label} list {keys} keys in pages of 500", paged))
        print(f"{label} stats {await store.stats()}")


async def bench_watchers(fresh: Fresh, label: str, watchers: int, updates: int) -> None:
    """Print the delay from a write until each of many watchers on one prefix receives it."""
    async with fresh() as store:
        kv = await store.create(PODS + "watched", b"0")
        warm_up = kv.mod_revision + 1  # every watch has seen this one before we measure
        sent: dict[int, float] = {}
        delays: list[float] = []
        cold = watchers
        all_warm = asyncio.Event()

        async def watch() -> None:
            nonlocal cold
            seen = 0
            stream = store.watch(PODS, kv.mod_revision)
            async for event in stream:
                if event.revision == warm_up:
                    cold -= 1
                    if cold == 0:
                        all_warm.set()
                else:
                    delays.append(time.perf_counter() - sent[event.revision])
                seen += 1
                if seen == updates + 1:
                    break
            await stream.aclose()  # type: ignore[attr-defined]

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        kv = await store.update(kv.key, b"warm-up", kv.mod_revision)
        await asyncio.wait_for(all_warm.wait(), 60)
        for i in range(updates):
            sent[kv.mod_revision + 1] = time.perf_counter()
            kv = await store.update(kv.key, str(i).encode(), kv.mod_revision)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    print(line(f"{label} watch delivery, {watchers} watchers x {updates} updates", delays))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "etcd"], default="sqlite")
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--list-keys", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--synchronous", nargs="+", default=["NORMAL", "FULL"])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 4000.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as name:
        tmp = Path(name)
        if args.backend == "etcd":
            backends = {"etcd": etcd_backend(tmp)}
        else:
            backends = {f"sqlite/{m}": sqlite_backend(tmp, m) for m in args.synchronous}
        for label, fresh in backends.items():
            await bench_creates(fresh, label, args.writers, args.creates)
            for rate in args.rates:
                await bench_offered(fresh, label, args.writers, rate)
        label, fresh = next(iter(backends.items()))
        await bench_compaction(fresh, label, args.writers, args.rates[0])
        await bench_list(fresh, label, args.list_keys)
        await bench_watchers(fresh, label, args.watchers, args.updates)


if __name__ == "__main__":
    asyncio.run(main())
