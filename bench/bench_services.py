"""Benchmark services: the proxy's cost per request, readiness-to-traffic latency, rule sync.

    .venv/bin/python bench/bench_services.py [--seconds 5] [--concurrency 16] [--services 1000]
                                             [--skip-server]

1. Requests per second from the host, through 127.0.0.1:nodePort, through the ClusterIP, and
   straight to a pod's IP (3 busybox httpd pods behind a NodePort Service on a real
   `dockyard server` with its agent and proxy). The ratios are the proxy's cost.
2. Time from a pod turning ready (its readiness probe starts passing) to its Endpoints listing
   it and to the first connection through the ClusterIP reaching it.
3. Rule sync time at N services (3 endpoints each): rendering and one iptables-restore into
   chains of a throwaway proxy tag, a partial sync after one endpoint change, removal.
4. Service create time with ClusterIP and NodePort allocation, up to N services (api storage
   over SQLite in a temp dir, no server).

Needs root (runc, iptables). Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_agent_support import AgentServer, wait_until  # noqa: E402

from dockyard.api import service_ips  # noqa: E402
from dockyard.api.storage import ResourceStorage  # noqa: E402
from dockyard.client import ApiClient  # noqa: E402
from dockyard.images.bootstrap import bootstrap_busybox  # noqa: E402
from dockyard.images.store import ImageStore  # noqa: E402
from dockyard.objects.resources import lookup  # noqa: E402
from dockyard.proxy import iptables  # noqa: E402
from dockyard.proxy.rules import Chains, render, service_ports  # noqa: E402
from dockyard.store.sqlite import SQLiteStore  # noqa: E402

SERVICES = lookup("", "v1", "services")
NAMESPACES = lookup("", "v1", "namespaces")
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: ["sh", "-c", "mkdir /w; hostname > /w/index.html; exec httpd -f -p 8080 -h /w"]
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: late, labels: {app: late}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir /w; hostname > /w/index.html; exec httpd -f -p 8080 -h /w"]
    readinessProbe:
      exec: {command: ["test", "-f", "/tmp/ready"]}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: late}
spec:
  selector: {app: late}
  ports: [{port: 80, targetPort: 8080}]
"""


async def _one_request(host: str, port: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    await writer.drain()
    body = await reader.read()
    writer.close()
    if not body.startswith(b"HTTP/1"):
        raise RuntimeError(f"bad answer from {host}:{port}")


async def requests_per_second(targets: list[tuple[str, int]], seconds: float,
                              concurrency: int) -> float:  # fmt: skip
    """Return completed HTTP/1.0 requests per second, client i always asking targets[i % n]."""
    done, deadline = 0, time.perf_counter() + seconds

    async def client(host: str, port: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await _one_request(host, port)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(*targets[i % len(targets)]) for i in range(concurrency)))
    return done / (time.perf_counter() - started)


async def _reaches(host: str, port: int) -> bool:
    try:
        await asyncio.wait_for(_one_request(host, port), 0.2)
        return True
    except (OSError, TimeoutError, RuntimeError):
        return False


async def ready_to_traffic(server: AgentServer, api: ApiClient, cluster_ip: str,
                           rounds: int) -> list[tuple[float, float]]:  # fmt: skip
    """Return (probe passes → Endpoints ready, Endpoints ready → traffic) per round, seconds."""
    endpoints = api.resource("v1", "endpoints", "default")
    out = []
    for _ in range(rounds):
        server.kubectl("exec", "late", "--", "rm", "-f", "/tmp/ready")
        while await _reaches(cluster_ip, 80) or _ready(await endpoints.get("late")):
            await asyncio.sleep(0.05)
        server.kubectl("exec", "late", "--", "touch", "/tmp/ready")
        touched = time.perf_counter()
        while not _ready(await endpoints.get("late")):
            await asyncio.sleep(0.01)
        listed = time.perf_counter()
        while not await _reaches(cluster_ip, 80):
            await asyncio.sleep(0.01)
        out.append((listed - touched, time.perf_counter() - listed))
    return out


def _ready(eps: dict) -> bool:  # type: ignore[type-arg]
    return any(s.get("addresses") for s in eps.get("subsets") or [])


