"""Shared validation: name rules, label syntax, metadata, messages as Kubernetes phrases them."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.objects.validation import (
    FieldError,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    env_var_name,
    invalid,
    invalid_message,
    label_value,
    not_supported,
    qualified_name,
    required,
    validate_metadata,
    validate_metadata_update,
)

pytestmark = pytest.mark.unit


def obj(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


@pytest.mark.parametrize(
    ("rule", "value", "ok"),
    [
        (dns1123_subdomain, "web", True),
        (dns1123_subdomain, "web.example.com", True),
        (dns1123_subdomain, "Foo_Bar", False),
        (dns1123_subdomain, "-web", False),
        (dns1123_subdomain, "a" * 253, True),
        (dns1123_subdomain, "a" * 254, False),
        (dns1123_label, "web-1", True),
        (dns1123_label, "web.1", False),
        (dns1123_label, "a" * 64, False),
        (dns1035_label, "1web", False),
        (dns1035_label, "web1", True),
        (qualified_name, "app", True),
        (qualified_name, "example.com/App_Name", True),
        (qualified_name, "Example.com/app", False),
        (qualified_name, "/app", False),
        (qualified_name, "a/b/c", False),
        (qualified_name, "bad key", False),
        (label_value, "", True),
        (label_value, "My_value.1", True),
        (label_value, "-x", False),
        (env_var_name, "MY_VAR", True),
        (env_var_name, "1VAR", False),
        # a trailing newline must never pass ($ in Python matches before a final newline)
        (dns1123_subdomain, "web\n", False),
        (dns1123_label, "web\n", False),
        (dns1035_label, "web\n", False),
        (qualified_name, "app\n", False),
        (label_value, "v\n", False),
        (env_var_name, "A\n", False),
    ],
)
def test_name_rules(rule: Any, value: str, ok: bool) -> None:
    assert (rule(value) == []) is ok


def test_messages_as_kubernetes_phrases_them() -> None:
    err = invalid("metadata.name", "Foo_Bar", dns1123_subdomain("Foo_Bar")[0])
    assert err.type == "FieldValueInvalid"
    assert err.message.startswith(
        'Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of'
    )
    assert str(err).startswith("metadata.name: Invalid value:")
    assert invalid("spec.replicas", -1, "x").message == "Invalid value: -1: x"
    assert required("spec.selector").message == "Required value"
    assert not_supported("spec.restartPolicy", "Sometimes", ["Always", "Never"]).message == (
        'Unsupported value: "Sometimes": supported values: "Always", "Never"'
    )
    assert err.to_cause() == {"reason": err.type, "message": err.message, "field": err.field}


def test_invalid_message_brackets_many_errors() -> None:
    one = [required("spec.selector")]
    two = [*one, required("spec.template")]
    assert invalid_message("Deployment.apps", "web", one) == (
        'Deployment.apps "web" is invalid: spec.selector: Required value'
    )
    assert invalid_message("Deployment.apps", "web", two) == (
        'Deployment.apps "web" is invalid: [spec.selector: Required value, '
        "spec.template: Required value]"
    )


def fields(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in errors]


@pytest.mark.parametrize(
    ("meta", "namespaced", "expected"),
    [
        ({"name": "web", "namespace": "default"}, True, []),
        ({"namespace": "default"}, True, [("metadata.name", "FieldValueRequired")]),
        ({"generateName": "web-", "namespace": "default"}, True, []),
        (
            {"generateName": "Web-", "namespace": "default"},
            True,
            [("metadata.generateName", "FieldValueInvalid")],
        ),
        ({"name": "web"}, True, [("metadata.namespace", "FieldValueRequired")]),
        ({"name": "web", "namespace": "a.b"}, True, [("metadata.namespace", "FieldValueInvalid")]),
        (
            {"name": "web", "namespace": "default"},
            False,
            [("metadata.namespace", "FieldValueForbidden")],
        ),
        ({"name": "a/b", "namespace": "default"}, True, [("metadata.name", "FieldValueInvalid")]),
        ({"name": "..", "namespace": "default"}, True, [("metadata.name", "FieldValueInvalid")]),
        (
            {"name": "w", "namespace": "d", "labels": {"app": "ok", "bad key": "v"}},
            True,
            [("metadata.labels", "FieldValueInvalid")],
        ),
        (
            {"name": "w", "namespace": "d", "labels": {"app": "-bad"}},
            True,
            [("metadata.labels", "FieldValueInvalid")],
        ),
        (
            {"name": "w", "namespace": "d", "labels": {"app": 3}},
            True,
            [("metadata.labels[app]", "FieldValueTypeInvalid")],
        ),
        (
            {"name": "w", "namespace": "d", "annotations": {"x": "y" * (256 * 1024)}},
            True,
            [("metadata.annotations", "FieldValueTooLong")],
        ),
        (
            {"name": "w", "namespace": "d", "ownerReferences": [{"apiVersion": "apps/v1"}]},
            True,
            [
                ("metadata.ownerReferences[0].kind", "FieldValueInvalid"),
                ("metadata.ownerReferences[0].name", "FieldValueInvalid"),
                ("metadata.ownerReferences[0].uid", "FieldValueInvalid"),
            ],
        ),
        (
            {"name": "w", "namespace": "d", "finalizers": ["kubernetes", "bad finalizer"]},
            True,
            [("metadata.finalizers[1]", "FieldValueInvalid")],
        ),
    ],
)
def test_validate_metadata(
    meta: dict[str, Any], namespaced: bool, expected: list[tuple[str, str]]
) -> None:
    assert fields(validate_metadata(obj(**meta), namespaced=namespaced)) == expected


def test_slash_in_name_gets_a_clear_message() -> None:
    errs = validate_metadata(obj(name="a/b", namespace="d"), namespaced=True)
    assert errs[0].message == "Invalid value: \"a/b\": may not contain '/'"
    errs = validate_metadata(obj(name="..", namespace="d"), namespaced=True)
    assert errs[0].message == "Invalid value: \"..\": may not be '..'"


def test_two_controller_owner_references_refused() -> None:
    ref = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "r",
        "uid": "u",
        "controller": True,
    }
    errs = validate_metadata(
        obj(name="w", namespace="d", ownerReferences=[ref, ref]), namespaced=True
    )
    assert [e.field for e in errs] == ["metadata.ownerReferences"]


def test_metadata_must_be_an_object() -> None:
    errs = validate_metadata({"metadata": "nope"}, namespaced=True)
    assert ("metadata", "FieldValueTypeInvalid") in fields(errs)


@pytest.mark.parametrize("key", ["name", "namespace", "uid", "creationTimestamp"])
def test_metadata_identity_is_immutable(key: str) -> None:
    old = obj(name="w", namespace="d", uid="u1", creationTimestamp="2024-01-01T00:00:00Z")
    new = obj(**{**old["metadata"], key: "changed"})
    assert fields(validate_metadata_update(new, old)) == [(f"metadata.{key}", "FieldValueInvalid")]
    assert validate_metadata_update(old, old) == []
