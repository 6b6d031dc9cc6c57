"""What-if simulation: run a profile and a solver on a synthetic or recorded cluster, and report.

Role: the engine behind ``dockyard simulate``. It builds a ``Snapshot`` from Node and Pod
objects (synthetic, a Kubernetes v1 List file, or, through ``from_objects``, a live cluster's
lists), applies what-if changes (drain nodes, add nodes), places every pending pod with the
greedy cycle or the batch optimiser, optionally churns, and measures the result.

Invariants:
- Nothing outside the process is touched: objects are copied before they are changed.
- Pods with spec.nodeName are already placed and stay where they are (unless their node is
  drained); all other pods are pending and are placed in queue order (priority, then order
  of appearance).
- ``gap`` = nodes_used / lower_bound - 1 where lower_bound is the best of the LP relaxation
  and the per-resource bound for running every placed pod, with pre-placed pods fixed.
- ``seconds`` and ``pods_per_second`` time only the placement work (not building the cluster
  nor the bound).
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dockyard.objects.quantity import QuantityError
from dockyard.scheduler.podinfo import PodInfo, pod_info
from dockyard.scheduler.preemption import Preemptor
from dockyard.scheduler.profiles import DEFAULT_PROFILE, PROFILES, frameworks
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler

Obj = dict[str, Any]

NODE_SIZES = {
    "small": [{"cpu": "4", "memory": "16Gi"}],
    "medium": [{"cpu": "8", "memory": "32Gi"}],
    "large": [{"cpu": "16", "memory": "64Gi"}],
    "mixed": [
        {"cpu": "4", "memory": "16Gi"},
        {"cpu": "8", "memory": "32Gi"},
        {"cpu": "16", "memory": "64Gi"},
    ],
}
POD_SIZES = {
    "small": [("100m", "128Mi"), ("250m", "256Mi"), ("250m", "512Mi")],
    "mixed": [
        ("100m", "128Mi"),
        ("250m", "512Mi"),
        ("500m", "1Gi"),
        ("1", "2Gi"),
        ("2", "4Gi"),
        ("1", "6Gi"),
    ],
    "large": [("1", "2Gi"), ("2", "4Gi"), ("4", "8Gi"), ("2", "16Gi")],
    # cpu-heavy and memory-heavy pods that only pack well when paired on a node
    "skewed": [("3", "1Gi"), ("250m", "12Gi"), ("1500m", "2Gi"), ("500m", "6Gi"), ("1", "4Gi")],
}
BATCH_OBJECTIVE = {
    "pack": "pack",
    "spread": "spread",
    "balanced": "spread",
    DEFAULT_PROFILE: "spread",
}


class SimulationError(ValueError):
    """The simulation's input is wrong (bad file, unknown node, bad size)."""


@dataclass(slots=True)
class Synthetic:
    """A synthetic cluster: node and pod counts, size menus, zones and a seed."""

    nodes: int = 100
    pods: int = 1000
    node_size: str = "mixed"
    pod_size: str = "mixed"
    zones: int = 3
    seed: int = 1


@dataclass(slots=True)
class Options:
    """How to place: solver, profile (None: each pod's schedulerName), preemption, churn."""

    solver: str = "greedy"
    profile: str | None = None
    preempt: bool = False
    churn: float = 0.0
    time_limit: float = 1.5
    bound: bool = True
    seed: int = 1
    pod_size: str = "mixed"


@dataclass(slots=True)
class Report:
    """What a simulation measured; ``as_dict`` is the ``-o json`` object."""

    pods: int
    placed: int
    pending: int
    nodes: int
    nodes_used: int
    lower_bound: int
    lp_bound: float
    simple_bound: int
    gap: float
    seconds: float
    pods_per_second: float
    solver: str
    profile: str
    method: str
    utilisation: dict[str, float]
    utilisation_used_nodes: dict[str, float]
    fragmentation: dict[str, float]
    latency_ms: dict[str, float]
    max_utilisation: float = 0.0
    utilisation_bound: float | None = None
    preempted: int = 0
    churned: int = 0
    unschedulable: dict[str, int] = field(default_factory=dict)
    what_if: list[str] = field(default_factory=list)

    def as_dict(self) -> Obj:
        """Return the report as a JSON-compatible dict."""
        return {name: getattr(self, name) for name in self.__slots__}


# --- building clusters ----------------------------------------------------------------------


def parse_resources(text: str) -> dict[str, str]:
    """Parse "cpu=4,memory=16Gi" into a resource dict, checking every quantity."""
    from dockyard.objects.quantity import parse_quantity

    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not name or not value:
            raise SimulationError(f"expected name=quantity, got {part!r} in {text!r}")
        try:
            parse_quantity(value)
        except QuantityError as err:
            raise SimulationError(f"{name}: {err}") from err
        out[name.strip()] = value.strip()
    return out


