"""Each plugin's rule, table-driven over small clusters built with the builders."""

from __future__ import annotations

import random

import numpy as np
import pytest

from dockyard.objects.selectors import NodeSelectorTerm
from dockyard.scheduler.framework import CycleState, Framework, Profile
from dockyard.scheduler.matching import term_mask
from dockyard.scheduler.plugins import REGISTRY
from dockyard.scheduler.plugins.taint_toleration import toleration_matches
from dockyard.scheduler.podinfo import pod_info
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler
from tests.unit.scheduler_builders import expr, make_node, make_pod

pytestmark = pytest.mark.unit

ZONE = "topology.kubernetes.io/zone"
HOST = "kubernetes.io/hostname"


def place(snap: Snapshot, pod: dict, profile: str = "default-scheduler") -> tuple[str | None, str]:
    pod["spec"]["schedulerName"] = profile
    result = GreedyScheduler(snap).schedule_one(pod)
    return result.node, result.message


def feasible(snap: Snapshot, pod: dict) -> list[str]:
    """Return the names of the nodes passing every filter of the default profile."""
    g = GreedyScheduler(snap)
    pi = pod_info(pod)
    fw = g.frameworks["default-scheduler"]
    state = CycleState()
    assert fw.run_pre_filter(state, pi, snap).ok
    mask = fw.run_filters(state, pi, snap)
    return [snap.nodes[i].name for i in np.flatnonzero(mask)]


def three_zones() -> Snapshot:
    return Snapshot(
        [
            make_node(f"n{i}").label(ZONE, z).allocatable(cpu="8", memory="16Gi")
            for i, z in enumerate(["a", "a", "b", "c"])
        ]
    )


# --- NodeName, NodeSelector, NodeUnschedulable ---------------------------------------------


def test_node_name() -> None:
    snap = three_zones()
    pod = make_pod("p")
    pod["spec"]["nodeName"] = "n2"
    assert feasible(snap, pod) == ["n2"]
    node, msg = place(three_zones(), make_pod("q").on_node("nope"))
    assert node is None and msg == (
        "0/4 nodes are available: 4 node(s) didn't match the requested node name."
    )


@pytest.mark.parametrize(
    ("selector", "want"),
    [
        ({ZONE: "a"}, ["n0", "n1"]),
        ({ZONE: "c", HOST: "n3"}, ["n3"]),
        ({ZONE: "z"}, []),
    ],
)
def test_node_selector(selector: dict, want: list) -> None:
    assert feasible(three_zones(), make_pod("p").node_selector(**selector)) == want


def test_node_selector_message() -> None:
    _, msg = place(three_zones(), make_pod("p").node_selector(disk="ssd"))
    assert msg == "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."


def test_unschedulable_nodes_unless_tolerated() -> None:
    snap = Snapshot([make_node("n1").unschedulable(), make_node("n2")])
    assert feasible(snap, make_pod("p")) == ["n2"]
    tolerant = make_pod("d").toleration(
        "node.kubernetes.io/unschedulable", effect="NoSchedule", operator="Exists"
    )
    assert feasible(snap, tolerant) == ["n1", "n2"]
    _, msg = place(Snapshot([make_node("n1").unschedulable()]), make_pod("p"))
    assert msg == "0/1 nodes are available: 1 node(s) were unschedulable."


# --- NodeAffinity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "want"),
    [
        ([expr(ZONE, "In", "a", "b")], ["n0", "n1", "n2"]),
        ([expr(ZONE, "NotIn", "a")], ["n2", "n3"]),
        ([expr(ZONE, "In", "c"), expr(HOST, "In", "n0")], ["n0", "n3"]),  # terms are ORed
        ([expr("gen", "Gt", "2")], ["n2", "n3"]),  # gen labels 1..4 below: 3, 4 > 2
        ([expr("gen", "Lt", "2")], ["n0"]),
        ([expr("gen", "Exists")], ["n0", "n1", "n2", "n3"]),
        ([expr("gpu", "DoesNotExist")], ["n0", "n1", "n2"]),
        ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}], ["n1"]),
        ([{}], []),  # an empty term matches nothing
    ],
)
def test_required_node_affinity(terms: list, want: list) -> None:
    snap = three_zones()
    for i, node in enumerate(snap.nodes):
        labels = dict(node.labels, gen=str(i + 1))
        if i == 3:
            labels["gpu"] = "yes"
        obj = dict(node.node, metadata={"name": node.name, "labels": labels})
        snap.update_node(obj)
    assert feasible(snap, make_pod("p").require_node(*terms)) == want


