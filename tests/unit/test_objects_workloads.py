"""Deployments and ReplicaSets: defaults, selector/template rules, strategy, updates, Scale."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dockyard.objects import deployment, replicaset
from dockyard.objects.scale import apply_scale, scale_of, validate_scale
from dockyard.objects.workload import scaled_value

pytestmark = pytest.mark.unit


def make_deployment(name: str = "web", **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    obj["spec"].update(spec)
    return obj


def defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    module = deployment if obj["kind"] == "Deployment" else replicaset
    module.apply_defaults(obj)
    return obj


def make_replicaset(name: str = "web-1") -> dict[str, Any]:
    obj = make_deployment(name)
    obj["kind"] = "ReplicaSet"
    return obj


def errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    module = deployment if obj["kind"] == "Deployment" else replicaset
    return [(e.field, e.type) for e in module.validate(obj)]


def test_deployment_defaults() -> None:
    spec = defaulted(make_deployment())["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert "tolerations" not in pod_spec  # admission defaults apply to pods, not templates


def test_recreate_gets_no_rolling_update() -> None:
    spec = defaulted(make_deployment(strategy={"type": "Recreate"}))["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_replicaset_defaults() -> None:
    spec = defaulted(make_replicaset())["spec"]
    assert spec["replicas"] == 1
    assert spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


@pytest.mark.parametrize("make", [make_deployment, make_replicaset])
def test_valid_workloads(make: Any) -> None:
    assert errors(defaulted(make())) == []


def mutated(make: Any, change: Any) -> dict[str, Any]:
    obj = defaulted(make())
    change(obj["spec"])
    return obj


WORKLOAD_CASES = [
    (lambda s: s.update(replicas=-1), ("spec.replicas", "FieldValueInvalid")),
    (lambda s: s.pop("selector"), ("spec.selector", "FieldValueRequired")),
    (lambda s: s.update(selector={}), ("spec.selector", "FieldValueInvalid")),
    (
        lambda s: s.update(selector={"matchLabels": {"app": "other"}}),
        ("spec.template.metadata.labels", "FieldValueInvalid"),
    ),
    (
        lambda s: s["template"]["spec"].update(restartPolicy="Never"),
        ("spec.template.spec.restartPolicy", "FieldValueNotSupported"),
    ),
    (
        lambda s: s["template"]["spec"]["containers"][0].update(name="Bad_Name"),
        ("spec.template.spec.containers[0].name", "FieldValueInvalid"),
    ),
    (lambda s: s.pop("template"), ("spec.template", "FieldValueRequired")),
    (lambda s: s.update(minReadySeconds=-5), ("spec.minReadySeconds", "FieldValueInvalid")),
]


@pytest.mark.parametrize("make", [make_deployment, make_replicaset])
@pytest.mark.parametrize(("change", "expected"), WORKLOAD_CASES)
def test_workload_errors(make: Any, change: Any, expected: tuple[str, str]) -> None:
    assert expected in errors(mutated(make, change))


def test_selector_mismatch_message() -> None:
    obj = mutated(make_deployment, lambda s: s.update(selector={"matchLabels": {"app": "x"}}))
    [err] = deployment.validate(obj)
    assert err.message.endswith("`selector` does not match template `labels`")


@pytest.mark.parametrize(
    ("rolling", "expected"),
    [
        (
            {"maxUnavailable": 0, "maxSurge": 0},
            ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
        ),
        (
            {"maxUnavailable": "0%", "maxSurge": 0},
            ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
        ),
        (
            {"maxUnavailable": "150%", "maxSurge": 1},
            ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
        ),
        (
            {"maxUnavailable": "abc", "maxSurge": 1},
            ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid"),
        ),
        (
            {"maxUnavailable": 1, "maxSurge": -1},
            ("spec.strategy.rollingUpdate.maxSurge", "FieldValueInvalid"),
        ),
    ],
)
def test_rolling_update_errors(rolling: dict[str, Any], expected: tuple[str, str]) -> None:
    obj = defaulted(make_deployment(strategy={"type": "RollingUpdate", "rollingUpdate": rolling}))
    assert expected in errors(obj)


def test_strategy_errors() -> None:
    bad = defaulted(make_deployment(strategy={"type": "Blue"}))
    assert ("spec.strategy.type", "FieldValueNotSupported") in errors(bad)
    recreate = make_deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    assert ("spec.strategy.rollingUpdate", "FieldValueForbidden") in errors(defaulted(recreate))


def test_progress_deadline_must_exceed_min_ready() -> None:
    obj = defaulted(make_deployment(minReadySeconds=30, progressDeadlineSeconds=30))
    assert ("spec.progressDeadlineSeconds", "FieldValueInvalid") in errors(obj)


@pytest.mark.parametrize(
    "module,make", [(deployment, make_deployment), (replicaset, make_replicaset)]
)
def test_selector_is_immutable(module: Any, make: Any) -> None:
    old = defaulted(make())
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": old["metadata"]["name"], "x": "y"}}
    new["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert [
        (e.field, e.message.endswith("field is immutable"))
        for e in module.validate_update(new, old)
    ] == [("spec.selector", True)]
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert module.validate_update(scaled, old) == []


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [
        ("25%", 10, True, 3),  # 2.5 rounds up
        ("25%", 10, False, 2),  # 2.5 rounds down
        (2, 10, True, 2),
        ("100%", 3, False, 3),
        ("0%", 3, True, 0),
    ],
)
def test_scaled_value(value: Any, total: int, up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up=up) == expected


def test_scale_view() -> None:
    obj = defaulted(make_deployment(replicas=3))
    obj["metadata"].update(uid="u1", resourceVersion="7")
    obj["status"] = {"replicas": 2}
    scale = scale_of(obj)
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
        "spec": {"replicas": 3},
        "status": {"replicas": 2, "selector": "app=web"},
    }
    assert validate_scale({"spec": {"replicas": -1}})[0].field == "spec.replicas"
    assert validate_scale({"spec": {}})[0].type == "FieldValueRequired"
    assert validate_scale({"spec": {"replicas": 5}}) == []
    apply_scale(obj, {"spec": {"replicas": 5}})
    assert obj["spec"]["replicas"] == 5


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "updatedReplicas": 3}, []),
        ({"replicas": -1}, [("status.replicas", "FieldValueInvalid")]),
        ({"replicas": 1, "readyReplicas": 2}, [("status.readyReplicas", "FieldValueInvalid")]),
        (
            {"replicas": 3, "readyReplicas": 1, "availableReplicas": 2},
            [("status.availableReplicas", "FieldValueInvalid")],
        ),
        ({"replicas": 1, "updatedReplicas": 2}, [("status.updatedReplicas", "FieldValueInvalid")]),
    ],
)
@pytest.mark.parametrize("make", [make_deployment, make_replicaset])
def test_status_counts(make: Any, status: dict[str, Any], expected: list[Any]) -> None:
    obj = defaulted(make())
    obj["status"] = status
    assert errors(obj) == expected


def test_status_count_message() -> None:
    obj = defaulted(make_replicaset())
    obj["status"] = {"replicas": 1, "readyReplicas": 2}
    [err] = replicaset.validate(obj)
    assert err.message == "Invalid value: 2: cannot be greater than status.replicas"


def test_template_may_not_set_an_active_deadline() -> None:
    obj = defaulted(make_replicaset())
    obj["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 30
    assert errors(obj) == [("spec.template.spec.activeDeadlineSeconds", "FieldValueForbidden")]
    obj = defaulted(make_replicaset())
    obj["status"] = {"replicas": 3, "readyReplicas": 1, "availableReplicas": 2}
    [err] = replicaset.validate(obj)
    assert err.message == "Invalid value: 2: cannot be greater than readyReplicas"
