"""ReplicaSet controller decisions: deletion order, batches, status, pods from templates,
and the expectations that keep a slow informer from causing double creates."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.controllers.base import Expectations, controller_ref
from dockyard.controllers.replicaset import (
    calculate_status,
    deletion_rank,
    is_pod_available,
    next_available_in,
    pod_from_template,
    pods_to_delete,
    slow_start_batches,
)

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def stamp(epoch: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class PodBuilder:
    """make_pod("p").on_node("n1").running().ready_at(T0) ..."""

    def __init__(self, name: str) -> None:
        self.obj: Obj = {"metadata": {"name": name, "namespace": "ns",
                                      "creationTimestamp": stamp(T0), "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "i"}]},
                         "status": {"phase": "Pending"}}

    def on_node(self, node: str) -> PodBuilder:
        self.obj["spec"]["nodeName"] = node
        return self

    def running(self) -> PodBuilder:
        self.obj["status"]["phase"] = "Running"
        return self

    def ready_at(self, epoch: float) -> PodBuilder:
        self.obj["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": stamp(epoch)}]
        return self

    def created_at(self, epoch: float) -> PodBuilder:
        self.obj["metadata"]["creationTimestamp"] = stamp(epoch)
        return self

    def restarts(self, count: int) -> PodBuilder:
        self.obj["status"]["containerStatuses"] = [{"name": "c", "restartCount": count}]
        return self

    def labels(self, **labels: str) -> PodBuilder:
        self.obj["metadata"]["labels"] = labels
        return self

    def build(self) -> Obj:
        return self.obj


def make_pod(name: str) -> PodBuilder:
    return PodBuilder(name)


def names(pods: list[Obj]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_deletion_order_follows_kubernetes() -> None:
    pods = [
        make_pod("ready-old").on_node("n1").running().ready_at(T0).build(),
        make_pod("ready-new").on_node("n1").running().ready_at(T0 + 50).build(),
        make_pod("running-not-ready").on_node("n1").running().build(),
        make_pod("pending-scheduled").on_node("n1").build(),
        make_pod("unscheduled").build(),
    ]
    # unscheduled < pending < not ready < ready for less time < ready for longer
    assert names(pods_to_delete(pods, 5)) == [
        "unscheduled", "pending-scheduled", "running-not-ready", "ready-new", "ready-old"]
    assert names(pods_to_delete(pods, 2)) == ["unscheduled", "pending-scheduled"]
    assert pods_to_delete(pods, 0) == []


def test_deletion_order_ties_break_on_restarts_then_newest() -> None:
    a = make_pod("a").on_node("n1").running().ready_at(T0).created_at(T0).restarts(0).build()
    b = make_pod("b").on_node("n1").running().ready_at(T0).created_at(T0).restarts(3).build()
    c = make_pod("c").on_node("n1").running().ready_at(T0).created_at(T0 + 9).build()
    # more restarts first; then the newer of the two with no restarts
    assert names(pods_to_delete([a, c, b], 3)) == ["b", "c", "a"]
    assert deletion_rank(a) > deletion_rank(b)


def test_slow_start_batches_double_and_sum() -> None:
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]  # 1+2+4 = 7, then the 3 left
    assert sum(slow_start_batches(100)) == 100


def test_availability_honours_min_ready_seconds() -> None:
    pod = make_pod("p").running().ready_at(T0).build()
    assert is_pod_available(pod, 0, T0)
    assert not is_pod_available(pod, 10, T0 + 9)
    assert is_pod_available(pod, 10, T0 + 10)
    assert not is_pod_available(make_pod("q").running().build(), 0, T0)


def test_status_counts_and_generation() -> None:
    rs = {"metadata": {"name": "web-1", "generation": 4},
          "spec": {"replicas": 3, "minReadySeconds": 5,
                   "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}}}}}
    pods = [
        make_pod("a").running().ready_at(T0).labels(app="web", tier="fe").build(),
        make_pod("b").running().ready_at(T0 + 8).labels(app="web", tier="fe").build(),
        make_pod("c").running().labels(app="web").build(),
    ]
    status = calculate_status(rs, pods, T0 + 10, None)
    # a: ready 10 s ≥ 5 → available; b: ready 2 s → ready, not yet available; c: not ready
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 4}
    # b becomes available at T0 + 8 + 5 = T0 + 13: 3 s after T0 + 10
    assert next_available_in(rs, pods, T0 + 10) == pytest.approx(3.0)


def test_status_reports_create_failure() -> None:
    rs = {"metadata": {"name": "web-1", "generation": 1}, "spec": {"replicas": 1}}
    status = calculate_status(rs, [], T0, "Error creating: quota exceeded")
    cond = status["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("ReplicaFailure", "True",
                                                              "FailedCreate")
    rs["status"] = status
    assert "conditions" not in calculate_status(rs, [], T0, None)


def test_pod_from_template_sets_owner_labels_and_generate_name() -> None:
    rs: Obj = {"metadata": {"name": "web-abc", "namespace": "ns", "uid": "u-1"},
               "spec": {"template": {"metadata": {"labels": {"app": "web"},
                                                  "annotations": {"a": "b"}},
                                     "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    pod = pod_from_template(rs)
    assert pod["metadata"]["generateName"] == "web-abc-"
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["metadata"]["annotations"] == {"a": "b"}
    ref = controller_ref(pod)
    assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                   "uid": "u-1", "controller": True, "blockOwnerDeletion": True}
    pod["spec"]["containers"][0]["image"] = "changed"
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "i"  # a copy


def test_expectations_block_until_observed() -> None:
    exp = Expectations()
    assert exp.satisfied("ns/rs")
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")


def test_expectations_count_each_deleted_pod_once() -> None:
    exp = Expectations()
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # the DELETED after the graceful update: no-op
    exp.deletion_observed("ns/rs", "ns/other")  # not one we deleted
    assert exp.pending("ns/rs") == (0, 1)
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")


def test_expectations_expire() -> None:
    exp = Expectations(timeout=0.0)
    exp.expect_creations("ns/rs", 5)
    assert exp.satisfied("ns/rs")  # a lost watch event must not wedge the controller
