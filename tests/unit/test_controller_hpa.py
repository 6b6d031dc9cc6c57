"""HPA decisions: Kubernetes' replica calculator, stabilisation windows, scaling policies."""

from __future__ import annotations

import pytest

from dockyard.controllers.hpa import (
    History,
    MetricsError,
    PodSample,
    behavior_rules,
    limit_rate,
    pod_request,
    pod_usage,
    record_scale,
    replica_count,
    rescale_reason,
    scale_down_limit,
    scale_up_limit,
    spec_changed,
    stabilize,
)

pytestmark = pytest.mark.unit

UP = behavior_rules({}, "scaleUp", 300)
DOWN = behavior_rules({}, "scaleDown", 300)


def pods(*usages: float | None, request: float = 500) -> list[PodSample]:
    return [PodSample(f"p{i}", u, request) for i, u in enumerate(usages)]


def test_utilization_scales_up_by_ratio() -> None:
    # 4 pods × 400m of 500m = 80%; target 50% → ratio 1.6 → ceil(6.4) = 7
    assert replica_count(4, pods(400, 400, 400, 400), 50, True) == (7, 80)


def test_within_tolerance_nothing_changes() -> None:
    # 54% vs 50%: ratio 1.08, within 10%
    assert replica_count(4, pods(270, 270, 270, 270), 50, True) == (4, 54)


def test_scale_down() -> None:
    # 10% of request vs 50% → ratio 0.2 → ceil(0.8) = 1
    assert replica_count(4, pods(50, 50, 50, 50), 50, True)[0] == 1


def test_missing_metrics_count_as_full_request_on_scale_down() -> None:
    # 2 reporting at 10%: ratio 0.2 < 1 → the 2 silent pods assumed at 100%:
    # (50+50+500+500)/2000 = 55% → ratio 1.1 > 1: direction flipped → keep 4
    assert replica_count(4, pods(50, 50, None, None), 50, True)[0] == 4


def test_missing_metrics_count_as_zero_on_scale_up() -> None:
    # 2 reporting at 100%: ratio 2 → silent pods at 0: 1000/2000 = 50% → ratio 1.0 → keep
    assert replica_count(4, pods(500, 500, None, None), 50, True)[0] == 4
    # 2 reporting at 200% (1000m each): silent at 0 → 2000/2000 = 100% → ratio 2 → 8
    assert replica_count(4, pods(1000, 1000, None, None), 50, True)[0] == 8


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    samples = pods(1000, 1000, 1000)
    samples[2].unready = True
    # ready: 2000/1000 = 200% → ratio 4; with the unready at 0: 2000/1500 = 133% → 2.67 → 8
    assert replica_count(3, samples, 50, True)[0] == 8


def test_ignored_pods_do_not_count() -> None:
    samples = pods(400, 400, 5000)
    samples[2].ignored = True
    assert replica_count(2, samples, 50, True)[0] == 4  # 80% → 1.6 × 2 = 3.2 → 4


def test_average_value() -> None:
    # memory AverageValue 100Mi target, pods at 150Mi → ratio 1.5 → ceil(1.5 × 2) = 3
    mi = 1024 * 1024
    result = replica_count(2, [PodSample("a", 150 * mi, None), PodSample("b", 150 * mi, None)],
                           100 * mi, False)
    assert result == (3, 150 * mi)


def test_errors_name_the_problem() -> None:
    with pytest.raises(MetricsError, match="no pods"):
        replica_count(1, [], 50, True)
    with pytest.raises(MetricsError, match="did not receive metrics"):
        replica_count(1, pods(None), 50, True)
    with pytest.raises(MetricsError, match="missing request"):
        replica_count(1, [PodSample("a", 100, None)], 50, True)