def test_vectorised_node_terms_agree_with_per_node_rule() -> None:
    rng = random.Random(7)
    nodes = [
        make_node(f"n{i}").labels(a=str(rng.randint(0, 5)), b=rng.choice(["x", "y", "7"]))
        for i in range(40)
    ]
    for node in nodes[::3]:
        del node["metadata"]["labels"]["b"]
    snap = Snapshot(nodes)
    ops = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    for _ in range(300):
        reqs = []
        for _ in range(rng.randint(1, 3)):
            key, op = rng.choice("ab"), rng.choice(ops)
            values = (
                []
                if op in ("Exists", "DoesNotExist")
                else (
                    [str(rng.randint(0, 5))]
                    if op in ("Gt", "Lt")
                    else rng.sample(["0", "1", "2", "x", "y", "7"], 2)
                )
            )
            reqs.append({"key": key, "operator": op, "values": values})
        term: dict = {"matchExpressions": reqs}
        if rng.random() < 0.3:
            names = rng.sample([n.name for n in snap.nodes] + ["gone"], 3)
            term["matchFields"] = [
                {"key": "metadata.name", "operator": rng.choice(["In", "NotIn"]), "values": names}
            ]
        want = [NodeSelectorTerm.from_dict(term).matches(n.labels, n.name) for n in snap.nodes]
        assert term_mask(snap, term).tolist() == want, term


def test_preferred_node_affinity_scores() -> None:
    snap = three_zones()
    pod = (
        make_pod("p").prefer_node(80, expr(ZONE, "In", "c")).prefer_node(20, expr(ZONE, "In", "b"))
    )
    assert place(snap, pod)[0] == "n3"


# --- TaintToleration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toleration", "taint", "want"),
    [
        (
            {"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
            {"key": "k", "value": "v", "effect": "NoSchedule"},
            True,
        ),
        ({"key": "k", "value": "other"}, {"key": "k", "value": "v", "effect": "NoSchedule"}, False),
        (
            {"key": "k", "operator": "Exists"},
            {"key": "k", "value": "v", "effect": "NoExecute"},
            True,
        ),
        ({"operator": "Exists"}, {"key": "any", "effect": "NoSchedule"}, True),  # wildcard
        (
            {"key": "k", "operator": "Exists", "effect": "NoExecute"},
            {"key": "k", "effect": "NoSchedule"},
            False,
        ),  # effect must match when given
        ({"key": "", "operator": "Equal"}, {"key": "k", "effect": "NoSchedule"}, False),
    ],
)
def test_toleration_matching(toleration: dict, taint: dict, want: bool) -> None:
    assert toleration_matches(toleration, taint) is want


def test_hard_taints_filter_and_message() -> None:
    snap = Snapshot(
        [
            make_node("n1").taint("node.kubernetes.io/unreachable", effect="NoExecute"),
            make_node("n2").taint("dedicated", "db", "NoSchedule"),
            make_node("n3").taint("soft", "x", "PreferNoSchedule"),
        ]
    )
    assert feasible(snap, make_pod("p")) == ["n3"]
    assert feasible(snap, make_pod("p").toleration("dedicated", "db", "NoSchedule")) == ["n2", "n3"]
    only_tainted = Snapshot([snap.nodes[0].node, snap.nodes[1].node])
    _, msg = place(only_tainted, make_pod("p"))
    assert msg == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }."
    )


def test_prefer_no_schedule_taints_lower_the_score() -> None:
    snap = Snapshot([make_node("n1").taint("soft", "x", "PreferNoSchedule"), make_node("n2")])
    assert place(snap, make_pod("p"))[0] == "n2"
    tolerant = make_pod("t").toleration("soft", "x", "PreferNoSchedule")
    assert place(snap, tolerant)[0] == "n1"  # equal scores: lowest index