def make_node_object(
    name: str, allocatable: dict[str, str], labels: dict[str, str] | None = None
) -> Obj:
    """Return a v1 Node with the allocatable (and capacity) given."""
    alloc = {"pods": "110", **allocatable}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {},
        "status": {"capacity": dict(alloc), "allocatable": alloc},
    }


def make_pod_object(
    name: str, cpu: str, memory: str, labels: dict[str, str] | None = None, priority: int = 0
) -> Obj:
    """Return a pending v1 Pod with one container requesting cpu and memory."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {
            "priority": priority,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/app:1",
                    "resources": {"requests": {"cpu": cpu, "memory": memory}},
                }
            ],
        },
    }


def _menu(table: dict[str, Any], key: str, what: str) -> Any:
    if key not in table:
        raise SimulationError(f"unknown {what} {key!r}; choose one of {', '.join(table)}")
    return table[key]


def synthetic_cluster(spec: Synthetic) -> tuple[list[Obj], list[Obj]]:
    """Return (nodes, pending pods) drawn from the size menus with a fixed seed."""
    rng = random.Random(spec.seed)
    sizes = (
        NODE_SIZES[spec.node_size]
        if spec.node_size in NODE_SIZES
        else [parse_resources(spec.node_size)]
    )
    nodes = [
        make_node_object(
            f"node-{i:05d}",
            rng.choice(sizes),
            {"topology.kubernetes.io/zone": f"zone-{i % max(spec.zones, 1)}"},
        )
        for i in range(spec.nodes)
    ]
    return nodes, synthetic_pods(spec.pods, spec.pod_size, rng, "pod")


def synthetic_pods(count: int, size: str, rng: random.Random, prefix: str) -> list[Obj]:
    """Return pending pods drawn from a size menu, spread over 20 apps."""
    menu = _menu(POD_SIZES, size, "pod size")
    out = []
    for i in range(count):
        cpu, memory = rng.choice(menu)
        out.append(make_pod_object(f"{prefix}-{i:06d}", cpu, memory, {"app": f"app-{i % 20}"}))
    return out


def load_list(path: Path) -> tuple[list[Obj], list[Obj]]:
    """Return (nodes, pods) from a Kubernetes v1 List (YAML or JSON) of Node and Pod objects."""
    try:
        text = path.read_text()
    except OSError as err:
        raise SimulationError(f"cannot read {path}: {err.strerror}") from err
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise SimulationError(f"{path} is neither valid YAML nor JSON: {err}") from err
    items: list[Any] = []
    for doc in docs:
        if not isinstance(doc, dict):
            raise SimulationError(f"{path}: expected a v1 List object, got {type(doc).__name__}")
        items.extend(doc.get("items") or [] if doc.get("kind", "").endswith("List") else [doc])
    return from_objects(items, str(path))


def from_objects(items: list[Any], where: str = "input") -> tuple[list[Obj], list[Obj]]:
    """Split objects into (nodes, pods), rejecting other kinds with a clear error.

    This is also the hook for ``--from-cluster``: list nodes and pods through the api client
    and pass them here.
    """
    nodes, pods = [], []
    for k, item in enumerate(items):
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind == "Node":
            nodes.append(copy.deepcopy(item))
        elif kind == "Pod":
            pods.append(copy.deepcopy(item))
        else:
            raise SimulationError(f"{where}: items[{k}] has kind {kind!r}; only Node and Pod")
    names = [n.get("metadata", {}).get("name") for n in nodes]
    if len(set(names)) != len(names) or not all(names):
        raise SimulationError(f"{where}: every Node needs a unique metadata.name")
    return nodes, pods


# --- what-if changes ------------------------------------------------------------------------


def parse_add_nodes(text: str) -> tuple[int, dict[str, str] | None]:
    """Parse "3" or "3:cpu=4,memory=16Gi" into (count, allocatable or None for a copy)."""
    count_text, _, resources = text.partition(":")
    try:
        count = int(count_text)
    except ValueError as err:
        raise SimulationError(f"--add-nodes wants COUNT[:cpu=4,memory=16Gi], got {text!r}") from err
    if count <= 0:
        raise SimulationError(f"--add-nodes count must be positive, got {count}")
    return count, (parse_resources(resources) if resources else None)


def drain(nodes: list[Obj], pods: list[Obj], name: str) -> None:
    """Cordon a node and make its pods pending again (as `kubectl drain` then rescheduling)."""
    for node in nodes:
        if node["metadata"]["name"] == name:
            node.setdefault("spec", {})["unschedulable"] = True
            break
    else:
        raise SimulationError(f"--drain: no node named {name!r}")
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == name:
            del pod["spec"]["nodeName"]


def add_nodes(nodes: list[Obj], count: int, allocatable: dict[str, str] | None) -> list[str]:
    """Append count nodes (copies of the first node, or with the given allocatable)."""
    if allocatable is None and not nodes:
        raise SimulationError("--add-nodes without resources needs an existing node to copy")
    added = []
    for k in range(count):
        name = f"added-{len(nodes):05d}-{k}"
        if allocatable is None:
            node = copy.deepcopy(nodes[0])
            node["metadata"]["name"] = name
            node["metadata"].setdefault("labels", {})["kubernetes.io/hostname"] = name
            node.setdefault("spec", {}).pop("unschedulable", None)
        else:
            node = make_node_object(name, allocatable)
        nodes.append(node)
        added.append(name)
    return added


# --- running --------------------------------------------------------------------------------


def simulate(
    nodes: list[Obj], pods: list[Obj], options: Options, what_if: list[str] | None = None
) -> Report:
    """Place every pending pod, then measure; nodes and pods are not modified."""
    if options.solver not in ("greedy", "batch"):
        raise SimulationError(f"--solver must be greedy or batch, not {options.solver!r}")
    if options.profile is not None and options.profile not in PROFILES:
        raise SimulationError(
            f"unknown profile {options.profile!r}; choose one of {', '.join(PROFILES)}"
        )
    try:
        snap = Snapshot(nodes)
        placed_before = [pod_info(p) for p in pods if (p.get("spec") or {}).get("nodeName")]
        pending = [pod_info(p) for p in pods if not (p.get("spec") or {}).get("nodeName")]
    except (QuantityError, ValueError) as err:
        raise SimulationError(f"bad object: {err}") from err
    for pi in placed_before:
        if snap.add_pod(pi) is None:
            raise SimulationError(
                f"pod {pi.key} is bound to node {pi.node_name!r}, which is not in the input"
            )
    fixed = Snapshot(nodes, [p.pod for p in placed_before])
    run = _Run(snap, options)
    start = time.perf_counter()
    run.place(pending)
    churned = run.churn() if options.churn > 0 else 0
    seconds = time.perf_counter() - start
    total = len(placed_before) + len(pending) + churned
    return _report(snap, fixed, run, options, total, seconds, churned, what_if or [])


class _Run:
    """One simulation's placement work and what it observed."""

    def __init__(self, snap: Snapshot, options: Options) -> None:
        self.snap = snap
        self.options = options
        self.fws = frameworks()
        self.greedy = GreedyScheduler(snap, self.fws)
        self.latencies: list[float] = []
        self.unschedulable: dict[str, int] = {}
        self.placed_new: list[PodInfo] = []
        self.preempted = 0
        self.method = options.solver
        self.scheduled = 0
        self.batch_lower = 0
        self.utilisation_bound: float | None = None

    def place(self, pending: list[PodInfo]) -> None:
        """Place pods in queue order with the chosen solver, timing each."""
        order = sorted(range(len(pending)), key=lambda k: (-pending[k].priority, k))
        pods = [pending[k] for k in order]
        if self.options.solver == "batch":
            pods = self._batch(pods)
        for pi in pods:
            t = time.perf_counter()
            self._place_one(pi)
            self.latencies.append(time.perf_counter() - t)

    def _batch(self, pods: list[PodInfo]) -> list[PodInfo]:
        """Place the batchable pods at once; return the rest (deferred or unplaced) for greedy."""
        profile = self.options.profile or DEFAULT_PROFILE
        from dockyard.scheduler.solvers.batch import BatchSolver  # scipy: load on use
        solver = BatchSolver(
            self.snap,
            self.fws[profile],
            BATCH_OBJECTIVE.get(profile, "pack"),
            self.options.time_limit,
        )
        t = time.perf_counter()
        result = solver.solve(pods)
        solver.apply(result, pods)
        took = time.perf_counter() - t
        placed = [pi for pi in pods if pi.key in result.assignments]
        self.placed_new.extend(placed)
        self.scheduled += len(placed)
        self.latencies.extend([took / max(len(pods), 1)] * len(placed))
        self.method = f"batch: {result.method}"
        self.utilisation_bound = result.utilisation_bound
        self.batch_lower = max(self.batch_lower, result.lower_bound)
        return [pi for pi in pods if pi.key not in result.assignments]

    def _place_one(self, pi: PodInfo) -> None:
        fw = self.fws[self.options.profile] if self.options.profile else None
        result = self.greedy.schedule_one(pi, fw)
        self.scheduled += 1
        node = result.node
        if node is None and self.options.preempt and result.diagnosis is not None:
            pre = Preemptor(
                self.snap, fw or self.fws.get(pi.scheduler_name) or self.fws[DEFAULT_PROFILE]
            ).preempt(pi, result.diagnosis)
            if pre.node is not None:
                for victim in pre.victims:
                    self.snap.remove_pod(victim.key)
                    self.preempted += 1
                node = pre.node
        if node is None:
            key = result.message
            self.unschedulable[key] = self.unschedulable.get(key, 0) + 1
            return
        self.snap.assume(pi, node)
        self.snap.confirm(pi.key)
        self.placed_new.append(pi)

    def churn(self) -> int:
        """Delete a share of the placed pods, then place as many new ones; return how many."""
        rng = random.Random(self.options.seed + 1)
        placed = [pi for pi in self.placed_new if pi.key in self.snap.pods]
        victims = rng.sample(placed, int(len(placed) * min(self.options.churn, 1.0)))
        for pi in victims:
            self.snap.remove_pod(pi.key)
        self.placed_new = [pi for pi in self.placed_new if pi.key in self.snap.pods]
        fresh = [
            pod_info(p) for p in synthetic_pods(len(victims), self.options.pod_size, rng, "churn")
        ]
        self.place(fresh)
        return len(victims)


