"""Scheduler benchmarks: online throughput, scale and memory, packing quality, preemption DP.

Run: .venv/bin/python bench/bench_scheduler.py            (online, packing, preemption)
     .venv/bin/python bench/bench_scheduler.py --scale    (adds 5,000 nodes x 150,000 pods)
     .venv/bin/python bench/bench_scheduler.py --only packing
     .venv/bin/python bench/bench_scheduler.py --only micro   (per-call costs of the helpers)
Throughput is printed per wall-clock second and per CPU second of this process: on a shared
machine the CPU figure is the one that does not depend on what else runs.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dockyard.objects import pod as pod_objects
from dockyard.objects.selectors import LabelSelector, compile_selector
from dockyard.scheduler.podinfo import pod_info, scheduling_requests
from dockyard.scheduler.preemption import Preemptor, victim_cost
from dockyard.scheduler.profiles import frameworks
from dockyard.scheduler.simulate import (
    Options,
    Synthetic,
    make_node_object,
    make_pod_object,
    simulate,
    synthetic_cluster,
)
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler


def rss_mib() -> float:
    """Return this process's resident memory in MiB (from /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def add_constraints(pods: list[dict], share: float, rng: random.Random) -> None:
    """Give a share of pods a zone spread constraint, a toleration and a preferred affinity."""
    for pod in pods:
        if rng.random() >= share:
            continue
        app = pod["metadata"]["labels"]["app"]
        spec = pod["spec"]
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": app}},
            }
        ]
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
        spec["affinity"] = {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 10,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app": app}},
                        },
                    }
                ]
            }
        }


def online(nodes: int, pods: int, profile: str, share: float) -> None:
    """Place pods one by one with the greedy cycle and print pods/s and latency."""
    node_objs, pod_objs = synthetic_cluster(Synthetic(nodes=nodes, pods=pods, pod_size="mixed"))
    add_constraints(pod_objs, share, random.Random(3))
    for pod in pod_objs:
        pod["spec"]["schedulerName"] = profile
    snap = Snapshot(node_objs)
    infos = [pod_info(p) for p in pod_objs]
    sched = GreedyScheduler(snap)
    lat = np.empty(len(infos))
    wall, cpu = time.perf_counter(), time.process_time()
    placed = 0
    for k, pi in enumerate(infos):
        t = time.perf_counter()
        placed += sched.place(pi).node is not None
        lat[k] = time.perf_counter() - t
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"online  {nodes:,} nodes x {pods:,} pods, profile {profile}, "
        f"{share:.0%} with spread/affinity/tolerations: placed {placed:,}"
    )
    print(
        f"        {pods / wall:,.0f} pods/s wall ({wall:.2f} s), {pods / cpu:,.0f} pods per CPU "
        f"second; latency p50 {np.percentile(lat, 50) * 1e3:.3f} ms, "
        f"p99 {np.percentile(lat, 99) * 1e3:.3f} ms"
    )


def scale(nodes: int, pods: int) -> None:
    """Place Kubernetes' envelope (5,000 nodes, 150,000 pods) and print time and memory."""
    base = rss_mib()
    node_objs = [
        make_node_object(
            f"node-{i:05d}",
            {"cpu": "32", "memory": "128Gi"},
            {"topology.kubernetes.io/zone": f"zone-{i % 3}"},
        )
        for i in range(nodes)
    ]
    sizes = [("100m", "128Mi"), ("250m", "256Mi"), ("500m", "512Mi")]
    rng = random.Random(9)
    infos = []
    for i in range(pods):
        cpu_q, mem_q = rng.choice(sizes)
        infos.append(
            pod_info(make_pod_object(f"pod-{i:06d}", cpu_q, mem_q, {"app": f"app-{i % 500}"}))
        )
    parsed = rss_mib()
    snap = Snapshot(node_objs)
    sched = GreedyScheduler(snap)
    wall, cpu = time.perf_counter(), time.process_time()
    placed = sum(sched.place(pi).node is not None for pi in infos)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"scale   {nodes:,} nodes x {pods:,} pods: placed {placed:,} in {wall:.1f} s wall "
        f"({pods / wall:,.0f} pods/s; {pods / cpu:,.0f} per CPU second)"
    )
    print(
        f"        memory: {rss_mib():,.0f} MiB resident; pod objects and their parsed PodInfo "
        f"{parsed - base:,.0f} MiB; snapshot and indexes {rss_mib() - parsed:,.0f} MiB"
    )


