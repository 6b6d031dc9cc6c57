"""Benchmark the controllers against a real `dockyard server` (its scheduler included).

Figures:
- scale: `kubectl scale --replicas=N` (default 100) → N pods created, → N available;
- rolling: rolling update of a Deployment of N pods (default 50) until complete;
- node death: time from a node's heartbeat stopping to all its pods running on another node
  (grace period 5 s, toleration 0 s, as the issue asks);
- idle: controller CPU (seconds of CPU per second, in this process) with N idle pods
  (default 1,000), measured over a quiet window after everything is available.

The server runs with --no-agent --no-controllers; the controllers under test run in this
process (default options, except a manager with grace 5 s / toleration 0 s for the node-death
run). FakeNodeHeartbeat (Lease renewal + Ready) and FakeKubelet (marks pods bound to its nodes
Running/Ready) stand in for agents: the figures are the control plane's (controllers,
scheduler, api server), not container start-up.

Run: .venv/bin/python bench/bench_controllers.py [--scale 100] [--rolling 50] [--idle-pods 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dockyard.client import ApiClient, Informer, NotFoundError, object_key
from dockyard.controllers.manager import ControllerManager, ControllerOptions

Obj = dict[str, Any]
KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32"
DOCKYARD = str(Path(sys.executable).parent / "dockyard")
NS = "bench"


def stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeNodeHeartbeat:
    """Test double of an agent's heartbeat: a Node with room for pods, its Lease renewed."""

    def __init__(self, api: ApiClient, name: str) -> None:
        self.api, self.name = api, name
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        now = stamp()
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "2000"}
        await self.api.resource("v1", "nodes").create({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name},
            "status": {"capacity": capacity, "allocatable": capacity, "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
        await self.api.resource("coordination.k8s.io/v1", "leases", "kube-node-lease").create({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self.name},
            "spec": {"holderIdentity": self.name, "renewTime": _micro()}})
        self._task = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        leases = self.api.resource("coordination.k8s.io/v1", "leases", "kube-node-lease")
        while True:
            with contextlib.suppress(Exception):
                await leases.patch(self.name, {"spec": {"renewTime": _micro()}}, "merge")
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeKubelet:
    """Test double of an agent: marks pods bound to its nodes Running and Ready."""

    def __init__(self, api: ApiClient, nodes: set[str]) -> None:
        self.api, self.nodes = api, nodes
        self.informer = Informer(api.resource("v1", "pods", NS))
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.informer.add_handler(self._seen, lambda old, new: self._seen(new), None)
        await self.informer.start()
        await self.informer.wait_for_sync(30)
        self._tasks = [asyncio.create_task(self._run()) for _ in range(8)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.informer.stop()

    def _seen(self, pod: Obj) -> None:
        self._queue.put_nowait(object_key(pod))

    async def _run(self) -> None:
        pods = self.api.resource("v1", "pods", NS)
        while True:
            key = await self._queue.get()
            pod = self.informer.get_by_key(key)
            if pod is None or pod["spec"].get("nodeName") not in self.nodes:
                continue
            try:
                if pod["metadata"].get("deletionTimestamp"):
                    await pods.delete(pod["metadata"]["name"], grace_period_seconds=0)
                elif pod.get("status", {}).get("phase") != "Running":
                    await pods.update_status({**pod, "status": _running(pod)})
            except NotFoundError:
                continue
            except Exception:
                asyncio.get_running_loop().call_later(0.2, self._queue.put_nowait, key)


def _running(pod: Obj) -> Obj:
    now = stamp()
    return {**pod.get("status", {}), "phase": "Running", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "imageID": "",
                                   "ready": True, "started": True, "restartCount": 0,
                                   "state": {"running": {"startedAt": now}}}
                                  for c in pod["spec"]["containers"]]}


def deployment(name: str, replicas: int, image: str = "nginx:1.25") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


