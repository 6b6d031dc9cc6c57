"""Services: defaults, validation, clusterIP immutability and allocation helpers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dockyard.objects.service import (
    apply_defaults,
    assign_cluster_ip,
    needs_cluster_ip,
    next_free_ip,
    next_free_node_port,
    ports_needing_node_ports,
    validate,
    validate_update,
)

pytestmark = pytest.mark.unit


def make_service(name: str = "web", **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
    }
    obj["spec"].update(spec)
    apply_defaults(obj)
    return obj


def errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in validate(obj)]


def test_defaults() -> None:
    spec = make_service()["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert "externalTrafficPolicy" not in spec
    node_port = make_service(type="NodePort")["spec"]
    assert node_port["externalTrafficPolicy"] == "Cluster"
    assert make_service(clusterIP="10.96.0.9")["spec"]["clusterIPs"] == ["10.96.0.9"]


def test_valid_services() -> None:
    assert errors(make_service()) == []
    assert errors(make_service(clusterIP="None", ports=[])) == []
    assert errors(make_service(type="ExternalName", externalName="db.example.com", ports=[])) == []
    two = make_service(
        ports=[{"name": "http", "port": 80}, {"name": "https", "port": 443, "targetPort": "https"}]
    )
    assert errors(two) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"type": "Magic"}, ("spec.type", "FieldValueNotSupported")),
        ({"ports": []}, ("spec.ports", "FieldValueRequired")),
        ({"ports": [{"port": 0}]}, ("spec.ports[0].port", "FieldValueInvalid")),
        (
            {"ports": [{"port": 80, "protocol": "HTTP"}]},
            ("spec.ports[0].protocol", "FieldValueNotSupported"),
        ),
        (
            {"ports": [{"port": 80}, {"name": "b", "port": 81}]},
            ("spec.ports[0].name", "FieldValueRequired"),
        ),
        (
            {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
            ("spec.ports[1].name", "FieldValueDuplicate"),
        ),
        (
            {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
            ("spec.ports[1]", "FieldValueDuplicate"),
        ),
        (
            {"ports": [{"port": 80, "targetPort": 70000}]},
            ("spec.ports[0].targetPort", "FieldValueInvalid"),
        ),
        (
            {"ports": [{"port": 80, "targetPort": "80"}]},  # a string is a name, as Kubernetes
            ("spec.ports[0].targetPort", "FieldValueInvalid"),
        ),
        (
            {"ports": [{"port": 80, "nodePort": 30080}]},
            ("spec.ports[0].nodePort", "FieldValueForbidden"),
        ),
        (
            {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]},
            ("spec.ports[0].nodePort", "FieldValueInvalid"),
        ),
        ({"sessionAffinity": "Sticky"}, ("spec.sessionAffinity", "FieldValueNotSupported")),
        ({"clusterIP": "not-an-ip"}, ("spec.clusterIP", "FieldValueInvalid")),
        ({"selector": {"app": "-x"}}, ("spec.selector", "FieldValueInvalid")),
        ({"type": "ExternalName", "ports": []}, ("spec.externalName", "FieldValueRequired")),
        (
            {"type": "ExternalName", "externalName": "x.example.com", "clusterIP": "10.96.0.1"},
            ("spec.clusterIP", "FieldValueForbidden"),
        ),
        ({"type": "NodePort", "clusterIP": "None"}, ("spec.clusterIP", "FieldValueInvalid")),
    ],
)
def test_errors(spec: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in errors(make_service(**spec))


def test_service_names_are_dns1035_labels() -> None:
    [err] = validate(make_service("1web"))
    assert err.field == "metadata.name"
    assert "DNS-1035 label" in err.message


def test_node_port_out_of_range_message() -> None:
    obj = make_service(type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    [err] = validate(obj)
    assert err.message.endswith("The range of valid ports is 30000-32767")


def test_cluster_ip_may_not_change_once_set() -> None:
    old = make_service(clusterIP="10.96.0.5")
    new = copy.deepcopy(old)
    new["spec"]["clusterIP"] = "10.96.0.6"
    assert [e.field for e in validate_update(new, old)] == ["spec.clusterIPs[0]"]
    assert validate_update(copy.deepcopy(old), old) == []
    external = make_service(type="ExternalName", externalName="x.example.com", ports=[])
    assert validate_update(external, old) == []


def test_allocation_helpers() -> None:
    # 10.96.0.1 is reserved for the "kubernetes" service; .2 is taken
    assert next_free_ip("10.96.0.0/24", ["10.96.0.2"]) == "10.96.0.3"
    assert next_free_ip("10.96.0.0/30", ["10.96.0.2"]) is None
    assert next_free_node_port([30000, 30001]) == 30002
    assert next_free_node_port([1, 2], (1, 2)) is None


def test_allocation_steps_for_the_server() -> None:
    svc = make_service(
        type="NodePort", ports=[{"port": 80}, {"name": "b", "port": 81, "nodePort": 30001}]
    )
    svc["spec"]["ports"][0]["name"] = "a"
    assert needs_cluster_ip(svc)
    assign_cluster_ip(svc, "10.96.0.7")
    assert not needs_cluster_ip(svc)
    assert svc["spec"]["clusterIPs"] == ["10.96.0.7"]
    missing = ports_needing_node_ports(svc)
    assert [p["port"] for p in missing] == [80]
    missing[0]["nodePort"] = 30002
    assert validate(svc) == []
    assert not needs_cluster_ip(make_service(clusterIP="None"))
    assert not needs_cluster_ip(make_service(type="ExternalName", externalName="x.example.com"))
    assert ports_needing_node_ports(make_service()) == []
