"""apply_patch: media type dispatch, JSON patch (RFC 6902), JSON merge patch (RFC 7386)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from dockyard.api.patching import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    merge_patch,
)

pytestmark = pytest.mark.unit

DEPLOY: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
    "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containers": [{"name": "n", "image": "a"}]}}},
}


def patch(body: Any, content_type: str, obj: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return apply_patch(copy.deepcopy(obj or DEPLOY), raw, content_type, "Deployment")


# --- JSON patch ----------------------------------------------------------------------------

def test_json_patch_ops() -> None:
    out = patch([
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "add", "path": "/metadata/labels", "value": {"tier": "web"}},
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "s"}},
        {"op": "copy", "from": "/spec/replicas", "path": "/spec/minReadySeconds"},
        {"op": "move", "from": "/metadata/labels", "path": "/metadata/extra"},
        {"op": "remove", "path": "/metadata/annotations"},
    ], JSON_PATCH)
    assert out["spec"]["replicas"] == 5
    assert out["spec"]["minReadySeconds"] == 5
    assert out["metadata"] == {"name": "web", "extra": {"tier": "web"}}
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["n", "s"]


def test_json_patch_escaped_pointer() -> None:
    # "~1" is "/" in a JSON pointer: annotation keys contain slashes.
    pointer = "/metadata/annotations/deployment.kubernetes.io~1revision"
    out = patch([{"op": "replace", "path": pointer,
                  "value": "3"}], JSON_PATCH)
    assert out["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "3"}


def test_kubectl_rollout_undo_patch() -> None:
    # What `kubectl rollout undo` sends: replace the template and the annotations.
    template = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "n", "image": "old", "resources": {}}]}}
    out = patch([{"op": "replace", "path": "/spec/template", "value": template},
                 {"op": "replace", "path": "/metadata/annotations",
                  "value": {"deployment.kubernetes.io/revision": "1"}}], JSON_PATCH)
    assert out["spec"]["template"] == template


JSON_PATCH_ERRORS = [
    ("test op fails", [{"op": "test", "path": "/spec/replicas", "value": 9}], 422),
    ("remove a missing path", [{"op": "remove", "path": "/spec/nothing"}], 422),
    ("replace under a missing parent", [{"op": "replace", "path": "/a/b/c", "value": 1}], 422),
    ("index out of range", [{"op": "add", "path": "/spec/template/spec/containers/7",
                             "value": {}}], 422),
    ("replace the root with a list", [{"op": "replace", "path": "", "value": [1]}], 422),
    ("unknown op", [{"op": "frobnicate", "path": "/a"}], 400),
    ("op without path", [{"op": "add", "value": 1}], 400),
    ("add without value", [{"op": "add", "path": "/a"}], 400),
    ("a JSON object, not a list", {"op": "add", "path": "/a", "value": 1}, 400),
    ("list of strings", ["add"], 400),
    ("not JSON", b'[{"op": "add",', 400),
    ("not UTF-8", b"\xff\xfe[]", 400),
]


@pytest.mark.parametrize(("body", "status"), [e[1:] for e in JSON_PATCH_ERRORS],
                         ids=[e[0] for e in JSON_PATCH_ERRORS])
def test_json_patch_errors(body: Any, status: int) -> None:
    with pytest.raises(PatchError) as err:
        patch(body, JSON_PATCH)
    assert err.value.status == status
    assert err.value.reason == {400: "BadRequest", 422: "Invalid"}[status]


def test_malformed_json_names_the_position() -> None:
    with pytest.raises(PatchError) as err:
        patch(b'{"spec": {"replicas": 4,}}', MERGE_PATCH)
    assert err.value.status == 400
    assert "line 1 column 25" in str(err.value)


# --- merge patch (RFC 7386 appendix A examples) --------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "body", "want"), RFC7386)
def test_merge_patch_rfc_examples(target: dict[str, Any], body: dict[str, Any],
                                  want: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, body) == want
    assert target == before


def test_merge_patch_scale() -> None:
    # `kubectl scale` on the scale subresource sends exactly this.
    out = patch({"spec": {"replicas": 5}}, MERGE_PATCH)
    assert out["spec"]["replicas"] == 5
    assert out["spec"]["template"] == DEPLOY["spec"]["template"]


def test_merge_patch_replaces_lists() -> None:
    out = patch({"spec": {"template": {"spec": {"containers": [{"name": "x"}]}}}}, MERGE_PATCH)
    assert out["spec"]["template"]["spec"]["containers"] == [{"name": "x"}]


def test_merge_patch_must_be_an_object() -> None:
    with pytest.raises(PatchError) as err:
        patch([1, 2], MERGE_PATCH)
    assert err.value.status == 400


# --- dispatch ------------------------------------------------------------------------------

def test_unknown_media_type_is_415() -> None:
    with pytest.raises(PatchError) as err:
        patch({"spec": {}}, "application/json")
    assert (err.value.status, err.value.reason) == (415, "UnsupportedMediaType")
    assert "strategic-merge-patch" in str(err.value)


def test_media_type_parameters_and_case_are_ignored() -> None:
    out = patch({"spec": {"replicas": 1}}, "Application/Strategic-Merge-Patch+JSON; charset=utf-8")
    assert out["spec"]["replicas"] == 1


@pytest.mark.parametrize("content_type", [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH])
def test_no_patch_type_mutates_its_input(content_type: str) -> None:
    obj = copy.deepcopy(DEPLOY)
    body: Any = ([{"op": "replace", "path": "/spec/template/metadata/labels/app", "value": "x"}]
                 if content_type == JSON_PATCH
                 else {"spec": {"template": {"metadata": {"labels": {"app": "x"}}}}})
    out = apply_patch(obj, json.dumps(body).encode(), content_type, "Deployment")
    assert obj == DEPLOY
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "x"}
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert obj == DEPLOY


def test_deeply_nested_patch_is_400() -> None:
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    for content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH):
        with pytest.raises(PatchError) as err:
            patch(deep, content_type)
        assert err.value.status == 400


def test_failed_test_op_names_the_operation_and_values() -> None:
    with pytest.raises(PatchError) as err:
        patch([{"op": "replace", "path": "/spec/replicas", "value": 4},
               {"op": "test", "path": "/spec/replicas", "value": 9}], JSON_PATCH)
    assert str(err.value) == ("json patch operation 1 (test '/spec/replicas') failed: "
                              "the value is 4, not 9")


@pytest.mark.parametrize("body", [b'{"spec": {"replicas": NaN}}', b'{"a": "\\ud800"}'])
def test_patch_values_json_cannot_carry_are_400(body: bytes) -> None:
    with pytest.raises(PatchError) as err:
        patch(body, MERGE_PATCH)
    assert err.value.status == 400


def test_patch_integers_beyond_64_bits_become_floats() -> None:
    out = patch(b'{"spec": {"replicas": 123456789012345678901234567890}}', MERGE_PATCH)
    assert out["spec"]["replicas"] == 1.2345678901234568e29