def _report(
    snap: Snapshot,
    fixed: Snapshot,
    run: _Run,
    options: Options,
    total: int,
    seconds: float,
    churned: int,
    what_if: list[str],
) -> Report:
    used = int(sum(1 for pods in snap.node_pods if pods))
    lp, simple = 0.0, 0
    if options.bound and snap.n:
        from dockyard.scheduler.solvers.batch import BatchSolver  # scipy: load on use
        lp, simple = BatchSolver(fixed, time_limit=options.time_limit).bounds(
            [pi for pi in run.placed_new if pi.key in snap.pods]
        )
    lower = max(math.ceil(lp - 1e-6), simple, run.batch_lower, 1 if used else 0)
    pending = sum(run.unschedulable.values())
    lat = np.array(run.latencies) * 1000.0 if run.latencies else np.zeros(1)
    return Report(
        pods=total,
        placed=len(snap.pods),
        pending=pending,
        nodes=snap.n,
        nodes_used=used,
        lower_bound=lower,
        lp_bound=round(lp, 3),
        simple_bound=simple,
        gap=round(used / lower - 1.0, 6) if lower else 0.0,
        seconds=round(seconds, 6),
        pods_per_second=round(run.scheduled / seconds, 1) if seconds > 0 else 0.0,
        solver=options.solver,
        profile=options.profile or "per-pod schedulerName",
        method=run.method,
        utilisation=_utilisation(snap, np.ones(snap.n, bool)),
        utilisation_used_nodes=_utilisation(
            snap, np.array([bool(p) for p in snap.node_pods], bool).reshape(snap.n)
        ),
        fragmentation=_fragmentation(snap, run.placed_new),
        latency_ms={
            "mean": round(float(lat.mean()), 4),
            "p50": round(float(np.percentile(lat, 50)), 4),
            "p99": round(float(np.percentile(lat, 99)), 4),
            "max": round(float(lat.max()), 4),
        },
        max_utilisation=_max_utilisation(snap),
        utilisation_bound=run.utilisation_bound,
        preempted=run.preempted,
        churned=churned,
        unschedulable=run.unschedulable,
        what_if=what_if,
    )