def packing(nodes: int, pods: int, time_limit: float, pod_size: str) -> None:
    """Print nodes used by each strategy on one mixed cluster, with the lower bound."""
    node_objs, pod_objs = synthetic_cluster(
        Synthetic(nodes=nodes, pods=pods, seed=1, pod_size=pod_size)
    )
    print(f"packing {pods:,} {pod_size} pods on {nodes} mixed nodes (4/8/16 cpu, 4 GiB/cpu):")
    rows = [
        ("greedy", "pack"),
        ("greedy", "spread"),
        ("greedy", "default-scheduler"),
        ("batch", "pack"),
        ("batch", "spread"),
    ]
    for solver, profile in rows:
        cpu = time.process_time()
        r = simulate(
            node_objs,
            pod_objs,
            Options(solver=solver, profile=profile, time_limit=time_limit, bound=False),
        )
        cpu = time.process_time() - cpu
        lower = simulate(
            node_objs, pod_objs, Options(solver=solver, profile=profile, time_limit=time_limit)
        )
        print(
            f"        {solver:6} {profile:17} nodes used {r.nodes_used:4}  placed {r.placed:5}  "
            f"lower bound {lower.lower_bound} (LP {lower.lp_bound:.2f}, per-resource "
            f"{lower.simple_bound})  gap {r.nodes_used / max(lower.lower_bound, 1) - 1:6.2%}  "
            f"{r.seconds:6.3f} s wall  {cpu:6.3f} s CPU  {r.method}"
        )


def preemption(cases: int) -> None:
    """Compare the DP's victims with brute force (and with kube's greedy reprieve)."""
    rng = random.Random(5)
    checked = matched = greedy_worse = 0
    dp_seconds = 0.0
    fw = frameworks()["default-scheduler"]
    while checked < cases:
        node = make_node_object(
            "n1", {"cpu": str(rng.randint(2, 8)), "memory": f"{rng.randint(2, 16)}Gi", "pods": "12"}
        )
        snap = Snapshot([node])
        for k in range(rng.randint(2, 9)):
            pod = make_pod_object(
                f"v{k}",
                f"{rng.randint(1, 10) * 100}m",
                f"{rng.randint(1, 8) * 256}Mi",
                {"app": rng.choice("abc")},
                rng.randint(0, 20),
            )
            pod["spec"]["nodeName"] = "n1"
            pi = pod_info(pod)
            cols, vals = snap.request_vector(pi)
            if (snap.free[0, cols] >= vals).all():
                snap.add_pod(pi)
        pdbs = [
            {
                "metadata": {"name": app, "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": app}}},
                "status": {"disruptionsAllowed": rng.randint(0, 2)},
            }
            for app in "ab"
            if rng.random() < 0.5
        ]
        pending = pod_info(
            make_pod_object(
                "p", f"{rng.randint(1, 40) * 100}m", f"{rng.randint(1, 32) * 256}Mi", {}, 15
            )
        )
        result = GreedyScheduler(snap).schedule_one(pending)
        if result.node is not None or result.diagnosis is None:
            continue
        pre = Preemptor(snap, fw, pdbs)
        t = time.perf_counter()
        cand = pre.candidate(pending, 0)
        dp_seconds += time.perf_counter() - t
        best = _brute(pending, snap, pre)
        if best is None and cand is None:
            continue
        checked += 1
        if cand is not None and victim_cost(cand.victims, pre.budgets) == best:
            matched += 1
        lower = [snap.pods[k] for k in snap.node_pods[0] if snap.pods[k].priority < 15]
        greedy = pre._by_reprieve(pending, 0, sorted(lower, key=lambda v: -v.priority))
        if best is not None and victim_cost(greedy.victims, pre.budgets) > best:
            greedy_worse += 1
    print(
        f"preempt {cases:,} random small nodes: DP victims optimal in {matched:,}/{checked:,} "
        f"(brute force over all subsets); kube-style greedy reprieve worse in "
        f"{greedy_worse:,}; {dp_seconds / checked * 1e3:.2f} ms per node"
    )


def preemption_at_scale(nodes: int, per_node: int) -> None:
    """Time one high-priority pod's preemption on a full cluster of low-priority pods."""
    rng = random.Random(1)
    snap = Snapshot(
        [make_node_object(f"n{i}", {"cpu": "32", "memory": "128Gi"}) for i in range(nodes)]
    )
    sizes = [("250m", "1Gi"), ("500m", "1Gi"), ("1", "2Gi")]
    for i in range(nodes * per_node):
        cpu_q, mem_q = rng.choice(sizes)
        pod = make_pod_object(f"p{i}", cpu_q, mem_q, {"app": f"a{i % 7}"}, rng.randint(0, 5))
        pod["spec"]["nodeName"] = f"n{i % nodes}"
        snap.add_pod(pod)
    fw = frameworks()["default-scheduler"]
    high = pod_info(make_pod_object("high", "30", "8Gi", {}, 100))
    wall, cpu = time.perf_counter(), time.process_time()
    result = GreedyScheduler(snap).schedule_one(high)
    assert result.diagnosis is not None
    out = Preemptor(snap, fw).preempt(high, result.diagnosis)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"preempt at scale: {nodes:,} nodes x {per_node} pods, a 30-cpu pod: "
        f"{len(out.candidates)} candidates, {len(out.victims)} victims on {out.node} "
        f"(priorities {sorted(v.priority for v in out.victims)}) in {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU"
    )


