"""Benchmark the SQLite Store: create latency under concurrency, big lists, watch fan-out.

Run: .venv/bin/python bench/bench_store.py [--writers 100] [--creates 5000] [--list-keys 10000]
     [--watchers 1000] [--synchronous FULL NORMAL] [--rates 1000 4000]

"create ... writers" runs closed loops (each writer sends its next create as soon as the last
is acknowledged): that is the store's saturation throughput, and its latency is the batch time.
"offered" runs the same writers at a steady total rate, as an api server's clients would.

Targets (measured here, never asserted in tests): create p99 < 5 ms with 100 concurrent writers;
a list of 10,000 keys of ~2 KB well under 100 ms; 1,000 watchers on one prefix all see an update
within 1 s at p99.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from dockyard.store.sqlite import SQLiteStore

PODS = "/registry/pods/default/"


def pct(samples: list[float], p: float) -> float:
    """Return the p-th percentile of samples (nearest rank), in milliseconds."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] * 1000


def line(name: str, samples: list[float]) -> str:
    """Format p50/p99/max of samples in milliseconds."""
    return (
        f"{name:<44} n={len(samples):<6} p50={pct(samples, 50):7.2f} ms"
        f"  p99={pct(samples, 99):7.2f} ms  max={max(samples) * 1000:7.2f} ms"
    )


async def bench_creates(path: Path, writers: int, creates: int, synchronous: str) -> None:
    """Print create (and get) latency with many concurrent writers."""
    store = await SQLiteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    value = b"x" * 1024
    per_writer = max(1, creates // writers)
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for i in range(per_writer):
            start = time.perf_counter()
            await store.create(f"{PODS}w{w}-{i}", value)
            latencies.append(time.perf_counter() - start)

    began = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - began
    print(line(f"create 1 KiB, {writers} writers, sync={synchronous}", latencies),
          f" {len(latencies) / elapsed:8.0f} writes/s")

    updates: list[float] = []

    async def updater(w: int) -> None:
        kv = await store.get(f"{PODS}w{w}-0")
        assert kv is not None
        for _ in range(per_writer // 2):
            start = time.perf_counter()
            kv = await store.update(kv.key, value, kv.mod_revision)
            updates.append(time.perf_counter() - start)

    await asyncio.gather(*(updater(w) for w in range(writers)))
    print(line(f"CAS update 1 KiB, {writers} writers, sync={synchronous}", updates))

    gets: list[float] = []

    async def reader(w: int) -> None:
        for i in range(per_writer // 2):
            start = time.perf_counter()
            await store.get(f"{PODS}w{w}-{i}")
            gets.append(time.perf_counter() - start)

    await asyncio.gather(*(reader(w) for w in range(writers)))
    print(line(f"get, {writers} readers", gets))
    await store.close()


async def bench_paced(
    path: Path, writers: int, rate: float, seconds: float, synchronous: str
) -> None:
    """Print create latency when writers together offer a steady rate below saturation."""
    store = await SQLiteStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
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
    print(line(f"create 1 KiB, {writers} writers, {rate:.0f}/s, sync={synchronous}", latencies))
    await store.close()


async def bench_list(path: Path, keys: int) -> None:
    """Print the time to list keys of ~2 KB, whole and in pages of 500."""
    store = await SQLiteStore.open(path)
    value = b"y" * 2048
    for start in range(0, keys, 500):
        await asyncio.gather(
            *(store.create(f"{PODS}pod-{i:06d}", value)
              for i in range(start, min(keys, start + 500)))
        )
    await store.list(PODS)  # warm the page cache, as a running server's would be
    whole: list[float] = []
    for _ in range(10):
        start = time.perf_counter()
        items, _, _ = await store.list(PODS)
        whole.append(time.perf_counter() - start)
    assert len(items) == keys
    print(line(f"list {keys} keys of 2 KiB", whole))
    paged: list[float] = []
    for _ in range(5):
        start = time.perf_counter()
        after, more = "", True
        while more:
            items, _, more = await store.list(PODS, limit=500, start_after=after)
            after = items[-1].key if items else after
        paged.append(time.perf_counter() - start)
    print(line(f"list {keys} keys in pages of 500", paged))
    stats = await store.stats()
    print(f"{'stats':<44} {stats}")
    await store.close()


async def bench_watchers(path: Path, watchers: int, updates: int) -> None:
    """Print the delay from a write until each of many watchers on one prefix receives it."""
    store = await SQLiteStore.open(path)
    kv = await store.create(PODS + "watched", b"0")
    delays: list[float] = []
    sent: dict[int, float] = {}
    done = asyncio.Event()
    remaining = watchers * updates

    async def watch() -> None:
        nonlocal remaining
        seen = 0
        async for event in store.watch(PODS, kv.mod_revision):
            delays.append(time.perf_counter() - sent[event.revision])
            remaining -= 1
            seen += 1
            if remaining == 0:
                done.set()
            if seen == updates:
                return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    while store.watcher_count() < watchers:
        await asyncio.sleep(0.01)
    for i in range(updates):
        sent[kv.mod_revision + 1] = time.perf_counter()
        kv = await store.update(kv.key, str(i).encode(), kv.mod_revision)
        await asyncio.sleep(0.05)
    await asyncio.wait_for(done.wait(), 30)
    await asyncio.gather(*tasks)
    print(line(f"watch delivery, {watchers} watchers x {updates} updates", delays))
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--creates", type=int, default=5000)
    parser.add_argument("--list-keys", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--synchronous", nargs="+", default=["FULL", "NORMAL"])
    parser.add_argument("--rates", type=float, nargs="+", default=[1000.0, 4000.0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        for mode in args.synchronous:
            await bench_creates(Path(tmp) / f"create-{mode}.db", args.writers, args.creates, mode)
        for mode in args.synchronous:
            for rate in args.rates:
                db = Path(tmp) / f"paced-{rate}-{mode}.db"
                await bench_paced(db, args.writers, rate, 3.0, mode)
        await bench_list(Path(tmp) / "list.db", args.list_keys)
        await bench_watchers(Path(tmp) / "watch.db", args.watchers, args.updates)


if __name__ == "__main__":
    asyncio.run(main())