# --- NodePorts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "wanted", "conflict"),
    [
        (("TCP", "", 80), ("TCP", "", 80), True),
        (("TCP", "", 80), ("UDP", "", 80), False),
        (("TCP", "10.0.0.1", 80), ("TCP", "10.0.0.2", 80), False),
        (("TCP", "10.0.0.1", 80), ("TCP", "", 80), True),  # 0.0.0.0 overlaps every address
        (("TCP", "10.0.0.1", 80), ("TCP", "10.0.0.1", 80), True),
        (("TCP", "", 80), ("TCP", "", 81), False),
    ],
)
def test_host_ports(existing: tuple, wanted: tuple, conflict: bool) -> None:
    proto, ip, port = existing
    snap = Snapshot([make_node("n1")], [make_pod("old").host_port(port, proto, ip).on_node("n1")])
    proto, ip, port = wanted
    node, msg = place(snap, make_pod("p").host_port(port, proto, ip))
    assert (node is None) is conflict
    if conflict:
        assert msg == (
            "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
        )


def test_host_ports_free_again_after_pod_removed() -> None:
    snap = Snapshot([make_node("n1")], [make_pod("old").host_port(80).on_node("n1")])
    snap.remove_pod("default/old")
    assert place(snap, make_pod("p").host_port(80))[0] == "n1"


# --- InterPodAffinity ------------------------------------------------------------------------


def zoned_with(pods: list) -> Snapshot:
    snap = three_zones()
    for pod in pods:
        snap.add_pod(pod)
    return snap


def test_required_pod_affinity_by_zone() -> None:
    snap = zoned_with([make_pod("db").labels(app="db").on_node("n2")])
    pod = make_pod("web").pod_affinity(ZONE, app="db")
    assert feasible(snap, pod) == ["n2"]  # zone b holds only n2


def test_first_pod_of_a_group_may_start_anywhere() -> None:
    snap = three_zones()
    pod = make_pod("db").labels(app="db").pod_affinity(ZONE, app="db")
    assert feasible(snap, pod) == ["n0", "n1", "n2", "n3"]
    _, msg = place(snap, make_pod("web").pod_affinity(ZONE, app="db"))
    assert msg == "0/4 nodes are available: 4 node(s) didn't match pod affinity rules."


def test_required_anti_affinity_by_zone_and_host() -> None:
    snap = zoned_with([make_pod("w1").labels(app="web").on_node("n0")])
    assert feasible(
        snap, make_pod("w2").labels(app="web").pod_affinity(ZONE, anti=True, app="web")
    ) == ["n2", "n3"]
    assert feasible(snap, make_pod("w2").pod_affinity(HOST, anti=True, app="web")) == [
        "n1",
        "n2",
        "n3",
    ]


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    loner = make_pod("loner").labels(app="x").pod_affinity(ZONE, anti=True, app="web")
    snap = zoned_with([loner.on_node("n2")])
    assert feasible(snap, make_pod("w").labels(app="web")) == ["n0", "n1", "n3"]
    assert feasible(snap, make_pod("other").labels(app="api")) == ["n0", "n1", "n2", "n3"]
    only_b = Snapshot([snap.nodes[2].node], [loner])
    _, msg = place(only_b, make_pod("w").labels(app="web"))
    assert (
        msg
        == "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
    )


def test_affinity_looks_only_in_its_namespace() -> None:
    snap = zoned_with([make_pod("db", "other").labels(app="db").on_node("n2")])
    assert feasible(snap, make_pod("web").pod_affinity(ZONE, app="db")) == []


def test_preferred_pod_affinity_and_anti_affinity_score() -> None:
    snap = zoned_with([make_pod("db").labels(app="db").on_node("n3")])
    assert place(snap, make_pod("w").pod_affinity(ZONE, weight=50, app="db"))[0] == "n3"
    assert place(snap, make_pod("w").pod_affinity(ZONE, anti=True, weight=50, app="db"))[0] != "n3"


# --- PodTopologySpread -----------------------------------------------------------------------


def test_spread_do_not_schedule_respects_max_skew() -> None:
    # zone a: 2 web pods, zone b: 0, zone c: 1; min = 0. Placing in a gives 3 - 0 > 1, in c
    # 2 - 0 > 1, in b 1 - 0 <= 1: only zone b's node n2 passes.
    snap = zoned_with(
        [make_pod(f"w{i}").labels(app="web").on_node(n) for i, n in enumerate(["n0", "n1", "n3"])]
    )
    pod = make_pod("w9").labels(app="web").spread(1, ZONE, app="web")
    assert feasible(snap, pod) == ["n2"]
    # with maxSkew 2: a → 3 > 2 rejected; c → 2 <= 2 and b pass
    assert feasible(snap, make_pod("w9").labels(app="web").spread(2, ZONE, app="web")) == [
        "n2",
        "n3",
    ]