def _brute(pi: object, snap: Snapshot, pre: Preemptor) -> tuple[int, int, int] | None:
    pending = pi
    cols, vals = snap.request_vector(pending)  # type: ignore[arg-type]
    lower = [snap.pods[k] for k in snap.node_pods[0] if snap.pods[k].priority < 15]
    best = None
    for size in range(len(lower) + 1):
        for combo in itertools.combinations(lower, size):
            freed = np.zeros(len(cols), np.int64)
            for v in combo:
                vc, vv = snap.request_vector(v)
                for c, x in zip(vc.tolist(), vv.tolist(), strict=True):
                    freed[cols == c] += x
            if (snap.free[0, cols] + freed >= vals).all():
                cost = victim_cost(list(combo), pre.budgets)
                best = cost if best is None or cost < best else best
    return best


def per_call_us(action: Callable[[], object], count: int) -> float:
    """Return the median CPU microseconds per call over 5 runs of count calls."""
    runs = timeit.repeat(action, timer=time.process_time, number=count, repeat=5)
    return statistics.median(runs) / count * 1e6


def micro_pod() -> dict:
    """Return a pod with two containers, a sidecar, an init container and a limit-only one."""
    pod = make_pod_object("m", "250m", "256Mi", {"app": "web", "tier": "front"})
    spec = pod["spec"]
    spec["containers"].append(
        {"name": "side", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}
    )
    spec["initContainers"] = [
        {
            "name": "proxy",
            "image": "x",
            "restartPolicy": "Always",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
        },
        {"name": "init", "image": "x", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}},
    ]
    return pod


def micro(count: int) -> None:
    """Print the per-call cost of parsing requests and matching label selectors."""
    pod = micro_pod()
    labels = pod["metadata"]["labels"]
    simple = {"matchLabels": {"app": "web"}}
    mixed = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}],
    }
    parsed_simple, parsed = compile_selector(simple), compile_selector(mixed)
    figures = {
        "objects pod_requests": lambda: pod_objects.pod_requests(pod),
        "scheduling_requests (strict, pods: 1)": lambda: scheduling_requests(pod),
        "pod_info": lambda: pod_info(pod),
        "objects parsed matches (matchLabels)": lambda: parsed_simple.matches(labels),
        "objects parsed matches (mixed)": lambda: parsed.matches(labels),
        "compile_selector (cached) + matches (mixed)": lambda: compile_selector(mixed).matches(
            labels
        ),
        "objects from_dict + matches (mixed)": lambda: LabelSelector.from_dict(mixed).matches(
            labels
        ),
    }
    print(f"micro   CPU microseconds per call (median of 5 runs of {count:,} calls):")
    for name, action in figures.items():
        print(f"        {name:44} {per_call_us(action, count):7.2f} us")


def main() -> None:
    """Run the selected benchmarks and print their figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["online", "scale", "packing", "preemption", "micro"])
    ap.add_argument("--scale", action="store_true", help="also run 5,000 nodes x 150,000 pods")
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--profile", default="default-scheduler")
    ap.add_argument(
        "--constrained",
        type=float,
        default=0.0,
        help="share of online pods with spread, affinity and tolerations",
    )
    ap.add_argument("--scale-pods", type=int, default=150_000)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--time-limit", type=float, default=1.5)
    ap.add_argument("--calls", type=int, default=20_000, help="calls per micro figure")
    args = ap.parse_args()
    want = {args.only} if args.only else {"online", "packing", "preemption"}
    if args.scale:
        want.add("scale")
    if "online" in want:
        online(args.nodes, args.pods, args.profile, args.constrained)
    if "packing" in want:
        packing(100, 1000, args.time_limit, "mixed")
        packing(100, 500, args.time_limit, "skewed")
    if "preemption" in want:
        preemption(args.cases)
        preemption_at_scale(args.nodes, 30)
    if "scale" in want:
        scale(args.nodes, args.scale_pods)
    if "micro" in want:
        micro(args.calls)


if __name__ == "__main__":
    main()
