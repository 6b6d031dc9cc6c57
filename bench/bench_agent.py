"""Agent benchmarks: pod start latency, steady-state cost at 110 pods, restart detection.

Run: .venv/bin/python bench/bench_agent.py                 (100 pods, 110 steady, 5 kills)
     .venv/bin/python bench/bench_agent.py --pods 50 --steady 60 --window 20
     .venv/bin/python bench/bench_agent.py --readiness     (pods carry an exec readiness probe)

A `dockyard server --no-agent` (api server + scheduler) and a separate `dockyard agent` process
(so its CPU and memory are its own) run in a temporary dir with their own bridge and pod CIDR.
- start latency: N pods created at once (concurrent POSTs); for each, from its POST to the
  first watch event showing phase Running, and showing condition Ready=True (client clock);
- steady state: with `--steady` pods running, the agent's CPU (utime+stime from /proc over
  `--window` seconds, as % of one core) and its RSS;
- restart: SIGKILL a container's process, time until the api shows it running again with
  restartCount+1 (the agent's relist notices, restarts it, writes status).
Everything is deleted and stopped at the end; the bridge and rules go with the agent.
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
from pathlib import Path
from typing import Any

from dockyard.client import ApiClient
from dockyard.images.bootstrap import bootstrap_busybox
from dockyard.images.store import ImageStore
from dockyard.runtime import Runtime

DOCKYARD = str(Path(sys.executable).parent / "dockyard")
NODE = "bench-node"


def pod(name: str, readiness: bool) -> dict[str, Any]:
    """Return a busybox pod that sleeps."""
    container: dict[str, Any] = {"name": "c", "image": "busybox", "command": ["sleep", "86400"],
                                 "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}
    if readiness:
        container["readinessProbe"] = {"exec": {"command": ["true"]}, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"bench": "agent"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}


def percentile(values: list[float], p: float) -> float:
    """Return the p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


def cpu_seconds(pid: int) -> float:
    """Return a process's user+system cpu seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    """Return a process's resident memory in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ready(p: dict[str, Any]) -> bool:
    """Tell whether a pod's Ready condition is True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])  # fmt: skip


class Cluster:
    """A server and a separate agent in a temporary dir."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.bridge = f"dyb{secrets.token_hex(4)}"
        self.cidr = f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24"
        self.server: subprocess.Popen[str] | None = None
        self.agent: subprocess.Popen[str] | None = None

    def start(self) -> str:
        """Start both; return the server URL."""
        data = self.base / "server"
        self.server = self._spawn([DOCKYARD, "server", "--data-dir", str(data), "--port", "0",
                                   "--no-agent"], "ready at")  # fmt: skip
        assert self.server.stdout is not None
        url = self.url
        bootstrap_busybox(ImageStore(self.base / "agent"))
        self.agent = self._spawn([
            DOCKYARD, "agent", "--server", url, "--token",
            (data / "node-token").read_text().strip(),
            "--ca-file", str(data / "pki" / "ca.crt"), "--node-name", NODE, "--data-dir",
            str(self.base / "agent"), "--run-dir", str(self.base / "run"), "--bridge",
            self.bridge, "--pod-cidr", self.cidr, "--node-ip", "127.0.0.1", "--port", "0",
        ], "ready")  # fmt: skip
        return url

    def _spawn(self, args: list[str], ready_word: str) -> subprocess.Popen[str]:
        log = open(self.base / f"{Path(args[1]).name}.log", "a")  # noqa: SIM115
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if ready_word not in line:
            raise RuntimeError(f"{args[1]} did not start; see {self.base}")
        if args[1] == "server":
            self.url = line.strip().rsplit(" ", 1)[-1]
        return proc

    def api(self) -> ApiClient:
        """Return an admin client."""
        return ApiClient.from_kubeconfig(str(self.base / "server" / "kubeconfig"))

    def stop(self) -> None:
        """Stop the agent then the server (by PID)."""
        for proc in (self.agent, self.server):
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()


async def start_latency(api: ApiClient, count: int, readiness: bool) -> tuple[list[float], ...]:
    """Create `count` pods at once; return latencies to Running and to Ready."""
    pods = api.resource("v1", "pods", "default")
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    listed = await pods.list()
    watch = pods.watch(resource_version=listed.resource_version)

    async def observe() -> None:
        async for event in watch:
            obj = event.object
            name = obj["metadata"]["name"]
            now = time.monotonic()
            if obj.get("status", {}).get("phase") == "Running":
                running.setdefault(name, now)
            if ready(obj):
                ready_at.setdefault(name, now)
            if len(ready_at) >= count:
                return

    watcher = asyncio.create_task(observe())

    async def create(name: str) -> None:
        sent[name] = time.monotonic()
        await pods.create(pod(name, readiness))

    await asyncio.gather(*(create(f"p{i:03d}") for i in range(count)))
    await asyncio.wait_for(watcher, 600)
    await watch.aclose()
    return ([running[n] - sent[n] for n in sent], [ready_at[n] - sent[n] for n in sent])


