"""Volume sources, paths that must stay inside a volume, and downward API references."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.objects.pod import apply_defaults, validate
from dockyard.objects.validation import FieldError
from dockyard.objects.volumes import object_items

pytestmark = pytest.mark.unit


def pod_with(volumes: list[Any] | None = None, **container: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "app", "image": "busybox", **container}],
            "volumes": volumes or [],
        },
    }
    apply_defaults(pod)
    return pod


def errors(pod: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in validate(pod)]


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        ({"name": "v", "emptyDir": {}}, []),
        ({"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}, []),
        (
            {"name": "v", "emptyDir": {"medium": "Disk"}},
            [("spec.volumes[0].emptyDir.medium", "FieldValueNotSupported")],
        ),
        (
            {"name": "v", "emptyDir": {"sizeLimit": "big"}},
            [("spec.volumes[0].emptyDir.sizeLimit", "FieldValueInvalid")],
        ),
        ({"name": "v", "hostPath": {"path": "/var/log", "type": "Directory"}}, []),
        ({"name": "v", "hostPath": {}}, [("spec.volumes[0].hostPath.path", "FieldValueRequired")]),
        (
            {"name": "v", "hostPath": {"path": "/var/../etc"}},
            [("spec.volumes[0].hostPath.path", "FieldValueInvalid")],
        ),
        (
            {"name": "v", "hostPath": {"path": "/x", "type": "Folder"}},
            [("spec.volumes[0].hostPath.type", "FieldValueNotSupported")],
        ),
        ({"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "conf/a"}]}}, []),
        (
            {"name": "v", "configMap": {}},
            [("spec.volumes[0].configMap.name", "FieldValueRequired")],
        ),
        (
            {"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "/etc/a"}]}},
            [("spec.volumes[0].configMap.items[0].path", "FieldValueInvalid")],
        ),
        (
            {"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "../a"}]}},
            [("spec.volumes[0].configMap.items[0].path", "FieldValueInvalid")],
        ),
        (
            {"name": "v", "configMap": {"name": "c", "defaultMode": 0o1777}},
            [("spec.volumes[0].configMap.defaultMode", "FieldValueInvalid")],
        ),
        ({"name": "v", "secret": {"secretName": "s"}}, []),
        (
            {"name": "v", "secret": {"items": [{"key": "bad key", "path": "k"}]}},
            [
                ("spec.volumes[0].secret.secretName", "FieldValueRequired"),
                ("spec.volumes[0].secret.items[0].key", "FieldValueInvalid"),
            ],
        ),
        (
            {"name": "v", "persistentVolumeClaim": {}},
            [("spec.volumes[0].persistentVolumeClaim.claimName", "FieldValueRequired")],
        ),
        (
            {
                "name": "v",
                "downwardAPI": {
                    "items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {
                            "path": "cpu",
                            "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"},
                        },
                    ]
                },
            },
            [],
        ),
        (
            {
                "name": "v",
                "downwardAPI": {
                    "items": [{"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]
                },
            },
            [("spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath", "FieldValueNotSupported")],
        ),
        (
            {"name": "v", "downwardAPI": {"items": [{"path": "x"}]}},
            [("spec.volumes[0].downwardAPI.items[0]", "FieldValueInvalid")],
        ),
        (
            {
                "name": "v",
                "projected": {"sources": [{"secret": {"name": "s"}}, {"configMap": {"name": "c"}}]},
            },
            [],
        ),
        (
            {"name": "v", "projected": {"sources": [{"secret": {"name": "s"}, "configMap": {}}]}},
            [("spec.volumes[0].projected.sources[0]", "FieldValueInvalid")],
        ),
        ({"name": "v", "nfs": {"server": "x", "path": "/"}}, []),  # accepted as is
        (
            {"name": "v", "hostPath": "nope"},
            [("spec.volumes[0].hostPath", "FieldValueTypeInvalid")],
        ),
    ],
)
def test_volume_sources(volume: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert errors(pod_with([volume])) == expected


@pytest.mark.parametrize(
    ("sub_path", "ok"),
    [
        ("logs", True),
        ("a/b", True),
        ("/abs", False),
        ("../up", False),
        ("a/../b", False),
        ("a..b", True),
    ],
)
def test_sub_path_stays_inside_the_volume(sub_path: str, ok: bool) -> None:
    pod = pod_with(
        [{"name": "v", "emptyDir": {}}],
        volumeMounts=[{"name": "v", "mountPath": "/data", "subPath": sub_path}],
    )
    assert (errors(pod) == []) is ok


@pytest.mark.parametrize(
    ("value_from", "expected"),
    [
        ({"fieldRef": {"fieldPath": "status.podIP"}}, []),
        ({"fieldRef": {"fieldPath": "metadata.labels['app']"}}, []),
        (
            {"fieldRef": {"fieldPath": "spec.containers"}},
            [("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath", "FieldValueNotSupported")],
        ),
        ({"resourceFieldRef": {"resource": "limits.memory"}}, []),
        (
            {"resourceFieldRef": {"resource": "limits.gpu"}},
            [
                (
                    "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource",
                    "FieldValueNotSupported",
                )
            ],
        ),
        ({"configMapKeyRef": {"name": "c", "key": "a"}}, []),
        (
            {"secretKeyRef": {"key": "a"}},
            [("spec.containers[0].env[0].valueFrom.secretKeyRef.name", "FieldValueRequired")],
        ),
        (
            {"configMapKeyRef": {"name": "c", "key": "bad key"}},
            [("spec.containers[0].env[0].valueFrom.configMapKeyRef.key", "FieldValueInvalid")],
        ),
    ],
)
def test_env_references(value_from: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    pod = pod_with(env=[{"name": "X", "valueFrom": value_from}])
    assert errors(pod) == expected


def test_object_items_yields_objects_and_reports_the_rest_in_order() -> None:
    errs: list[FieldError] = []
    items = [{"a": 1}, "x", None, {"b": 2}]
    assert list(object_items(items, "spec.volumes", errs)) == [
        ("spec.volumes[0]", {"a": 1}),
        ("spec.volumes[3]", {"b": 2}),
    ]
    assert [(e.field, e.type) for e in errs] == [
        ("spec.volumes[1]", "FieldValueTypeInvalid"),
        ("spec.volumes[2]", "FieldValueTypeInvalid"),
    ]


def test_non_object_items_are_named_wherever_they_stand() -> None:
    pod = pod_with([{"name": "v", "emptyDir": {}}, "junk"], ports=[7], env=["E"],
                   volumeMounts=[{"name": "v", "mountPath": "/v"}, 3])  # fmt: skip
    assert [f for f, t in errors(pod) if t == "FieldValueTypeInvalid"] == [
        "spec.volumes[1]",
        "spec.containers[0].ports[0]",
        "spec.containers[0].env[0]",
        "spec.containers[0].volumeMounts[1]",
    ]