def _max_utilisation(snap: Snapshot) -> float:
    """Return the highest cpu or memory requested/allocatable over all nodes."""
    alloc = snap.allocatable[:, :2].astype(float)
    used = snap.requested[:, :2].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(alloc > 0, used / alloc, 0.0)
    return round(float(frac.max()), 4) if frac.size else 0.0


def _utilisation(snap: Snapshot, rows: Any) -> dict[str, float]:
    out = {}
    for col, name in enumerate(snap.resources):
        alloc = float(snap.allocatable[rows, col].sum()) if snap.n else 0.0
        if alloc > 0:
            out[name] = round(float(snap.requested[rows, col].sum()) / alloc, 4)
    return out


def _fragmentation(snap: Snapshot, pods: list[PodInfo]) -> dict[str, float]:
    """Return, per resource, the share of free capacity on nodes where the median pod no
    longer fits (stranded capacity)."""
    if not pods or not snap.n:
        return {"cpu": 0.0, "memory": 0.0}
    med = np.array([np.median([pi.requests.get(r, 0) for pi in pods]) for r in ("cpu", "memory")])
    free = snap.free[:, :2].astype(float)
    fits = (free >= med).all(axis=1) & (snap.free[:, 3] >= 1)
    out = {}
    for col, name in enumerate(("cpu", "memory")):
        total = float(np.maximum(free[:, col], 0).sum())
        stranded = float(np.maximum(free[~fits, col], 0).sum())
        out[name] = round(stranded / total, 4) if total > 0 else 0.0
    return out


def report_json(report: Report) -> str:
    """Return the report as one JSON object."""
    return json.dumps(report.as_dict(), sort_keys=False)
