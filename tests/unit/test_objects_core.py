"""Namespaces, nodes, endpoints, events, configmaps, secrets, leases, HPAs, PDBs, priorities."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from dockyard.objects import (
    configmap,
    endpoints,
    event,
    hpa,
    lease,
    namespace,
    node,
    pdb,
    priorityclass,
    secret,
)
from dockyard.objects.kinds import handlers_for

pytestmark = pytest.mark.unit


def obj(kind: str, name: str = "x", ns: str | None = "default", **body: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    result = {"kind": kind, "metadata": meta, **body}
    handlers_for(kind).apply_defaults(result)
    return result


def errors(o: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in handlers_for(o["kind"]).validate(o)]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --- namespaces ----------------------------------------------------------------------------


def test_namespace_defaults_and_name_rule() -> None:
    ns = obj("Namespace", "team-a", None)
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert errors(ns) == []
    assert errors(obj("Namespace", "team.a", None)) == [("metadata.name", "FieldValueInvalid")]
    assert errors(obj("Namespace", "a", "default")) == [
        ("metadata.namespace", "FieldValueForbidden")
    ]
    assert namespace.initial_status(ns) == {"phase": "Active"}


# --- nodes ---------------------------------------------------------------------------------


def test_node_allocatable_defaults_to_capacity() -> None:
    n = obj("Node", "n1", None, status={"capacity": {"cpu": "2", "memory": "4Gi"}})
    assert n["status"]["allocatable"] == {"cpu": "2", "memory": "4Gi"}
    assert errors(n) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"taints": [{"key": "k", "effect": "Sometimes"}]},
            ("spec.taints[0].effect", "FieldValueNotSupported"),
        ),
        ({"taints": [{"key": "k"}]}, ("spec.taints[0].effect", "FieldValueRequired")),
        (
            {
                "taints": [
                    {"key": "k", "effect": "NoSchedule"},
                    {"key": "k", "effect": "NoSchedule"},
                ]
            },
            ("spec.taints[1]", "FieldValueDuplicate"),
        ),
        ({"podCIDR": "10.0.0.0/33"}, ("spec.podCIDR", "FieldValueInvalid")),
        ({"unschedulable": "yes"}, ("spec.unschedulable", "FieldValueTypeInvalid")),
    ],
)
def test_node_errors(spec: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in errors(obj("Node", "n1", None, spec=spec))


def test_node_pod_cidr_set_once_and_readiness() -> None:
    old = obj("Node", "n1", None, spec={"podCIDR": "10.244.1.0/24"})
    new = copy.deepcopy(old)
    new["spec"]["podCIDR"] = "10.244.2.0/24"
    assert [e.field for e in node.validate_update(new, old)] == ["spec.podCIDR"]
    assert not node.is_node_ready(old)
    old["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert node.is_node_ready(old)


# --- endpoints -----------------------------------------------------------------------------


def test_endpoints() -> None:
    good = obj(
        "Endpoints", "web", subsets=[{"addresses": [{"ip": "10.244.0.5"}], "ports": [{"port": 80}]}]
    )
    assert good["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert errors(good) == []
    bad = obj(
        "Endpoints",
        "web",
        subsets=[{"addresses": [{"ip": "999.1.1.1"}], "ports": [{"port": 0, "protocol": "XTP"}]}],
    )
    assert errors(bad) == [
        ("subsets[0].addresses[0].ip", "FieldValueInvalid"),
        ("subsets[0].ports[0].port", "FieldValueInvalid"),
        ("subsets[0].ports[0].protocol", "FieldValueNotSupported"),
    ]
    assert endpoints.validate_update(good, good) == []


# --- events --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "involved", "kind", "expected"),
    [
        ("default", {"kind": "Pod", "name": "p", "namespace": "default"}, "Normal", []),
        ("default", {"kind": "Node", "name": "n1"}, "Warning", []),
        (
            "team",
            {"kind": "Node", "name": "n1"},
            "Normal",
            [("involvedObject.namespace", "FieldValueInvalid")],
        ),
        (
            "team",
            {"kind": "Pod", "name": "p", "namespace": "other"},
            "Normal",
            [("involvedObject.namespace", "FieldValueInvalid")],
        ),
        (
            "default",
            {"kind": "Pod", "name": "p", "namespace": "default"},
            "Loud",
            [("type", "FieldValueNotSupported")],
        ),
    ],
)
def test_events(ns: str, involved: dict[str, Any], kind: str, expected: list[Any]) -> None:
    e = obj("Event", "e1", ns, involvedObject=involved, type=kind, reason="R")
    assert errors(e) == expected
    assert event.validate_update(e, e) == []  # update rules only; validate() covers the rest


# --- configmaps and secrets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"a.conf": "x", "B_KEY": "y"}}, []),
        ({"data": {"bad/key": "x"}}, [("data", "FieldValueInvalid")]),
        ({"data": {"..": "x"}}, [("data", "FieldValueInvalid")]),
        ({"data": {"a": 1}}, [("data[a]", "FieldValueTypeInvalid")]),
        ({"binaryData": {"b": "not base64!"}}, [("binaryData[b]", "FieldValueInvalid")]),
        ({"data": {"a": "x"}, "binaryData": {"a": b64("y")}}, [("data", "FieldValueInvalid")]),
        ({"data": {"a": "x" * (1024 * 1024)}}, [("", "FieldValueTooLong")]),
    ],
)
def test_configmaps(body: dict[str, Any], expected: list[Any]) -> None:
    assert errors(obj("ConfigMap", "c", **body)) == expected


def test_immutable_configmap_keeps_data() -> None:
    old = obj("ConfigMap", "c", data={"a": "1"}, immutable=True)
    new = copy.deepcopy(old)
    new["data"]["a"] = "2"
    assert [e.field for e in configmap.validate_update(new, old)] == ["data"]
    unset = copy.deepcopy(old)
    unset["immutable"] = False
    assert [e.field for e in configmap.validate_update(unset, old)] == ["immutable"]
    mutable = obj("ConfigMap", "c", data={"a": "1"})
    changed = copy.deepcopy(mutable)
    changed["data"]["a"] = "2"
    assert configmap.validate_update(changed, mutable) == []


def test_secret_defaults_fold_string_data() -> None:
    s = obj("Secret", "s", data={"a": b64("1")}, stringData={"b": "two"})
    assert s["type"] == "Opaque"
    assert s["data"] == {"a": b64("1"), "b": b64("two")}
    assert "stringData" not in s
    assert errors(s) == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": {"a": "%%%"}}, [("data[a]", "FieldValueInvalid")]),
        ({"data": {"bad key": b64("x")}}, [("data", "FieldValueInvalid")]),
        (
            {"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}},
            [("data[tls.key]", "FieldValueRequired")],
        ),
        (
            {"type": "kubernetes.io/dockerconfigjson", "data": {}},
            [("data[.dockerconfigjson]", "FieldValueRequired")],
        ),
        ({"stringData": {"a": 1}}, [("stringData", "FieldValueTypeInvalid")]),
    ],
)
def test_secret_errors(body: dict[str, Any], expected: list[Any]) -> None:
    assert errors(obj("Secret", "s", **body)) == expected


def test_secret_type_is_immutable() -> None:
    old = obj("Secret", "s", data={})
    new = copy.deepcopy(old)
    new["type"] = "example.com/custom"
    assert [e.field for e in secret.validate_update(new, old)] == ["type"]


# --- leases --------------------------------------------------------------------------------


def test_leases() -> None:
    good = obj(
        "Lease",
        "n1",
        "kube-node-lease",
        spec={
            "holderIdentity": "n1",
            "leaseDurationSeconds": 40,
            "renewTime": "2024-01-01T00:00:00.123456Z",
        },
    )
    assert errors(good) == []
    bad = obj(
        "Lease",
        "n1",
        spec={"leaseDurationSeconds": 0, "leaseTransitions": -1, "renewTime": "yesterday"},
    )
    assert errors(bad) == [
        ("spec.leaseDurationSeconds", "FieldValueInvalid"),
        ("spec.leaseTransitions", "FieldValueInvalid"),
        ("spec.renewTime", "FieldValueInvalid"),
    ]
    assert lease.validate_update(good, good) == []


# --- horizontal pod autoscalers ------------------------------------------------------------

TARGET = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def test_hpa_defaults() -> None:
    h = obj(
        "HorizontalPodAutoscaler",
        "web",
        spec={
            "scaleTargetRef": TARGET,
            "maxReplicas": 5,
            "behavior": {"scaleDown": {"selectPolicy": "Min"}},
        },
    )
    spec = h["spec"]
    assert spec["minReplicas"] == 1
    assert spec["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]
    assert spec["behavior"]["scaleDown"]["selectPolicy"] == "Min"
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert spec["behavior"]["scaleUp"]["policies"][0] == {
        "type": "Pods",
        "value": 4,
        "periodSeconds": 15,
    }
    assert errors(h) == []
    plain = obj("HorizontalPodAutoscaler", "w", spec={"scaleTargetRef": TARGET, "maxReplicas": 2})
    assert "behavior" not in plain["spec"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"scaleTargetRef": {"kind": "Deployment"}, "maxReplicas": 3},
            ("spec.scaleTargetRef.name", "FieldValueRequired"),
        ),
        (
            {"scaleTargetRef": TARGET, "minReplicas": 0, "maxReplicas": 3},
            ("spec.minReplicas", "FieldValueInvalid"),
        ),
        (
            {"scaleTargetRef": TARGET, "minReplicas": 4, "maxReplicas": 3},
            ("spec.maxReplicas", "FieldValueInvalid"),
        ),
        ({"scaleTargetRef": TARGET}, ("spec.maxReplicas", "FieldValueRequired")),
        (
            {"scaleTargetRef": TARGET, "maxReplicas": 3, "metrics": [{"type": "Magic"}]},
            ("spec.metrics[0].type", "FieldValueNotSupported"),
        ),
        (
            {
                "scaleTargetRef": TARGET,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {"name": "cpu", "target": {"type": "Utilization"}},
                    }
                ],
            },
            ("spec.metrics[0].resource.target.averageUtilization", "FieldValueInvalid"),
        ),
        (
            {
                "scaleTargetRef": TARGET,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "memory",
                            "target": {"type": "AverageValue", "averageValue": "lots"},
                        },
                    }
                ],
            },
            ("spec.metrics[0].resource.target.averageValue", "FieldValueInvalid"),
        ),
    ],
)
def test_hpa_errors(spec: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in errors(obj("HorizontalPodAutoscaler", "web", spec=spec))
    assert hpa.DEFAULT_CPU_UTILIZATION == 80


# --- pod disruption budgets ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}, []),
        ({"maxUnavailable": "50%"}, []),
        ({"minAvailable": 1, "maxUnavailable": 1}, [("spec", "FieldValueInvalid")]),
        ({"minAvailable": "120%"}, [("spec.minAvailable", "FieldValueInvalid")]),
        ({"maxUnavailable": -1}, [("spec.maxUnavailable", "FieldValueInvalid")]),
        (
            {"selector": {"matchLabels": {"a": "-"}}},
            [("spec.selector.matchLabels", "FieldValueInvalid")],
        ),
    ],
)
def test_pdbs(spec: dict[str, Any], expected: list[Any]) -> None:
    p = obj("PodDisruptionBudget", "web", spec=spec)
    assert errors(p) == expected
    assert pdb.initial_status(p) == {
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    }


# --- priority classes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body", "expected"),
    [
        ("high", {"value": 1000}, []),
        ("system-node-critical", {"value": 2000001000}, []),
        ("high", {}, [("value", "FieldValueRequired")]),
        ("high", {"value": 2_000_000_000}, [("value", "FieldValueForbidden")]),
        ("system-mine", {"value": 5}, [("metadata.name", "FieldValueInvalid")]),
        (
            "high",
            {"value": 1, "preemptionPolicy": "Sometimes"},
            [("preemptionPolicy", "FieldValueNotSupported")],
        ),
    ],
)
def test_priority_classes(name: str, body: dict[str, Any], expected: list[Any]) -> None:
    pc = obj("PriorityClass", name, None, **body)
    assert pc["preemptionPolicy"] in ("PreemptLowerPriority", "Sometimes")
    assert errors(pc) == expected


def test_priority_value_is_fixed() -> None:
    old = obj("PriorityClass", "high", None, value=10)
    new = copy.deepcopy(old)
    new["value"] = 11
    assert [e.field for e in priorityclass.validate_update(new, old)] == ["value"]


def test_hpa_names_need_only_be_path_segments() -> None:
    spec = {"scaleTargetRef": TARGET, "maxReplicas": 2}
    assert errors(obj("HorizontalPodAutoscaler", "My_HPA", spec=spec)) == []
    assert errors(obj("HorizontalPodAutoscaler", "a/b", spec=spec)) == [
        ("metadata.name", "FieldValueInvalid")
    ]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (
            {"selectPolicy": "Sometimes"},
            [("spec.behavior.scaleUp.selectPolicy", "FieldValueNotSupported")],
        ),
        (
            {"stabilizationWindowSeconds": 4000},
            [("spec.behavior.scaleUp.stabilizationWindowSeconds", "FieldValueInvalid")],
        ),
        (
            {"policies": [{"type": "Nodes", "value": 0, "periodSeconds": 0}]},
            [
                ("spec.behavior.scaleUp.policies[0].type", "FieldValueNotSupported"),
                ("spec.behavior.scaleUp.policies[0].value", "FieldValueInvalid"),
                ("spec.behavior.scaleUp.policies[0].periodSeconds", "FieldValueInvalid"),
            ],
        ),
        ({"policies": []}, [("spec.behavior.scaleUp.policies", "FieldValueRequired")]),
    ],
)
def test_hpa_behavior_errors(rules: dict[str, Any], expected: list[Any]) -> None:
    h = obj(
        "HorizontalPodAutoscaler",
        "web",
        spec={"scaleTargetRef": TARGET, "maxReplicas": 3, "behavior": {"scaleUp": rules}},
    )
    assert errors(h) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}],
            },
            [],
        ),
        (
            {"capacity": {"cpu": "two"}},
            [
                ("status.capacity[cpu]", "FieldValueInvalid"),
                ("status.allocatable[cpu]", "FieldValueInvalid"),
            ],
        ),
        ({"allocatable": {"memory": "-1"}}, [("status.allocatable[memory]", "FieldValueInvalid")]),
        (
            {"conditions": [{"type": "Ready", "status": "Yes"}]},
            [("status.conditions[0].status", "FieldValueNotSupported")],
        ),
        (
            {"addresses": [{"type": "PublicIP", "address": "x"}]},
            [("status.addresses[0].type", "FieldValueNotSupported")],
        ),
    ],
)
def test_node_status(status: dict[str, Any], expected: list[Any]) -> None:
    assert errors(obj("Node", "n1", None, status=status)) == expected