async def server_figures(args: argparse.Namespace) -> None:
    """Run parts 1 and 2 against a real server with its agent and proxy."""
    base = Path(f"/tmp/bench-services-{secrets.token_hex(4)}")
    (base / "host").mkdir(parents=True)
    bootstrap_busybox(ImageStore(base / "data"))
    server = AgentServer(base, f"dyb{secrets.token_hex(4)}",
                         f"10.{random.randint(200, 254)}.{random.randint(0, 255)}.0/24", "bench")
    server.start()
    api = ApiClient.from_kubeconfig(str(server.kubeconfig))
    try:
        server.apply(WEB)
        server.kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080",
                       "--type=NodePort")
        wait_until(lambda: server.get("deployment", "web")["status"].get("readyReplicas") == 3,
                   180, "web ready")
        svc = server.get("service", "web")
        cluster_ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
        pod_ips = server.kubectl("get", "pods", "-l", "app=web", "-o",
                                 "jsonpath={.items[*].status.podIP}").stdout.split()
        direct_targets = [(ip, 8080) for ip in pod_ips]
        wait_until(lambda: server.get("pod", "late")["status"].get("phase") == "Running", 120)
        await requests_per_second(direct_targets, 1.0, args.concurrency)  # warm up
        direct = await requests_per_second(direct_targets, args.seconds, args.concurrency)
        via_ip = await requests_per_second([(cluster_ip, 80)], args.seconds, args.concurrency)
        via_np = await requests_per_second([("127.0.0.1", node_port)], args.seconds,
                                           args.concurrency)
        print(f"requests/s (HTTP/1.0, {args.concurrency} clients, {args.seconds:.0f}s each):")
        print(f"  straight to pod IPs    {direct:9.0f}  (clients spread over the 3 pods)")
        print(f"  through the ClusterIP  {via_ip:9.0f}  ({via_ip / direct:.2f} of direct)")
        print(f"  through 127.0.0.1:NP   {via_np:9.0f}  ({via_np / direct:.2f} of direct)")
        late_ip = server.get("service", "late")["spec"]["clusterIP"]
        rounds = await ready_to_traffic(server, api, late_ip, args.rounds)
        listed = [r[0] for r in rounds]
        proxied = [r[1] for r in rounds]
        print(f"readiness → traffic over {args.rounds} rounds (median / max, seconds):")
        print(f"  probe passes → Endpoints ready   {statistics.median(listed):.3f} / "
              f"{max(listed):.3f}  (includes the 1 s probe period)")
        print(f"  Endpoints ready → first request  {statistics.median(proxied):.3f} / "
              f"{max(proxied):.3f}")
    finally:
        await api.close()
        server.kubectl("delete", "deployment", "web", "--wait=true", check=False, timeout=120)
        server.stop_and_check()
        shutil.rmtree(base, ignore_errors=True)


async def sync_figures(count: int) -> None:
    """Run part 3: render and write the rules of `count` services, then remove them."""
    tag = hashlib.sha256(secrets.token_bytes(8)).hexdigest()[:6].upper()
    chains = Chains(tag)
    services, endpoints = [], []
    for i in range(count):
        name = f"s{i}"
        services.append({"metadata": {"name": name, "namespace": "bench"}, "spec": {
            "clusterIP": f"10.{240 + i // 65536}.{i // 256 % 256}.{i % 256}", "type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30000 + i % 2768}]}})
        endpoints.append({"metadata": {"name": name, "namespace": "bench"}, "subsets": [{
            "addresses": [{"ip": f"10.250.{i % 250}.{j + 1}", "nodeName": "n"} for j in range(3)],
            "ports": [{"port": 8080, "protocol": "TCP"}]}]})
    try:
        started = time.perf_counter()
        ruleset = render(service_ports(services, endpoints), chains, "n", "10.250.0.0/16")
        text = ruleset.restore_text()
        rendered = time.perf_counter()
        await iptables.restore(text)
        first = time.perf_counter()
        endpoints[0]["subsets"][0]["addresses"].pop()  # one endpoint change: a partial sync
        changed = render(service_ports(services, endpoints), chains, "n", "10.250.0.0/16")
        await iptables.restore(changed.restore_text(ruleset))
        again = time.perf_counter()
        rules = len(ruleset.nat) + len(ruleset.filter)
        print(f"rule sync at {count} services x 3 endpoints ({rules} rules, "
              f"{len(ruleset.nat_chains)} chains):")
        print(f"  render {rendered - started:.3f}s, first (full) iptables-restore "
              f"{first - rendered:.3f}s, sync after one endpoint change (render + partial "
              f"restore) {again - first:.3f}s")
    finally:
        removed = time.perf_counter()
        await iptables.remove_all(chains.prefix, tag)
        print(f"  removing every chain {time.perf_counter() - removed:.3f}s")


async def allocation_figures(count: int) -> None:
    """Create `count` NodePort services through the api storage over SQLite; time each create."""
    with tempfile.TemporaryDirectory() as tmp:
        store = await SQLiteStore.open(Path(tmp) / "state.db")
        try:
            storage = ResourceStorage(store)
            await storage.create(NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                    "metadata": {"name": "default"}})
            service_ips.configure(storage, "10.96.0.0/16")
            times = []
            for i in range(count):
                started = time.perf_counter()
                await storage.create(SERVICES, "default", {
                    "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                    "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
                times.append(time.perf_counter() - started)
        finally:
            await store.close()
    last = times[-100:]
    print(f"service create with ClusterIP + NodePort allocation, {count} services: "
          f"first 100 median {statistics.median(times[:100]) * 1000:.1f} ms, last 100 median "
          f"{statistics.median(last) * 1000:.1f} ms")


def main() -> None:
    """Parse flags and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--skip-server", action="store_true", help="only the rule sync figure")
    args = parser.parse_args()
    if not args.skip_server:
        asyncio.run(server_figures(args))
    asyncio.run(sync_figures(args.services))
    asyncio.run(allocation_figures(args.services))


if __name__ == "__main__":
    main()