def test_spread_rejects_nodes_without_the_key() -> None:
    snap = Snapshot([make_node("n1").label(ZONE, "a"), make_node("n2")])
    pod = make_pod("p").labels(app="web").spread(1, ZONE, app="web")
    assert feasible(snap, pod) == ["n1"]
    _, msg = place(Snapshot([make_node("n2")]), pod)
    assert msg == (
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread "
        "constraints (missing required label)."
    )


def test_spread_schedule_anyway_prefers_the_emptier_zone() -> None:
    snap = zoned_with(
        [make_pod(f"w{i}").labels(app="web").on_node(n) for i, n in enumerate(["n0", "n2", "n2"])]
    )
    pod = make_pod("w9").labels(app="web").spread(1, ZONE, when="ScheduleAnyway", app="web")
    assert place(snap, pod)[0] == "n3"


def test_spread_counts_only_nodes_the_pod_may_use() -> None:
    # zone c holds no web pod but the pod may not go there (nodeSelector zone in a/b), so the
    # minimum is over zones a (1) and b (1): placing in a or b gives skew 1, both allowed.
    snap = zoned_with(
        [
            make_pod("w0").labels(app="web").on_node("n0"),
            make_pod("w1").labels(app="web").on_node("n2"),
        ]
    )
    pod = (
        make_pod("w9")
        .labels(app="web")
        .spread(1, ZONE, app="web")
        .require_node(expr(ZONE, "In", "a", "b"))
    )
    assert feasible(snap, pod) == ["n0", "n1", "n2"]


# --- scores and profiles -----------------------------------------------------------------------


def test_pack_and_spread_profiles_choose_opposite_nodes() -> None:
    snap = Snapshot(
        [make_node("n1"), make_node("n2")],
        [make_pod("old").requests(cpu="2", memory="4Gi").on_node("n1")],
    )
    pod = make_pod("p").requests(cpu="1", memory="1Gi")
    assert place(snap, pod, "pack")[0] == "n1"
    assert place(snap, pod, "spread")[0] == "n2"
    assert place(snap, pod, "default-scheduler")[0] == "n2"


def test_balanced_profile_evens_cpu_and_memory() -> None:
    # n1 is cpu-heavy (3/4 cpu, 1/8 memory), n2 memory-heavy (1/4 cpu, 6/8 memory); a
    # memory-heavy pod (0 cpu → 100m, 2Gi) balances n1: fractions .775/.375 vs .275/1.0.
    snap = Snapshot(
        [make_node("n1"), make_node("n2")],
        [
            make_pod("a").requests(cpu="3", memory="1Gi").on_node("n1"),
            make_pod("b").requests(cpu="1", memory="6Gi").on_node("n2"),
        ],
    )
    assert place(snap, make_pod("p").requests(memory="2Gi"), "balanced")[0] == "n1"


def test_image_locality_prefers_the_node_with_the_image() -> None:
    snap = Snapshot(
        [
            make_node("n1"),
            make_node("n2").image("docker.io/library/nginx:1.25", 500 << 20),
            make_node("n3"),
        ]
    )
    assert place(snap, make_pod("p").image("nginx:1.25"))[0] == "n2"


def test_scheduler_name_picks_profile_and_unknown_names_are_errors() -> None:
    snap = Snapshot([make_node("n1")])
    result = GreedyScheduler(snap).schedule_one(make_pod("p").scheduler("other-scheduler"))
    assert result.node is None and "other-scheduler" in result.message


