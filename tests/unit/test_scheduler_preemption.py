"""Preemption picks the optimal victims, respects PodDisruptionBudgets and changes nothing."""

from __future__ import annotations

import itertools
import random

import pytest

from dockyard.scheduler.podinfo import PodInfo, pod_info
from dockyard.scheduler.preemption import Preemptor, budgets, victim_cost
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler
from tests.unit.scheduler_builders import make_node, make_pod

pytestmark = pytest.mark.unit


def preempt(snap: Snapshot, pod: dict, pdbs: list | None = None) -> tuple[str | None, list[str]]:
    g = GreedyScheduler(snap)
    result = g.schedule_one(pod)
    assert result.node is None and result.diagnosis is not None
    fw = g.frameworks["default-scheduler"]
    out = Preemptor(snap, fw, pdbs).preempt(result.pod, result.diagnosis)
    return out.node, sorted(v.name for v in out.victims)


def pdb(name: str, allowed: int | None = None, **spec: object) -> dict:
    obj: dict = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}}, **spec},
    }
    if allowed is not None:
        obj["status"] = {"disruptionsAllowed": allowed}
    return obj


def test_least_total_priority_beats_greedy_reprieve() -> None:
    # node 4 cpu full: a (2 cpu, prio 5), b (1 cpu, prio 3), c (1 cpu, prio 3). A 2-cpu pod
    # needs 2 cpu freed: {a} costs 5, {b, c} costs 6 → a alone.
    snap = Snapshot(
        [make_node("n1")],
        [
            make_pod("a").requests(cpu="2").priority(5).on_node("n1"),
            make_pod("b").requests(cpu="1").priority(3).on_node("n1"),
            make_pod("c").requests(cpu="1").priority(3).on_node("n1"),
        ],
    )
    assert preempt(snap, make_pod("p").requests(cpu="2").priority(10)) == ("n1", ["a"])


def test_fewest_victims_break_priority_ties() -> None:
    # {big} costs prio 0 with 1 victim; {s1, s2} costs prio 0 with 2 victims
    snap = Snapshot(
        [make_node("n1")],
        [
            make_pod("big").requests(cpu="2").on_node("n1"),
            make_pod("s1").requests(cpu="1").on_node("n1"),
            make_pod("s2").requests(cpu="1").on_node("n1"),
        ],
    )
    assert preempt(snap, make_pod("p").requests(cpu="2").priority(1)) == ("n1", ["big"])


def test_only_lower_priority_pods_are_victims() -> None:
    snap = Snapshot(
        [make_node("n1")], [make_pod("same").requests(cpu="4").priority(10).on_node("n1")]
    )
    g = GreedyScheduler(snap)
    r = g.schedule_one(make_pod("p").requests(cpu="1").priority(10))
    assert r.diagnosis is not None
    out = Preemptor(snap, g.frameworks["default-scheduler"]).preempt(r.pod, r.diagnosis)
    assert out.node is None
    assert out.message == "0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def test_nominates_the_cheapest_node() -> None:
    snap = Snapshot(
        [make_node("n1"), make_node("n2")],
        [
            make_pod("x").requests(cpu="4").priority(8).on_node("n1"),
            make_pod("y").requests(cpu="4").priority(2).on_node("n2"),
        ],
    )
    assert preempt(snap, make_pod("p").requests(cpu="1").priority(9)) == ("n2", ["y"])


def test_pdb_protected_victims_are_avoided_when_possible() -> None:
    # web pods are cheaper but their PDB allows no disruption: take the batch pod instead
    snap = Snapshot(
        [make_node("n1")],
        [
            make_pod("w1").labels(app="web").requests(cpu="2").priority(2).on_node("n1"),
            make_pod("w2").labels(app="web").requests(cpu="1").priority(1).on_node("n1"),
            make_pod("job").labels(app="job").requests(cpu="1").priority(4).on_node("n1"),
        ],
    )
    pod = make_pod("p").requests(cpu="1").priority(9)
    assert preempt(snap, pod) == ("n1", ["w2"])
    assert preempt(snap, pod, [pdb("web", allowed=0)]) == ("n1", ["job"])
    # when only protected pods can free enough, the PDB is violated (as kube-scheduler does)
    assert preempt(snap, make_pod("q").requests(cpu="3").priority(9), [pdb("web", allowed=0)]) == (
        "n1",
        ["job", "w1"],
    )