async def wait_for(probe: Any, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await probe():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{what} not reached in {timeout}s")


class Bench:
    def __init__(self, server_url: str, kubeconfig: Path, cache: Path) -> None:
        self.kubeconfig, self.cache = kubeconfig, cache
        self.api = ApiClient.from_kubeconfig(str(kubeconfig))
        self.deploys = self.api.resource("apps/v1", "deployments", NS)
        self.pods = self.api.resource("v1", "pods", NS)

    def kubectl(self, *args: str) -> None:
        subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), "--cache-dir",
                        str(self.cache), "-n", NS, *args], check=True, capture_output=True)

    async def available(self, name: str, replicas: int) -> bool:
        d = await self.deploys.get(name)
        s = d.get("status") or {}
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and s.get("updatedReplicas") == s.get("availableReplicas") == replicas
                and s.get("replicas") == replicas)

    async def pod_count(self, selector: str) -> int:
        items = (await self.pods.list(label_selector=selector)).items
        return sum(1 for p in items if not p["metadata"].get("deletionTimestamp"))

    async def scale(self, n: int) -> None:
        await self.deploys.create(deployment("scale", 1))
        await wait_for(lambda: self.available("scale", 1), 60, "1 available")
        start, cpu0 = time.monotonic(), time.process_time()
        await asyncio.to_thread(self.kubectl, "scale", "deployment/scale", f"--replicas={n}")

        async def created() -> bool:
            return await self.pod_count("app=scale") >= n

        await wait_for(created, 120, f"{n} pods")
        t_created = time.monotonic() - start
        await wait_for(lambda: self.available("scale", n), 180, f"{n} available")
        t_available = time.monotonic() - start
        cpu = time.process_time() - cpu0
        print(f"scale 1→{n}: pods created {t_created:.2f}s, all available {t_available:.2f}s "
              f"({n / t_available:.0f} pods/s; this process used {cpu:.2f}s CPU)")
        await self.deploys.delete("scale")

    async def rolling(self, n: int) -> None:
        await self.deploys.create(deployment("roll", n))
        await wait_for(lambda: self.available("roll", n), 180, f"{n} available")
        start = time.monotonic()
        await self.deploys.patch("roll", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "nginx:1.26"}]}}}}, "strategic")
        await asyncio.sleep(0.2)
        await wait_for(lambda: self.available("roll", n), 300, "rollout complete")
        took = time.monotonic() - start
        print(f"rolling update of {n} pods (25% surge/unavailable): {took:.2f}s")
        await self.deploys.delete("roll")

    async def node_death(self, n: int, nodes: dict[str, FakeNodeHeartbeat]) -> None:
        await self.deploys.create(deployment("heal", n))
        await wait_for(lambda: self.available("heal", n), 120, f"{n} available")
        items = (await self.pods.list(label_selector="app=heal")).items
        victim = max(nodes, key=lambda name: sum(p["spec"].get("nodeName") == name
                                                 for p in items))
        on_victim = sum(p["spec"].get("nodeName") == victim for p in items)
        start = time.monotonic()
        await nodes[victim].stop()

        async def healed() -> bool:
            pods = (await self.pods.list(label_selector="app=heal")).items
            ready = [p for p in pods if p["spec"].get("nodeName") not in (None, victim)
                     and p.get("status", {}).get("phase") == "Running"
                     and not p["metadata"].get("deletionTimestamp")]
            return len(ready) == n and not any(p["spec"].get("nodeName") == victim
                                               for p in pods)

        await wait_for(healed, 120, "pods running elsewhere")
        took = time.monotonic() - start
        print(f"node death → its {on_victim} of {n} pods running on another node: {took:.2f}s "
              f"(grace 5 s, toleration 0 s)")
        await self.deploys.delete("heal")

    async def idle(self, n: int, seconds: float, kubelet: FakeKubelet,
                   manager: ControllerManager) -> None:
        await self.deploys.create(deployment("idle", n))
        await wait_for(lambda: self.available("idle", n), 600, f"{n} available")
        await kubelet.stop()
        # The Events of 1,000 creates are still being written: that is not idling.
        await asyncio.gather(*(r.flush() for r in manager.recorders))
        await asyncio.sleep(2.0)  # let the last status writes settle
        cpu = await measure_cpu(seconds)
        print(f"idle with {n} available pods: {cpu * 100:.2f}% of one core")


async def measure_cpu(seconds: float) -> float:
    """Return this process' CPU seconds per wall second over a quiet window."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    return (time.process_time() - cpu0) / (time.monotonic() - wall0)


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    log = open(data_dir.parent / "server.log", "w")  # noqa: SIM115
    # --no-controllers: the controllers under test run in this process (one set only).
    # Toleration 0 s for pods on a dead node (the node-death run): the api server's admission
    # writes it into each pod.
    proc = subprocess.Popen([DOCKYARD, "server", "--data-dir", str(data_dir), "--port", "0",
                             "--no-agent", "--no-controllers",
                             "--default-not-ready-toleration-seconds", "0",
                             "--default-unreachable-toleration-seconds", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if "ready at" in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
    proc.kill()
    raise RuntimeError(f"server did not start; see {data_dir.parent / 'server.log'}")


async def run(args: argparse.Namespace, workdir: Path) -> None:
    proc, url = start_server(workdir / "data")
    bench: Bench | None = None
    manager: ControllerManager | None = None
    try:
        bench = Bench(url, workdir / "data" / "kubeconfig", workdir / "cache")
        api = bench.api
        await api.resource("v1", "namespaces").create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        # Default options (40 s grace) for the load phases: on a loaded machine a 5 s grace
        # would declare healthy nodes dead mid-run. The node-death run gets its own manager.
        manager = ControllerManager(api, ControllerOptions())
        await manager.start()
        nodes = {name: FakeNodeHeartbeat(api, name) for name in ("node-a", "node-b")}
        for heart in nodes.values():
            await heart.register()
        kubelet = FakeKubelet(api, set(nodes))
        await kubelet.start()
        print(f"server {url}; controllers in this process, FakeKubelet on {sorted(nodes)}")
        base = await measure_cpu(args.idle_seconds)
        print(f"idle with no pods: {base * 100:.2f}% of one core (controllers, plus the two "
              "FakeNodeHeartbeats renewing Leases every second)")
        await bench.scale(args.scale)
        await bench.rolling(args.rolling)
        await manager.stop()
        manager = ControllerManager(api, ControllerOptions(node_monitor_grace_period=5.0))
        await manager.start()
        await bench.node_death(args.heal, nodes)
        await manager.stop()
        manager = ControllerManager(api, ControllerOptions())
        await manager.start()
        await bench.idle(args.idle_pods, args.idle_seconds, kubelet, manager)
    finally:
        if manager is not None:
            await manager.stop()
        if bench is not None:
            await bench.api.close()
        stop_server(proc, workdir)


def stop_server(proc: subprocess.Popen[str], workdir: Path) -> None:
    """Stop the server we started (by its PID); SIGKILL it if SIGTERM is not enough."""
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"server {proc.pid} ignored SIGTERM for 30 s; killed", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=100)
    parser.add_argument("--rolling", type=int, default=50)
    parser.add_argument("--heal", type=int, default=20, help="pods in the node-death run")
    parser.add_argument("--idle-pods", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=15.0)
    parser.add_argument("--keep", action="store_true", help="keep the server's data and log")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-controllers-"))
    try:
        asyncio.run(run(args, workdir))
    finally:
        if args.keep:
            print(f"kept {workdir} (server.log, data/)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
