"""Node and pod affinity, topology spread constraints: the shapes the scheduler relies on."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.objects.pod import apply_defaults, validate

pytestmark = pytest.mark.unit

REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"


def pod_with(**spec: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec},
    }
    apply_defaults(pod)
    return pod


def errors(pod: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in validate(pod)]


def node_affinity(*requirements: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeAffinity": {REQ: {"nodeSelectorTerms": [{"matchExpressions": list(requirements)}]}}
    }


TERM = f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchExpressions[0]"


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, []),
        ({"key": "gpu", "operator": "Exists"}, []),
        ({"key": "cores", "operator": "Gt", "values": ["4"]}, []),
        ({"key": "zone", "operator": "In"}, [(f"{TERM}.values", "FieldValueRequired")]),
        (
            {"key": "gpu", "operator": "Exists", "values": ["x"]},
            [(f"{TERM}.values", "FieldValueForbidden")],
        ),
        (
            {"key": "cores", "operator": "Gt", "values": ["many"]},
            [(f"{TERM}.values[0]", "FieldValueInvalid")],
        ),
        (
            {"key": "cores", "operator": "Lt", "values": ["1", "2"]},
            [(f"{TERM}.values", "FieldValueRequired")],
        ),
        (
            {"key": "zone", "operator": "Near", "values": ["a"]},
            [(f"{TERM}.operator", "FieldValueInvalid")],
        ),
        ({"key": "bad key", "operator": "Exists"}, [(f"{TERM}.key", "FieldValueInvalid")]),
    ],
)
def test_node_selector_requirements(requirement: dict[str, Any], expected: list[Any]) -> None:
    assert errors(pod_with(affinity=node_affinity(requirement))) == expected


def test_node_selector_needs_a_term_and_weights_are_bounded() -> None:
    empty = {"nodeAffinity": {REQ: {"nodeSelectorTerms": []}}}
    assert errors(pod_with(affinity=empty)) == [
        (f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms", "FieldValueRequired")
    ]
    preferred = {
        "nodeAffinity": {
            PREF: [
                {
                    "weight": 0,
                    "preference": {
                        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]
                    },
                }
            ]
        }
    }
    assert errors(pod_with(affinity=preferred)) == [
        (f"spec.affinity.nodeAffinity.{PREF}[0].weight", "FieldValueInvalid")
    ]


def test_match_fields_only_metadata_name() -> None:
    affinity = {
        "nodeAffinity": {
            REQ: {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "spec.unschedulable", "operator": "In", "values": ["n1"]}
                        ]
                    }
                ]
            }
        }
    }
    assert errors(pod_with(affinity=affinity)) == [
        (
            f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0].matchFields[0].key",
            "FieldValueNotSupported",
        )
    ]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        (
            {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": {"app": "web"}},
            },
            [],
        ),
        (
            {"labelSelector": {"matchLabels": {"app": "web"}}},
            [(f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey", "FieldValueRequired")],
        ),
        (
            {
                "topologyKey": "zone",
                "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]},
            },
            [
                (
                    f"spec.affinity.podAntiAffinity.{REQ}[0].labelSelector.matchExpressions[0].values",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            {"topologyKey": "zone", "namespaces": ["Bad_NS"]},
            [(f"spec.affinity.podAntiAffinity.{REQ}[0].namespaces[0]", "FieldValueInvalid")],
        ),
    ],
)
def test_pod_anti_affinity_terms(term: dict[str, Any], expected: list[Any]) -> None:
    assert errors(pod_with(affinity={"podAntiAffinity": {REQ: [term]}})) == expected


def test_preferred_pod_affinity() -> None:
    affinity = {"podAffinity": {PREF: [{"weight": 101, "podAffinityTerm": {"topologyKey": "z"}}]}}
    assert errors(pod_with(affinity=affinity)) == [
        (f"spec.affinity.podAffinity.{PREF}[0].weight", "FieldValueInvalid")
    ]


@pytest.mark.parametrize("kind", ["nodeAffinity", "podAffinity", "podAntiAffinity"])
def test_preferred_terms_must_be_objects(kind: str) -> None:
    assert errors(pod_with(affinity={kind: {PREF: ["heavy"]}})) == [
        (f"spec.affinity.{kind}.{PREF}[0]", "FieldValueTypeInvalid")
    ]


SPREAD = "spec.topologySpreadConstraints"


@pytest.mark.parametrize(
    ("constraints", "expected"),
    [
        (
            [
                {
                    "maxSkew": 1,
                    "topologyKey": "zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "web"}},
                }
            ],
            [],
        ),
        (
            [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}],
            [(f"{SPREAD}[0].maxSkew", "FieldValueInvalid")],
        ),
        (
            [{"maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"}],
            [(f"{SPREAD}[0].topologyKey", "FieldValueRequired")],
        ),
        (
            [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "Whenever"}],
            [(f"{SPREAD}[0].whenUnsatisfiable", "FieldValueNotSupported")],
        ),
        (
            [
                {
                    "maxSkew": 1,
                    "topologyKey": "zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "minDomains": 2,
                }
            ],
            [(f"{SPREAD}[0].minDomains", "FieldValueInvalid")],
        ),
        (
            [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}] * 2,
            [(f"{SPREAD}[1]", "FieldValueDuplicate")],
        ),
    ],
)
def test_topology_spread(constraints: list[Any], expected: list[Any]) -> None:
    assert errors(pod_with(topologySpreadConstraints=constraints)) == expected
