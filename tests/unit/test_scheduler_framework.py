"""The framework's values and messages, the effective-request rule, the fit plugin, the queue."""

from __future__ import annotations

import pytest

from dockyard.scheduler import reasons
from dockyard.scheduler.framework import Code, Framework, Profile, Status
from dockyard.scheduler.plugins import REGISTRY
from dockyard.scheduler.podinfo import pod_info, scheduling_requests
from dockyard.scheduler.profiles import PROFILES
from dockyard.scheduler.queue import SchedulingQueue, backoff_seconds
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler
from tests.unit.scheduler_builders import make_node, make_pod

pytestmark = pytest.mark.unit

GI = 2**30


@pytest.mark.parametrize(
    ("pod", "want"),
    [
        # plain sum over containers: 500m + 250m
        (make_pod("a").requests(cpu="500m").container(cpu="250m"), {"cpu": 750, "pods": 1}),
        # init container larger than the sum wins: max(1000, 2000)
        (make_pod("b").requests(cpu="1").init_container(cpu="2"), {"cpu": 2000, "pods": 1}),
        # init smaller than the sum: max(3Gi, 1Gi) = 3Gi
        (
            make_pod("c").requests(memory="3Gi").init_container(memory="1Gi"),
            {"memory": 3 * GI, "pods": 1},
        ),
        # sidecar (restartable init) runs beside the containers: 1 + 1 = 2 cpu; the later init
        # container runs beside the sidecar: 1 + 1.5 = 2.5 cpu > 2 → 2500m
        (
            make_pod("d")
            .requests(cpu="1")
            .init_container(sidecar=True, cpu="1")
            .init_container(cpu="1500m"),
            {"cpu": 2500, "pods": 1},
        ),
        # extended resources and ephemeral storage are counted in whole units
        (
            make_pod("e").requests(ephemeral_storage="1Gi", extended={"example.com/gpu": "2"}),
            {"ephemeral-storage": GI, "example.com/gpu": 2, "pods": 1},
        ),
    ],
)
def test_effective_requests(pod: dict, want: dict) -> None:
    assert scheduling_requests(pod) == want


def test_limits_count_as_requests_when_requests_are_missing() -> None:
    pod = make_pod("p")
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "2", "memory": "1Gi"}}
    assert scheduling_requests(pod) == {"cpu": 2000, "memory": GI, "pods": 1}


def test_overhead_is_added() -> None:
    pod = make_pod("p").requests(cpu="1")
    pod["spec"]["overhead"] = {"cpu": "250m"}
    assert scheduling_requests(pod)["cpu"] == 1250


def test_zero_requests_are_dropped_and_pods_counts_one() -> None:
    # 0 cpu is no request at all: the fit plugin must not look for a "cpu" column
    pod = make_pod("p").requests(cpu="0", memory="1Gi")
    assert scheduling_requests(pod) == {"memory": GI, "pods": 1}


def test_a_bad_quantity_is_an_error_naming_the_resource() -> None:
    pod = make_pod("p").requests(cpu="1", memory="lots")
    with pytest.raises(ValueError, match="memory: .*'lots'"):
        pod_info(pod)


def test_a_bad_affinity_selector_is_an_error() -> None:
    pod = make_pod("p")
    term = {"topologyKey": "zone", "labelSelector": {"matchExpressions": [{"key": "a"}]}}
    pod["spec"]["affinity"] = {
        "podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}
    }
    with pytest.raises(ValueError, match="not a valid label selector operator"):
        pod_info(pod)


@pytest.mark.parametrize(
    ("total", "reasons_seen", "want"),
    [
        (
            3,
            [
                "Insufficient cpu",
                "Insufficient cpu",
                reasons.untolerated_taint("node.kubernetes.io/unreachable", ""),
            ],
            "0/3 nodes are available: 1 node(s) had untolerated taint "
            "{node.kubernetes.io/unreachable: }, 2 Insufficient cpu.",
        ),
        (
            2,
            ["Insufficient memory", "Insufficient cpu"],
            "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory.",
        ),
        (0, [], "0/0 nodes are available:"),
    ],
)
def test_fit_error_message_groups_and_sorts(total: int, reasons_seen: list, want: str) -> None:
    assert reasons.fit_error_message(total, reasons_seen) == want


def test_status_is_a_value() -> None:
    s = Status(Code.UNSCHEDULABLE, ("Insufficient cpu",), "NodeResourcesFit")
    assert not s.ok and s.resolvable and s.message() == "Insufficient cpu"
    assert Status().ok


