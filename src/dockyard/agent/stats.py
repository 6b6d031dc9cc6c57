"""CPU and memory readings of the node and its containers, for metrics.k8s.io (`kubectl top`).

Container figures come from the runtime's cgroup readings; node figures from /proc/stat and
/proc/meminfo. CPU usage is a rate: the change of cumulative cpu seconds between two samples
(taken every SAMPLE_SECONDS and on each request), in nanocores as metrics-server reports it.
Memory is the working set (usage minus inactive file pages), as the kubelet's summary API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.runtime import ContainerStatus, Runtime

SAMPLE_SECONDS = 15.0  # metrics-server scrapes every 15 s
MIN_WINDOW = 1.0


@dataclass
class Sample:
    """A cumulative cpu reading at a time."""

    at: float
    cpu_seconds: float


def node_cpu_seconds() -> float:
    """Return the machine's cumulative busy cpu seconds."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    busy = sum(values) - values[3] - (values[4] if len(values) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def node_memory_working_set() -> int:
    """Return MemTotal - MemAvailable in bytes."""
    info: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[key] = int(parts[0]) * 1024
    return info.get("MemTotal", 0) - info.get("MemAvailable", 0)


class StatsCollector:
    """Keeps recent cpu samples of the node and of each running container."""

    def __init__(self, runtime: Runtime,
                 listing: Callable[[], Awaitable[list[ContainerStatus]]] | None = None) -> None:
        self.runtime = runtime
        self.listing = listing or runtime.list_containers  # the agent shares its listing
        self._samples: dict[str, list[Sample]] = {}

    async def run(self) -> None:
        """Sample periodically, so every request has a recent earlier sample to diff with."""
        while True:
            with contextlib.suppress(Exception):
                await self.summary()
            await asyncio.sleep(SAMPLE_SECONDS)

    def rate(self, key: str, now: float, cpu: float) -> tuple[int, float]:
        """Record a cumulative cpu reading; return the rate (nanocores) and its window."""
        samples = self._samples.setdefault(key, [])
        base = next((s for s in reversed(samples) if now - s.at >= MIN_WINDOW), None)
        samples.append(Sample(now, cpu))
        if base is None:
            return 0, 0.0
        # Keep the base: requests closer together than MIN_WINDOW must not push out the
        # last sample old enough to diff with (a burst of them used to make cpu read 0).
        del samples[:samples.index(base)]
        window = now - base.at
        return int(max(0.0, cpu - base.cpu_seconds) / window * 1e9), window

    async def summary(self) -> dict[str, Any]:
        """Return node and per-container usage (cpu nanocores, memory bytes) with windows."""
        now = time.time()
        cpu, window = self.rate("node", now, node_cpu_seconds())
        out: dict[str, Any] = {"timestamp": now, "node": {
            "cpuNanoCores": cpu, "memoryWorkingSetBytes": node_memory_working_set(),
            "window": window or SAMPLE_SECONDS}, "pods": {}}
        sandboxes = {s.id: s for s in self.runtime.list_sandboxes()}
        live: set[str] = {"node"}
        for c in await self.listing():
            sandbox = sandboxes.get(c.sandbox_id)
            if c.state != "running" or sandbox is None:
                continue
            try:
                stats = await self.runtime.stats(c.id)
            except Exception:
                continue
            live.add(c.id)
            rate, win = self.rate(c.id, now, stats.cpu_seconds)
            pod = out["pods"].setdefault(f"{sandbox.namespace}/{sandbox.name}", {
                "namespace": sandbox.namespace, "name": sandbox.name, "uid": sandbox.pod_uid,
                "containers": []})
            pod["containers"].append({"name": c.name, "cpuNanoCores": rate,
                                      "memoryWorkingSetBytes": stats.memory_bytes,
                                      "window": win or SAMPLE_SECONDS})  # fmt: skip
        for key in [k for k in self._samples if k not in live]:
            del self._samples[key]
        return out