@pytest.mark.parametrize(
    ("spec", "pods", "allowed"),
    [
        ({"minAvailable": 2}, 3, 1),
        ({"minAvailable": "50%"}, 3, 1),  # ceil(1.5) = 2 must stay
        ({"maxUnavailable": 1}, 3, 1),
        ({"maxUnavailable": "50%"}, 4, 2),
        ({"minAvailable": 5}, 3, 0),
    ],
)
def test_budget_from_spec_without_status(spec: dict, pods: int, allowed: int) -> None:
    snap = Snapshot(
        [make_node("n1")], [make_pod(f"w{i}").labels(app="web").on_node("n1") for i in range(pods)]
    )
    assert budgets([pdb("web", **spec)], snap)[0].allowed == allowed


def test_preemption_policy_never() -> None:
    snap = Snapshot([make_node("n1")], [make_pod("a").requests(cpu="4").on_node("n1")])
    pod = make_pod("p").requests(cpu="1").priority(9)
    pod["spec"]["preemptionPolicy"] = "Never"
    assert preempt(snap, pod) == (None, [])


def test_host_port_conflict_uses_reprieve() -> None:
    snap = Snapshot(
        [make_node("n1")],
        [
            make_pod("web").host_port(80).priority(1).on_node("n1"),
            make_pod("other").priority(1).on_node("n1"),
        ],
    )
    assert preempt(snap, make_pod("p").host_port(80).priority(5)) == ("n1", ["web"])


def test_snapshot_is_unchanged_by_preemption() -> None:
    snap = Snapshot(
        [make_node("n1"), make_node("n2")],
        [
            make_pod(f"p{i}").requests(cpu="1").priority(i).on_node(f"n{1 + i % 2}")
            for i in range(8)
        ],
    )
    snap.assume(make_pod("assumed").priority(0), "n1")
    before = (snap.requested.copy(), dict(snap.pod_node), set(snap.assumed))
    preempt(snap, make_pod("p").requests(cpu="3").priority(100))
    assert (snap.requested == before[0]).all()
    assert snap.pod_node == before[1] and snap.assumed == before[2]


def brute_victims(pi: PodInfo, snap: Snapshot, node: str, pdbs: list) -> tuple | None:
    i = snap.index[node]
    lower = [snap.pods[k] for k in snap.node_pods[i] if snap.pods[k].priority < pi.priority]
    cols, vals = snap.request_vector(pi)
    best = None
    for k in range(len(lower) + 1):
        for combo in itertools.combinations(lower, k):
            freed = {c: 0 for c in cols.tolist()}
            for v in combo:
                vc, vv = snap.request_vector(v)
                for c, x in zip(vc.tolist(), vv.tolist(), strict=True):
                    if c in freed:
                        freed[c] += x
            if all(
                snap.free[i, c] + freed[c] >= v
                for c, v in zip(cols.tolist(), vals.tolist(), strict=True)
            ):
                cost = victim_cost(list(combo), pdbs)
                best = cost if best is None or cost < best else best
    return best


def test_victims_match_brute_force_on_1000_random_nodes() -> None:
    rng = random.Random(5)
    checked = 0
    for case in range(1000):
        node = make_node("n1").allocatable(
            cpu=str(rng.randint(2, 8)),
            memory=f"{rng.randint(2, 16)}Gi",
            pods=str(rng.randint(4, 10)),
        )
        pods = []
        for k in range(rng.randint(1, 7)):
            pods.append(
                make_pod(f"v{k}")
                .labels(app=rng.choice(["web", "db", "job"]))
                .requests(cpu=f"{rng.randint(1, 10) * 100}m", memory=f"{rng.randint(1, 8) * 256}Mi")
                .priority(rng.randint(-5, 20))
                .on_node("n1")
            )
        snap = Snapshot([node])
        for pod in pods:
            if (snap.free[0] >= [pod_info(pod).requests.get(r, 0) for r in snap.resources]).all():
                snap.add_pod(pod)
        pdbs = [pdb(app, allowed=rng.randint(0, 2)) for app in ("web", "db") if rng.random() < 0.5]
        pending = (
            make_pod(f"p{case}")
            .requests(cpu=f"{rng.randint(1, 40) * 100}m", memory=f"{rng.randint(1, 32) * 256}Mi")
            .priority(15)
        )
        g = GreedyScheduler(snap)
        r = g.schedule_one(pending)
        if r.node is not None or r.diagnosis is None:
            continue
        pre = Preemptor(snap, g.frameworks["default-scheduler"], pdbs)
        cand = pre.candidate(r.pod, 0) if r.diagnosis.resolvable_nodes() else None
        want = brute_victims(r.pod, snap, "n1", pre.budgets)
        if want is None:
            assert cand is None
            continue
        assert cand is not None and cand.exact
        assert victim_cost(cand.victims, pre.budgets) == want
        checked += 1
    assert checked > 200