def test_unknown_plugin_in_profile_is_named() -> None:
    with pytest.raises(ValueError, match="NoSuchPlugin"):
        Framework(Profile("x", filters=("NoSuchPlugin",)), REGISTRY)


def test_every_profile_builds_and_every_registered_name_matches() -> None:
    for profile in PROFILES.values():
        Framework(profile, REGISTRY)
    assert all(cls.name == name for name, cls in REGISTRY.items())


def fit_snapshot() -> Snapshot:
    return Snapshot(
        [
            make_node("n1").allocatable(cpu="2", memory="4Gi", pods="2"),
            make_node("n2").allocatable(cpu="4", memory="1Gi"),
            make_node("n3").allocatable(cpu="1", memory="8Gi", extended={"example.com/gpu": "1"}),
        ],
        [make_pod("old").requests(cpu="1", memory="1Gi").on_node("n1")],
    )


@pytest.mark.parametrize(
    ("pod", "node", "message"),
    [
        # n1 has 1 cpu free, n2 4, n3 1: 2 cpu fits only n2
        (make_pod("p").requests(cpu="2"), "n2", ""),
        # 2Gi memory: n1 has 3Gi free, n2 1Gi, n3 8Gi; least-allocated prefers n3 (8Gi)
        (make_pod("p").requests(memory="2Gi"), "n3", ""),
        # the gpu exists on n3 only
        (make_pod("p").requests(extended={"example.com/gpu": "1"}), "n3", ""),
        # 5 cpu fits nowhere: n2 reports it beyond allocatable, all count as Insufficient cpu
        (make_pod("p").requests(cpu="5"), None, "0/3 nodes are available: 3 Insufficient cpu."),
        # 2 cpu + 2Gi: n1 short of cpu (1 free), n2 of memory (1Gi), n3 of cpu (1)
        (
            make_pod("p").requests(cpu="2", memory="2Gi"),
            None,
            "0/3 nodes are available: 1 Insufficient memory, 2 Insufficient cpu.",
        ),
        # 2 gpus: every node short; n1, n2 have none at all
        (
            make_pod("p").requests(extended={"example.com/gpu": "2"}),
            None,
            "0/3 nodes are available: 3 Insufficient example.com/gpu.",
        ),
    ],
)
def test_resource_fit(pod: dict, node: str | None, message: str) -> None:
    result = GreedyScheduler(fit_snapshot()).schedule_one(pod)
    assert result.node == node
    assert result.message == message


def test_too_many_pods() -> None:
    snap = Snapshot([make_node("n1").allocatable(pods="1")], [make_pod("old").on_node("n1")])
    result = GreedyScheduler(snap).schedule_one(make_pod("p"))
    assert result.message == "0/1 nodes are available: 1 Too many pods."


def test_fit_beyond_allocatable_is_unresolvable() -> None:
    snap = fit_snapshot()
    snap.assume(make_pod("busy").requests(cpu="2"), "n2")
    result = GreedyScheduler(snap).schedule_one(make_pod("p").requests(cpu="3"))
    assert result.diagnosis is not None
    codes = {snap.nodes[i].name: s.code for i, s in result.diagnosis.statuses.items()}
    # n1 (2 cpu) and n3 (1 cpu) can never hold 3 cpu; n2 (4 cpu, 2 used) could after preemption
    assert codes == {
        "n1": Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
        "n2": Code.UNSCHEDULABLE,
        "n3": Code.UNSCHEDULABLE_AND_UNRESOLVABLE,
    }
    assert result.diagnosis.resolvable_nodes() == [1]


def test_assume_and_forget_are_exact_inverses() -> None:
    snap = fit_snapshot()
    before = snap.requested.copy()
    snap.assume(make_pod("x").requests(cpu="1", memory="1Gi"), "n2")
    assert snap.requested[1, 0] == before[1, 0] + 1000 and snap.free[1, 0] == 3000
    snap.forget("default/x")
    assert (snap.requested == before).all()
    with pytest.raises(ValueError, match="not assumed"):
        snap.forget("default/old")


def test_binding_confirms_an_assumed_pod_once() -> None:
    snap = fit_snapshot()
    snap.assume(make_pod("x").requests(cpu="1"), "n2")
    snap.add_pod(make_pod("x").requests(cpu="1").on_node("n2"))
    assert snap.requested[1, 0] == 1000 and not snap.assumed


def test_remove_node_drops_its_pods_and_reindexes() -> None:
    snap = fit_snapshot()
    snap.remove_node("n1")
    assert [n.name for n in snap.nodes] == ["n2", "n3"]
    assert "default/old" not in snap.pods and snap.requested.sum() == 0


