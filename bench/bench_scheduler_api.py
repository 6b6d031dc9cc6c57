"""Benchmark the live scheduler end to end through the api server, with simulated nodes.

A `dockyard server --no-scheduler --no-agent --no-controllers` holds N Node objects (as agents
would register them) and M pending pods; then the SchedulerLoop starts in this process and the
clock runs until every pod is bound (pods/binding through HTTPS, seen back through a watch).
Prints pods/s and the scheduler process's CPU seconds.

    .venv/bin/python bench/bench_scheduler_api.py [--nodes 1000] [--pods 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.servers import start_server  # noqa: E402

from dockyard.client import ApiClient, load_kubeconfig  # noqa: E402
from dockyard.scheduler.loop import SchedulerLoop  # noqa: E402


def node(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"node-{i:05d}", "labels": {"kubernetes.io/hostname": f"n{i}"}},
        "status": {"capacity": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"},
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"pod-{i:06d}",
                                                           "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


async def create_all(api: ApiClient, objs: list[dict[str, Any]], plural: str,
                     namespace: str | None) -> None:
    rc = api.resource("v1", plural, namespace)
    queue = list(objs)

    async def worker() -> None:
        while queue:
            obj = queue.pop()
            status = obj.pop("status", None)
            created = await rc.create(obj)
            if status is not None:
                created["status"] = status
                await rc.update_status(created)

    await asyncio.gather(*(worker() for _ in range(32)))


async def wait_bound(api: ApiClient, count: int, since_rv: str) -> None:
    bound: set[str] = set()
    pods = api.resource("v1", "pods", "default")
    async with pods.watch(resource_version=since_rv, timeout_seconds=600) as events:
        async for event in events:
            if event.object.get("spec", {}).get("nodeName"):
                bound.add(event.object["metadata"]["name"])
                if len(bound) >= count:
                    return


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", "--no-scheduler", controllers=False)
        try:
            async with ApiClient(load_kubeconfig(str(server.kubeconfig))) as api:
                started = time.perf_counter()
                await create_all(api, [node(i) for i in range(args.nodes)], "nodes", None)
                await create_all(api, [pod(i) for i in range(args.pods)], "pods", "default")
                print(f"made {args.nodes} nodes and {args.pods} pending pods in "
                      f"{time.perf_counter() - started:.1f} s")
                cpu_before = resource.getrusage(resource.RUSAGE_SELF).ru_utime
                loop = SchedulerLoop(api)
                started = time.perf_counter()
                waiter = asyncio.create_task(wait_bound(api, args.pods, "0"))
                await loop.start()
                await waiter
                elapsed = time.perf_counter() - started
                cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu_before
                await loop.stop()
            print(f"bound {args.pods} pods on {args.nodes} nodes through the api server in "
                  f"{elapsed:.1f} s: {args.pods / elapsed:.0f} pods/s "
                  f"(scheduler and bench client CPU {cpu:.1f} s; includes informer sync)")
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=5000)
    asyncio.run(main(parser.parse_args()))
