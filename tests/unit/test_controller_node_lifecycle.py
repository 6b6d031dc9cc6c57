"""Node lifecycle decisions: taints per Ready state, eviction deadlines per toleration,
Unknown conditions; and the garbage collector's owner classification."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.controllers.garbage_collector import (
    blocks,
    classify,
    without_finalizer,
    without_owner,
)
from dockyard.controllers.node_lifecycle import (
    NEVER,
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    UNSCHEDULABLE_TAINT,
    eviction_time,
    format_time_epoch,
    merged_taints,
    ready_status,
    toleration_seconds,
    unknown_conditions,
    wanted_taints,
)

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
T0 = 1_700_000_000.0


def unreachable(added: float) -> Obj:
    return {"key": UNREACHABLE_TAINT, "effect": "NoExecute", "timeAdded": format_time_epoch(added)}


def pod(*tolerations: Obj) -> Obj:
    return {"spec": {"tolerations": list(tolerations)}}


def test_taints_follow_ready() -> None:
    assert wanted_taints("True", False) == set()
    assert wanted_taints("False", False) == {(NOT_READY_TAINT, "NoExecute"),
                                             (NOT_READY_TAINT, "NoSchedule")}
    assert wanted_taints("Unknown", True) == {(UNREACHABLE_TAINT, "NoExecute"),
                                              (UNREACHABLE_TAINT, "NoSchedule"),
                                              (UNSCHEDULABLE_TAINT, "NoSchedule")}


def test_merged_taints_keep_others_and_time_added() -> None:
    other = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    current = [other, unreachable(T0), {"key": NOT_READY_TAINT, "effect": "NoExecute"}]
    merged = merged_taints(current, {(UNREACHABLE_TAINT, "NoExecute"),
                                     (UNREACHABLE_TAINT, "NoSchedule")}, T0 + 99)
    assert merged == [other, unreachable(T0),
                      {"key": UNREACHABLE_TAINT, "effect": "NoSchedule"}]
    assert merged_taints(merged, set(), T0) == [other]


def test_eviction_after_toleration_seconds() -> None:
    tol = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 30}
    assert eviction_time(pod(tol), [unreachable(T0)], T0 + 5) == T0 + 30


def test_untolerated_taint_evicts_at_once_and_forever_toleration_never() -> None:
    assert eviction_time(pod(), [unreachable(T0)], T0 + 5) == T0 + 5
    forever = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute"}
    assert eviction_time(pod(forever), [unreachable(T0)], T0 + 5) == NEVER
    assert eviction_time(pod(), [{"key": "x", "effect": "NoSchedule"}], T0) == NEVER


def test_every_toleration_is_honoured_as_written() -> None:
    # The api server's admission writes the cluster default into each pod: 300 s is 300 s here.
    api_default = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": 300}
    assert toleration_seconds(api_default) == 300
    assert eviction_time(pod(api_default), [unreachable(T0)], T0 + 5) == T0 + 300
    assert toleration_seconds({**api_default, "tolerationSeconds": -7}) == 0  # at once
    # several matching tolerations: the shortest wins (T0 + min(300, 20))
    short = {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 20}
    assert eviction_time(pod(api_default, short), [unreachable(T0)], T0 + 5) == T0 + 20


def test_unknown_conditions() -> None:
    node = {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady",
         "lastHeartbeatTime": "2023-01-01T00:00:00Z"},
        {"type": "MemoryPressure", "status": "False"}]}}
    conds = unknown_conditions(node, T0)
    assert [(c["type"], c["status"]) for c in conds] == [("Ready", "Unknown"),
                                                         ("MemoryPressure", "Unknown")]
    assert conds[0]["reason"] == "NodeStatusUnknown"
    assert conds[0]["lastHeartbeatTime"] == "2023-01-01T00:00:00Z"  # kept: it never came
    assert node["status"]["conditions"][0]["status"] == "True"  # input untouched
    fresh = unknown_conditions({}, T0)
    assert fresh[0]["reason"] == "NodeStatusNeverUpdated"
    assert ready_status({}) == "Unknown"


# --- garbage collector ---------------------------------------------------------------------


def test_classify_owner_references() -> None:
    ref = {"uid": "u1", "name": "o"}
    assert classify(ref, None) == "dangling"
    assert classify(ref, {"metadata": {"uid": "other"}}) == "dangling"  # re-created owner
    assert classify(ref, {"metadata": {"uid": "u1"}}) == "solid"
    waiting = {"metadata": {"uid": "u1", "deletionTimestamp": "2024-01-01T00:00:00Z",
                            "finalizers": ["foregroundDeletion"]}}
    assert classify(ref, waiting) == "waiting"


def test_owner_reference_and_finalizer_edits_copy() -> None:
    obj: Obj = {"metadata": {"ownerReferences": [{"uid": "a", "blockOwnerDeletion": True},
                                            {"uid": "b"}],
                        "finalizers": ["orphan", "x"]}}
    assert without_owner(obj, {"a"})["metadata"]["ownerReferences"] == [{"uid": "b"}]
    assert "ownerReferences" not in without_owner(obj, {"a", "b"})["metadata"]
    assert without_finalizer(obj, "orphan")["metadata"]["finalizers"] == ["x"]
    assert len(obj["metadata"]["ownerReferences"]) == 2  # input untouched
    assert blocks(obj, "a") and not blocks(obj, "b")