def test_queue_orders_by_priority_then_arrival_and_backs_off() -> None:
    sort = REGISTRY["PrioritySort"]().sort_key  # type: ignore[attr-defined]
    q = SchedulingQueue(sort)
    low, high, later = (
        pod_info(make_pod(n).priority(p)) for n, p in (("low", 1), ("high", 10), ("later", 1))
    )
    q.add(low, 0.0)
    q.add(high, 1.0)
    q.add(later, 2.0)
    assert [q.pop(3.0).name for _ in range(3)] == ["high", "low", "later"]  # type: ignore[union-attr]
    q.unschedulable("default/low", 3.0)
    assert q.pop(100.0) is None  # held until the cluster changes
    q.move_all_to_active(3.5)  # one failure: 1 s backoff, ready at 4.0
    assert q.pop(3.9) is None
    assert q.pop(4.0).name == "low"  # type: ignore[union-attr]
    assert [backoff_seconds(a) for a in (1, 2, 3, 4, 5, 9)] == [1, 2, 4, 8, 10, 10]


class FakeBinder:
    """Records the Binding objects the bind plugins create (the loop posts them for real)."""

    def __init__(self) -> None:
        self.bindings: list[tuple[str, str, dict]] = []

    async def create_binding(self, namespace: str, name: str, binding: dict) -> None:
        self.bindings.append((namespace, name, binding))


async def test_default_binder_creates_a_v1_binding() -> None:
    from dockyard.scheduler.framework import CycleState

    fw = Framework(PROFILES["default-scheduler"], REGISTRY)
    pod = make_pod("p", "apps")
    pod["metadata"]["uid"] = "u-1"
    binder = FakeBinder()
    status = await fw.run_bind(CycleState(), pod_info(pod), "n1", binder)
    assert status.ok
    assert binder.bindings == [
        (
            "apps",
            "p",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": "p", "namespace": "apps", "uid": "u-1"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
            },
        )
    ]


def test_reserve_rolls_back_and_permit_waits() -> None:
    from dockyard.scheduler.framework import (
        SUCCESS,
        CycleState,
        PermitPlugin,
        ReservePlugin,
        unschedulable,
    )

    log: list[str] = []

    class Claim(ReservePlugin):
        name = "Claim"

        def reserve(self, state, pi, snap, node):  # type: ignore[no-untyped-def]
            log.append("claim")
            return SUCCESS

        def unreserve(self, state, pi, snap, node):  # type: ignore[no-untyped-def]
            log.append("release")

    class Refuse(ReservePlugin):
        name = "Refuse"

        def reserve(self, state, pi, snap, node):  # type: ignore[no-untyped-def]
            return unschedulable(self.name, "no volume")

        def unreserve(self, state, pi, snap, node):  # type: ignore[no-untyped-def]
            log.append("never")

    class Gang(PermitPlugin):
        name = "Gang"

        def permit(self, state, pi, node):  # type: ignore[no-untyped-def]
            return Status(Code.WAIT, ("waiting for 3 more",), self.name), 30.0

    registry = {**REGISTRY, "Claim": Claim, "Refuse": Refuse, "Gang": Gang}
    fw = Framework(Profile("x", reserve=("Claim", "Refuse"), permit=("Gang",)), registry)
    pi = pod_info(make_pod("p"))
    status = fw.run_reserve(CycleState(), pi, Snapshot(), "n1")
    assert status.code == Code.UNSCHEDULABLE and log == ["claim", "release"]
    verdict, timeout = fw.run_permit(CycleState(), pi, "n1")
    assert verdict.code == Code.WAIT and timeout == 30.0


def test_a_relabelled_pod_is_reindexed() -> None:
    snap = Snapshot([make_node("n1")], [make_pod("p").labels(app="a").on_node("n1")])
    snap.add_pod(make_pod("p").labels(app="b").on_node("n1"))
    assert snap.label_counts("default", "app", "a").tolist() == [0]
    assert snap.label_counts("default", "app", "b").tolist() == [1]
    assert snap.requested[0, 3] == 1  # still one pod


def test_extended_resources_seen_first_in_a_batch_get_columns() -> None:
    from dockyard.scheduler.solvers.batch import BatchSolver

    snap = Snapshot([make_node("n1").allocatable(extended={"example.com/fpga": "1"})])
    pods = [
        make_pod("a").requests(extended={"example.com/tpu": "1"}),
        make_pod("b").requests(extended={"example.com/fpga": "1"}),
    ]
    result = BatchSolver(snap).solve(pods)
    assert list(result.assignments) == ["default/b"] and result.unplaced[0].name == "a"
