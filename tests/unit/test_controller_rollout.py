"""Deployment rollout arithmetic: templates and hashes, surge/unavailable, scaling plans,
proportional scaling, status conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dockyard.controllers import rollout as ro

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def template(image: str = "nginx:1.25") -> Obj:
    return {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": image}]}}


def spec(replicas: int, surge: Any = "25%", unavailable: Any = "25%",
         strategy: str = "RollingUpdate") -> Obj:
    d: Obj = {"spec": {"replicas": replicas, "template": template(),
                  "strategy": {"type": strategy}}}
    if strategy == "RollingUpdate":
        d["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": surge,
                                                  "maxUnavailable": unavailable}
    return ro.defaulted_spec(d)


def rs(name: str, replicas: int, available: int = 0, created: str = "2024-01-01T00:00:00Z",
       revision: int | None = None, **status: int) -> Obj:
    obj: Obj = {"metadata": {"name": name, "creationTimestamp": created, "annotations": {}},
                "spec": {"replicas": replicas, "template": template(name)},
                "status": {"replicas": replicas, "availableReplicas": available, **status}}
    if revision is not None:
        obj["metadata"]["annotations"][ro.REVISION] = str(revision)
    return obj


# --- templates and hashes ------------------------------------------------------------------


def test_undo_shaped_template_equals_original() -> None:
    # What `kubectl rollout undo` sends back: the RS template with zero values and the hash.
    undo = {"metadata": {"creationTimestamp": None,
                         "labels": {"app": "web", ro.POD_TEMPLATE_HASH: "abc"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25", "resources": {},
                                     "terminationMessagePath": "/dev/termination-log",
                                     "terminationMessagePolicy": "File",
                                     "imagePullPolicy": "IfNotPresent"}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
                     "terminationGracePeriodSeconds": 30, "securityContext": {},
                     "schedulerName": "default-scheduler"}}
    assert ro.templates_equal(template(), undo)
    assert ro.template_hash(template()) == ro.template_hash(undo)


def test_template_changes_change_the_hash() -> None:
    base = ro.template_hash(template())
    assert ro.template_hash(template("nginx:1.26")) != base
    restarted = template()
    restarted["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/restartedAt": "2024-05-01T12:00:00Z"}
    assert ro.template_hash(restarted) != base
    assert ro.template_hash(template(), collision_count=1) != base


def test_template_hash_is_stable_and_safe() -> None:
    a = {"spec": {"containers": [{"image": "x", "name": "c"}]}, "metadata": {"labels": {"k": "v"}}}
    b = {"metadata": {"labels": {"k": "v"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    assert ro.template_hash(a) == ro.template_hash(b)  # key order does not matter
    value = ro.template_hash(a)
    assert value and set(value) <= set(ro.SAFE_ALPHABET)
    assert ro.template_hash(a) == value  # deterministic across calls (and processes: sha256)


def test_normalize_keeps_real_values() -> None:
    t = template()
    t["spec"]["containers"][0]["env"] = [{"name": "A", "value": ""}, {"name": "B", "value": "0"}]
    norm = ro.normalize_template(t)
    assert norm["spec"]["containers"][0]["env"] == [{"name": "A"}, {"name": "B", "value": "0"}]
    assert norm["spec"]["terminationGracePeriodSeconds"] == 30  # defaults filled, not pruned


# --- fenceposts ----------------------------------------------------------------------------


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expected"), [
    (3, "25%", "25%", (1, 0)),     # 0.75 → surge up 1, unavailable down 0
    (4, "25%", "25%", (1, 1)),
    (10, "25%", "25%", (3, 2)),    # 2.5 → 3 up, 2 down
    (10, 2, 0, (2, 0)),
    (10, "0%", "0%", (0, 1)),      # both 0: unavailable becomes 1
    (5, "50%", 1, (3, 1)),
])
def test_fenceposts_round_surge_up_unavailable_down(replicas: int, surge: Any,
                                                    unavailable: Any,
                                                    expected: tuple[int, int]) -> None:
    assert ro.fenceposts(spec(replicas, surge, unavailable)) == expected


def test_recreate_has_no_surge_or_unavailability() -> None:
    s = spec(3, strategy="Recreate")
    assert ro.fenceposts(s) == (0, 0)
    assert ro.max_unavailable(s) == 0


def test_defaults_match_kubernetes() -> None:
    s = ro.defaulted_spec({"spec": {}})
    assert s["replicas"] == 1
    assert s["revisionHistoryLimit"] == 10
    assert s["progressDeadlineSeconds"] == 600
    assert s["strategy"] == {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}


def test_bad_int_or_string_is_refused() -> None:
    with pytest.raises(ValueError, match="IntOrString"):
        ro.scaled_value("lots", 10, True)


# --- rolling update steps ------------------------------------------------------------------


def test_new_rs_grows_within_surge() -> None:
    s = spec(10)  # surge 3
    old = rs("old", 10, 10)
    assert ro.new_rs_replicas(s, [old], None) == 3  # 13 - 10
    new = rs("new", 3)
    assert ro.new_rs_replicas(s, [old, new], new) == 3  # at 13 already
    old_after = rs("old", 8, 8)
    assert ro.new_rs_replicas(s, [old_after, new], new) == 5  # 13 - 11 = 2 more


def test_recreate_new_rs_gets_all_replicas() -> None:
    assert ro.new_rs_replicas(spec(4, strategy="Recreate"), [], None) == 4


def test_unready_new_pods_stop_the_rollout_and_keep_old_serving() -> None:
    s = spec(3)  # surge 1, unavailable 0
    old, new = rs("old", 3, 3), rs("new", 1, 0)
    # all 4, minAvailable 3, new unavailable 1 → may scale down 4 - 3 - 1 = 0
    assert ro.old_rs_targets(s, [old], new) == {}


def test_ready_new_pods_let_old_ones_go() -> None:
    s = spec(3)
    old, new = rs("old", 3, 3), rs("new", 1, 1)
    # all 4, minAvailable 3, new unavailable 0 → 1; available 4 > 3 → scale old down by 1
    assert ro.old_rs_targets(s, [old], new) == {"old": 2}


def test_unhealthy_old_pods_go_first() -> None:
    s = spec(4)  # surge 1, unavailable 1
    older = rs("older", 2, 0, created="2024-01-01T00:00:00Z")
    old = rs("old", 2, 2, created="2024-01-02T00:00:00Z")
    new = rs("new", 1, 0, created="2024-01-03T00:00:00Z")
    # all 5, minAvailable 3, new unavailable 1 → 1; cleanup: "older" has 2 unhealthy → cut 1;
    # then available 2 ≤ minAvailable 3: no more.
    assert ro.old_rs_targets(s, [older, old], new) == {"older": 1}


# --- proportional scaling ------------------------------------------------------------------


def test_only_active_rs_takes_all_replicas() -> None:
    new, old = rs("new", 0), rs("old", 3)
    assert ro.find_active_or_latest(new, [old]) is old
    latest = ro.find_active_or_latest(rs("new", 0), [rs("old", 0)])
    assert latest is not None and latest["metadata"]["name"] == "new"
    assert ro.find_active_or_latest(rs("new", 2), [rs("old", 3)]) is None


def test_proportional_scaling_during_rollout() -> None:
    s = spec(15, surge=3, unavailable=2)
    old = rs("old", 8, created="2024-01-01T00:00:00Z")
    new = rs("new", 5, created="2024-01-02T00:00:00Z")
    for r in (old, new):
        r["metadata"]["annotations"][ro.MAX_REPLICAS] = "13"
    # allowed 18, to add 5: old round(8*18/13)=11 (+3), new round(5*18/13)=7 (+2)
    assert ro.proportional_targets(s, 13, [old, new]) == {"old": 11, "new": 7}


def test_proportional_scale_down_to_zero() -> None:
    s = spec(0)
    assert ro.proportional_targets(s, 6, [rs("a", 4), rs("b", 2)]) == {"a": 0, "b": 0}


# --- status and conditions -----------------------------------------------------------------


def test_status_sums_replica_sets_and_sets_available() -> None:
    d = {"metadata": {"generation": 2}, "status": {}}
    s = spec(4)  # maxUnavailable 1 → Available needs 3
    new = rs("new", 2, 2, readyReplicas=2)
    old = rs("old", 2, 1, readyReplicas=1)
    status = ro.calculate_status(d, s, [new, old], new, NOW)
    assert {k: status[k] for k in ("replicas", "updatedReplicas", "readyReplicas",
                                   "availableReplicas", "unavailableReplicas",
                                   "observedGeneration")} == {
        "replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3,
        "unavailableReplicas": 1, "observedGeneration": 2}
    cond = ro.get_condition(status, "Available")
    assert cond is not None and cond["status"] == "True"


def test_set_condition_keeps_times_when_nothing_changes() -> None:
    status: Obj = {}
    ro.set_condition(status, ro.condition("Available", "True", "A", "m", NOW))
    later = NOW + timedelta(minutes=5)
    ro.set_condition(status, ro.condition("Available", "True", "A", "m", later))
    assert status["conditions"][0]["lastUpdateTime"] == "2024-05-01T12:00:00Z"
    ro.set_condition(status, ro.condition("Available", "True", "B", "m", later))
    cond = status["conditions"][0]
    assert (cond["reason"], cond["lastTransitionTime"], cond["lastUpdateTime"]) == (
        "B", "2024-05-01T12:00:00Z", "2024-05-01T12:05:00Z")


def test_complete_progressing_and_timed_out() -> None:
    s = spec(3)
    s["progressDeadlineSeconds"] = 60
    done = {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "observedGeneration": 5}
    assert ro.deployment_complete(s, 5, done)
    assert not ro.deployment_complete(s, 6, done)  # a newer spec not observed yet
    assert ro.deployment_progressing({"replicas": 4, "updatedReplicas": 1},
                                     {"replicas": 4, "updatedReplicas": 2})
    assert not ro.deployment_progressing({"replicas": 4, "updatedReplicas": 1},
                                         {"replicas": 4, "updatedReplicas": 1})
    status: Obj = {}
    ro.set_condition(status, ro.condition("Progressing", "True", ro.RS_UPDATED, "m", NOW))
    assert not ro.deployment_timed_out(s, status, NOW + timedelta(seconds=60))
    assert ro.deployment_timed_out(s, status, NOW + timedelta(seconds=61))
    assert ro.seconds_to_deadline(s, status, NOW) == pytest.approx(61.0)


def test_revisions() -> None:
    rss = [rs("a", 0, revision=1), rs("b", 0, revision=3), rs("c", 0)]
    assert ro.max_revision(rss) == 3
    assert ro.revision_of(rss[2]) == 0
    found = ro.find_new_replica_set(template("b"), rss)
    assert found is not None and found["metadata"]["name"] == "b"