def test_worked_score_examples() -> None:
    # node 4000m / 8Gi with 1000m / 2Gi used, pod 1000m / 2Gi: least 50, most 50; the
    # balanced example with 2000m cpu / 2Gi memory after placing: fractions .5/.25 → 87.5.
    snap = Snapshot(
        [make_node("n1")], [make_pod("old").requests(cpu="1", memory="2Gi").on_node("n1")]
    )
    pi = pod_info(make_pod("p").requests(cpu="1", memory="2Gi"))
    idx = np.array([0])
    for name, want in (("NodeResourcesLeastAllocated", 50.0), ("NodeResourcesMostAllocated", 50.0)):
        plugin = REGISTRY[name]()
        assert plugin.score(CycleState(), pi, snap, idx)[0] == pytest.approx(want)  # type: ignore[attr-defined]
    pi2 = pod_info(make_pod("q").requests(cpu="1", memory="1Ki"))
    snap2 = Snapshot(
        [make_node("n1")], [make_pod("old").requests(cpu="1", memory="2Gi").on_node("n1")]
    )
    score = REGISTRY["NodeResourcesBalancedAllocation"]().score(  # type: ignore[attr-defined]
        CycleState(), pi2, snap2, idx
    )[0]
    assert score == pytest.approx(87.5, abs=0.01)


def test_filters_run_in_profile_order_for_the_diagnosis() -> None:
    # a node both cordoned and short of cpu reports only the first failing filter
    snap = Snapshot([make_node("n1").unschedulable().allocatable(cpu="1")])
    fw = Framework(Profile("x", filters=("NodeUnschedulable", "NodeResourcesFit")), REGISTRY)
    g = GreedyScheduler(snap, {"default-scheduler": fw})
    assert g.schedule_one(make_pod("p").requests(cpu="2")).message == (
        "0/1 nodes are available: 1 node(s) were unschedulable."
    )


def test_vectorised_explanations_agree_with_per_node_ones() -> None:
    rng = random.Random(8)
    nodes = []
    for i in range(60):
        node = make_node(f"n{i}").allocatable(
            cpu=str(rng.randint(1, 4)), pods=str(rng.randint(1, 3))
        )
        if rng.random() < 0.3:
            node.taint(rng.choice(["a", "b"]), rng.choice(["x", ""]), "NoSchedule")
        nodes.append(node)
    snap = Snapshot(
        nodes, [make_pod(f"o{i}").requests(cpu="1").on_node(f"n{i}") for i in range(60)]
    )
    pi = pod_info(make_pod("p").requests(cpu="3", extended={"example.com/gpu": "1"}))
    idx = np.arange(snap.n)
    for name in ("NodeResourcesFit", "TaintToleration"):
        plugin = REGISTRY[name]()
        many = plugin.explain_many(CycleState(), pi, snap, idx)  # type: ignore[attr-defined]
        one = [plugin.explain(CycleState(), pi, snap, i) for i in idx]  # type: ignore[attr-defined]
        if name == "TaintToleration":  # only tainted nodes are ever explained
            tainted = [i for i in idx if snap.nodes[i].taints]
            many = [many[i] for i in tainted]
            one = [one[i] for i in tainted]
        assert many == one


def test_spread_min_domains_forces_a_zero_minimum() -> None:
    # 3 zones hold 1 web pod each; with minDomains 4 (more than exist) the minimum is 0, so
    # every zone's skew is 1 + 1 - 0 = 2 > maxSkew 1: nothing passes
    snap = zoned_with(
        [make_pod(f"w{i}").labels(app="web").on_node(n) for i, n in enumerate(["n0", "n2", "n3"])]
    )
    pod = make_pod("w9").labels(app="web").spread(1, ZONE, app="web")
    assert feasible(snap, pod) == ["n0", "n1", "n2", "n3"]  # min 1: skew 1 everywhere
    pod["spec"]["topologySpreadConstraints"][0]["minDomains"] = 4
    assert feasible(snap, pod) == []


def test_spread_match_label_keys_narrow_the_selector() -> None:
    # two revisions of web: only pods of the pod's own revision (hash=2) count
    snap = zoned_with(
        [
            make_pod("old1").labels(app="web", hash="1").on_node("n0"),
            make_pod("old2").labels(app="web", hash="1").on_node("n0"),
            make_pod("new1").labels(app="web", hash="2").on_node("n2"),
        ]
    )
    pod = make_pod("new2").labels(app="web", hash="2").spread(1, ZONE, app="web")
    assert feasible(snap, pod) == ["n3"]  # counting every revision: a=2, b=1, c=0
    pod["spec"]["topologySpreadConstraints"][0]["matchLabelKeys"] = ["hash"]
    assert feasible(snap, pod) == ["n0", "n1", "n3"]  # hash=2 only: a=0, b=1, c=0