async def wait_running(api: ApiClient, count: int) -> None:
    """Wait until `count` bench pods are Running."""
    pods = api.resource("v1", "pods", "default")
    while True:
        items = (await pods.list(label_selector="bench=agent")).items
        if sum(p.get("status", {}).get("phase") == "Running" for p in items) >= count:
            return
        await asyncio.sleep(1)


async def restart_times(api: ApiClient, cluster: Cluster, kills: int) -> list[float]:
    """Kill containers' processes one by one; return seconds until each runs again."""
    runtime = Runtime(run_dir=cluster.base / "run", data_dir=cluster.base / "agent",
                      bridge=cluster.bridge, pod_cidr=cluster.cidr)  # fmt: skip
    pods = api.resource("v1", "pods", "default")
    times = []
    for i in range(kills):
        name = f"p{i:03d}"
        obj = await pods.get(name)
        uid = obj["metadata"]["uid"]
        before = obj["status"]["containerStatuses"][0]["restartCount"]
        victim = next(c for c in await runtime.list_containers()
                      if c.labels.get("io.kubernetes.pod.uid") == uid and c.state == "running")
        start = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        while True:
            status = (await pods.get(name))["status"]["containerStatuses"][0]
            if status["restartCount"] > before and "running" in status["state"]:
                break
            await asyncio.sleep(0.05)
        times.append(time.monotonic() - start)
    return times


async def run(args: argparse.Namespace, cluster: Cluster) -> None:
    """Run the benchmarks against a started cluster."""
    api = cluster.api()
    async with api:
        to_running, to_ready = await start_latency(api, args.pods, args.readiness)
        print(f"start latency over {args.pods} pods created at once on one node:")
        print(f"  create → Running  p50 {percentile(to_running, 50):6.2f} s   "
              f"p99 {percentile(to_running, 99):6.2f} s   max {max(to_running):6.2f} s")
        print(f"  create → Ready    p50 {percentile(to_ready, 50):6.2f} s   "
              f"p99 {percentile(to_ready, 99):6.2f} s   max {max(to_ready):6.2f} s")
        pods = api.resource("v1", "pods", "default")
        await asyncio.gather(*(pods.create(pod(f"p{i:03d}", args.readiness))
                               for i in range(args.pods, args.steady)))  # fmt: skip
        await wait_running(api, args.steady)
        await asyncio.sleep(5)  # let the last status writes settle
        assert cluster.agent is not None
        pid = cluster.agent.pid
        c0, t0 = cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(args.window)
        cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0) * 100
        print(f"steady state, {args.steady} pods on one node, over {args.window:.0f} s:")
        print(f"  agent CPU {cpu:5.2f} % of one core   agent RSS {rss_mib(pid):6.1f} MiB")
        times = await restart_times(api, cluster, args.kills)
        print(f"dead container → running again (SIGKILL to restartCount+1 Running in the api), "
              f"{args.kills} kills:")
        print(f"  mean {statistics.mean(times):5.2f} s   max {max(times):5.2f} s")
        await pods.delete_collection(label_selector="bench=agent")
        while (await pods.list(label_selector="bench=agent")).items:
            await asyncio.sleep(1)


async def teardown(cluster: Cluster) -> None:
    """Remove whatever the stopped agent left (after a failed run): containers, network."""
    if not (cluster.base / "run").exists():
        return
    runtime = Runtime(run_dir=cluster.base / "run", data_dir=cluster.base / "agent",
                      bridge=cluster.bridge, pod_cidr=cluster.cidr)  # fmt: skip
    for sandbox in runtime.list_sandboxes():
        await runtime.remove_sandbox(sandbox.id)
    for container in await runtime.list_containers():
        await runtime.remove_container(container.id)
    await runtime.destroy_network()


def main() -> None:
    """Parse flags, run, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100, help="pods created at once")
    parser.add_argument("--steady", type=int, default=110, help="pods for the steady state")
    parser.add_argument("--window", type=float, default=30.0, help="CPU window in seconds")
    parser.add_argument("--kills", type=int, default=5, help="containers to kill")
    parser.add_argument("--readiness", action="store_true", help="add exec readiness probes")
    parser.add_argument("--keep", action="store_true", help="keep the logs of a failed run")
    args = parser.parse_args()
    args.steady = max(args.steady, args.pods)
    base = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    cluster = Cluster(base)
    ok = False
    try:
        cluster.start()
        asyncio.run(run(args, cluster))
        ok = True
    finally:
        cluster.stop()
        asyncio.run(teardown(cluster))
        if ok or not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"logs kept in {base}", file=sys.stderr)


if __name__ == "__main__":
    main()