def test_pod_requests_and_usage() -> None:
    pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "250m"}}},
                                   {"resources": {"requests": {"cpu": "1"}}}]}}
    assert pod_request(pod, "cpu") == 1250
    assert pod_request(pod, "memory") is None
    item = {"containers": [{"usage": {"cpu": "100m", "memory": "1Mi"}},
                           {"usage": {"cpu": "50m", "memory": "1Mi"}}]}
    assert pod_usage(item, "cpu") == 150
    assert pod_usage(item, "memory") == 2 * 1024 * 1024


def test_scale_down_is_stabilised_for_the_window() -> None:
    history = History()
    assert stabilize(history, 0, 8, 4, 0, 300) == 8  # up at once (window 0)
    # 100 s later the metric says 2, but 8 was recommended within 300 s: hold at current 4..8
    assert stabilize(history, 100, 2, 8, 0, 300) == 8
    assert stabilize(history, 350, 2, 8, 0, 300) == 2  # window passed the 8 (at t=0 and 100)


def test_scale_up_policies_default() -> None:
    # max(4 pods, 100%) per 15 s from 3 → max(7, 6) = 7
    assert scale_up_limit(3, [], UP, 0) == 7
    # 5 already added within the period: start 5 → max(9, 10) = 10
    assert scale_up_limit(10, [(10.0, 5)], UP, 20) == 10
    assert scale_up_limit(10, [(1.0, 5)], UP, 20) == 20  # outside the 15 s period


def test_scale_down_policies() -> None:
    assert scale_down_limit(10, [], DOWN, 0) == 0  # 100% per 15 s
    rules = {"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60},
                                                 {"type": "Percent", "value": 10,
                                                  "periodSeconds": 60}]}
    # Max change: min(10 - 1, int(10 × 0.9)) = 9
    assert scale_down_limit(10, [], rules, 0) == 9
    assert scale_down_limit(10, [], {**rules, "selectPolicy": "Disabled"}, 0) == 10


def test_limit_rate_and_bounds() -> None:
    history = History()
    assert limit_rate(20, 3, 1, 10, history, UP, DOWN, 0) == (
        7, "ScaleUpLimit",
        "the desired replica count is increasing faster than the maximum scale rate")
    assert limit_rate(20, 8, 1, 10, history, UP, DOWN, 0)[:2] == (10, "TooManyReplicas")
    assert limit_rate(0, 5, 2, 10, history, UP, DOWN, 0)[:2] == (2, "TooFewReplicas")
    assert limit_rate(5, 5, 2, 10, history, UP, DOWN, 0)[:2] == (5, "DesiredWithinRange")


def test_behavior_defaults_and_overrides() -> None:
    assert DOWN["stabilizationWindowSeconds"] == 300
    assert UP["stabilizationWindowSeconds"] == 0
    custom = behavior_rules({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
                            "scaleDown", 300)
    assert custom["stabilizationWindowSeconds"] == 5
    assert custom["policies"] == DOWN["policies"]


def test_record_scale_keeps_events_by_direction() -> None:
    history = History()
    record_scale(history, 2, 5, 0)
    record_scale(history, 5, 4, 1)
    assert history.scale_up == [(0, 3)] and history.scale_down == [(1, 1)]


def test_rescale_reasons_in_kubernetes_words() -> None:
    cpu = "cpu resource utilization (percentage of request)"
    assert f"New size: 3; reason: {rescale_reason(cpu, 3, 1)}" == \
        "New size: 3; reason: cpu resource utilization (percentage of request) above target"
    assert rescale_reason("memory resource", 4, 2) == "memory resource above target"
    assert rescale_reason(cpu, 1, 3) == "All metrics below target"


def test_only_a_spec_change_asks_for_an_evaluation_now() -> None:
    hpa = {"metadata": {"name": "h", "resourceVersion": "1"},
           "spec": {"minReplicas": 1, "maxReplicas": 3}, "status": {"desiredReplicas": 1}}
    status_write = {**hpa, "metadata": {"name": "h", "resourceVersion": "2"},
                    "status": {"desiredReplicas": 3}}
    assert not spec_changed(hpa, status_write)
    assert spec_changed(hpa, {**hpa, "spec": {"minReplicas": 1, "maxReplicas": 5}})
