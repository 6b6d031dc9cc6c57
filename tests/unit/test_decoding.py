"""decode_object: JSON and YAML bodies, media types, limits, YAML safety, duplicate fields."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dockyard.api.decoding import (
    MAX_BODY_BYTES,
    DecodeError,
    decode_object,
    find_duplicate_fields,
)

pytestmark = pytest.mark.unit

DEPLOYMENT_YAML = b"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports:
        - containerPort: 80
"""


def test_yaml_deployment() -> None:
    obj = decode_object(DEPLOYMENT_YAML, "application/yaml")
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert json.loads(json.dumps(obj)) == obj


@pytest.mark.parametrize("content_type", [None, "", "application/json",
                                          "application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_and_missing_content_type(content_type: str | None) -> None:
    body = b'{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}'
    assert decode_object(body, content_type)["metadata"] == {"name": "a"}


def test_apply_patch_yaml_accepts_json_and_yaml() -> None:
    # kubectl apply --server-side sends JSON with this media type.
    as_json = json.dumps(decode_object(DEPLOYMENT_YAML, "application/yaml")).encode()
    assert decode_object(as_json, "application/apply-patch+yaml") == decode_object(
        DEPLOYMENT_YAML, "application/apply-patch+yaml")


def test_json_with_tabs_under_yaml_media_type() -> None:
    # PyYAML refuses tabs as indentation; JSON allows them, so JSON is tried first.
    body = b'{\n\t"kind": "ConfigMap",\n\t"data": {"a": "1"}\n}'
    assert decode_object(body, "application/apply-patch+yaml")["data"] == {"a": "1"}


def test_yaml_flow_mapping_that_is_not_json() -> None:
    assert decode_object(b"{kind: ConfigMap, data: {a: b}}", "application/yaml") == {
        "kind": "ConfigMap", "data": {"a": "b"}}


SCALARS = [
    ("int stays int", "n: 3", 3),
    ("big int within 64 bits", "n: 1234567890123456789", 1234567890123456789),
    ("float", "n: 0.5", 0.5),
    ("quoted number is a string", "n: '3'", "3"),
    ("bool", "n: true", True),
    ("null", "n: null", None),
    ("tilde null", "n: ~", None),
    ("timestamp stays the string written", "n: 2024-01-02T03:04:05Z", "2024-01-02T03:04:05Z"),
    ("date stays a string", "n: 2024-01-02", "2024-01-02"),
    ("quantity", "n: 500m", "500m"),
    ("octal-looking", "n: 0755", 493),
]


@pytest.mark.parametrize(("text", "want"), [s[1:] for s in SCALARS], ids=[s[0] for s in SCALARS])
def test_yaml_scalars_are_json_compatible(text: str, want: Any) -> None:
    obj = decode_object(text.encode(), "application/yaml")
    assert obj == {"n": want}
    assert type(obj["n"]) is type(want)


def test_yaml_non_string_keys_become_strings() -> None:
    assert decode_object(b"data:\n  1: a\n  true: b\n", "application/yaml") == {
        "data": {"1": "a", "true": "b"}}


def test_yaml_merge_keys_and_small_aliases() -> None:
    body = b"""\
base: &b {image: nginx, imagePullPolicy: Always}
containers:
- <<: *b
  name: a
- <<: *b
  name: b
  image: redis
"""
    obj = decode_object(body, "application/yaml")
    assert obj["containers"] == [
        {"image": "nginx", "imagePullPolicy": "Always", "name": "a"},
        {"image": "redis", "imagePullPolicy": "Always", "name": "b"},
    ]
    obj["containers"][0]["image"] = "changed"
    assert obj["base"]["image"] == "nginx"  # aliases are copies, not shared objects


BILLION_LAUGHS = b"""\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_billion_laughs_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(DecodeError) as err:
        decode_object(BILLION_LAUGHS, "application/yaml")
    assert err.value.status == 400
    assert "aliases" in str(err.value)
    # Not a speed assertion: a generous bound that only a real expansion would break.
    assert time.monotonic() - started < 5


def test_merge_key_bomb_is_refused() -> None:
    lines = ["a0: &a0 {x: 1, y: 2, z: 3, w: 4}"]
    for i in range(1, 12):
        refs = ", ".join([f"*a{i - 1}"] * 8)
        lines.append(f"a{i}: &a{i} [{refs}]")
    with pytest.raises(DecodeError):
        decode_object("\n".join(lines).encode(), "application/yaml")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b"a: &a\n  b: *a\n", "application/yaml")
    assert "refers to itself" in str(err.value)


YAML_REFUSED = [
    ("binary", b"data: !!binary aGVsbG8=\n", "binary"),
    ("set", b"s: !!set {a, b}\n", "set"),
    ("python object", b"x: !!python/object:os.system {}\n", "python"),
    ("custom tag", b"x: !foo bar\n", "!foo"),
    ("nan", b"x: .nan\n", "finite"),
    ("infinity", b"x: -.inf\n", "finite"),
    ("complex key", b"? [a, b]\n: c\n", "mapping key"),
    ("omap", b"x: !!omap [a: 1]\n", "omap"),
]


@pytest.mark.parametrize(("body", "needle"), [y[1:] for y in YAML_REFUSED],
                         ids=[y[0] for y in YAML_REFUSED])
def test_yaml_without_json_form_is_refused(body: bytes, needle: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(body, "application/yaml")
    assert err.value.status == 400
    assert needle in str(err.value)
    assert "line 1" in str(err.value)


def test_yaml_syntax_error_names_line_and_column() -> None:
    body = b"kind: Pod\nmetadata:\n  name: [unclosed\nspec: {}\n"
    with pytest.raises(DecodeError) as err:
        decode_object(body, "application/yaml")
    assert err.value.status == 400
    assert "line 4 column" in str(err.value)


def test_json_syntax_error_names_the_position() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b'{"kind": "Pod",\n "spec": }', "application/json")
    assert "line 2 column 10" in str(err.value)


@pytest.mark.parametrize(("body", "content_type"), [
    (b"[1, 2]", "application/json"),
    (b'"a string"', "application/json"),
    (b"null", "application/json"),
    (b"- a\n- b\n", "application/yaml"),
    (b"just text\n", "application/yaml"),
    (b"42", "application/apply-patch+yaml"),
])
def test_top_level_must_be_an_object(body: bytes, content_type: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(body, content_type)
    assert "must be an object" in str(err.value)


@pytest.mark.parametrize("body", [b"", b"   \n", b"---\n", b"# only a comment\n"])
def test_empty_bodies(body: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(body, "application/yaml")
    assert err.value.status == 400
    assert "empty" in str(err.value)


def test_several_yaml_documents_are_refused() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b"kind: A\n---\nkind: B\n", "application/yaml")
    assert "more than one YAML document" in str(err.value)


def test_json_nan_is_refused() -> None:
    with pytest.raises(DecodeError):
        decode_object(b'{"x": NaN}', "application/json")


def test_not_utf8() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b'{"x": "\xff"}', "application/json")
    assert "UTF-8" in str(err.value)


def test_deep_nesting() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b"[" * 100_000 + b"]" * 100_000, "application/json")
    assert err.value.status == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/cbor"])
def test_unsupported_media_type_is_415(content_type: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(b"{}", content_type)
    assert (err.value.status, err.value.reason) == (415, "UnsupportedMediaType")


def test_too_large_is_413() -> None:
    body = b'{"data": {"a": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    with pytest.raises(DecodeError) as err:
        decode_object(body, "application/json")
    assert (err.value.status, err.value.reason) == (413, "RequestEntityTooLarge")


# --- duplicate fields (fieldValidation) ----------------------------------------------------

def test_json_duplicates_last_wins_unless_strict() -> None:
    body = b'{"kind": "Pod", "spec": {"nodeName": "a", "nodeName": "b"}}'
    assert decode_object(body, "application/json")["spec"] == {"nodeName": "b"}
    assert find_duplicate_fields(body, "application/json") == [".spec.nodeName"]
    with pytest.raises(DecodeError) as err:
        decode_object(body, "application/json", strict=True)
    assert err.value.status == 400
    assert ".spec.nodeName" in str(err.value)


def test_yaml_duplicates_name_path_and_line() -> None:
    body = b"kind: Pod\nspec:\n  containers:\n  - name: a\n    image: x\n    image: y\n"
    assert decode_object(body, "application/yaml")["spec"]["containers"] == [
        {"name": "a", "image": "y"}]
    found = find_duplicate_fields(body, "application/yaml")
    assert len(found) == 1
    assert found[0].startswith(".spec.containers[0].image") and "line 6" in found[0]
    with pytest.raises(DecodeError):
        decode_object(body, "application/yaml", strict=True)


def test_merge_key_override_is_not_a_duplicate() -> None:
    body = b"base: &b {a: 1}\nx:\n  <<: *b\n  a: 2\n"
    assert find_duplicate_fields(body, "application/yaml") == []
    assert decode_object(body, "application/yaml", strict=True)["x"] == {"a": 2}


@pytest.mark.parametrize("content_type", ["application/json", "application/yaml"])
@pytest.mark.parametrize("strict", [False, True])
def test_integers_beyond_64_bits_become_floats(content_type: str, strict: bool) -> None:
    body = b'{"n": 123456789012345678901234567890, "m": 9223372036854775807}'
    obj = decode_object(body, content_type, strict=strict)
    assert obj == {"n": 1.2345678901234568e29, "m": 9223372036854775807}
    assert type(obj["m"]) is int


@pytest.mark.parametrize(("body", "content_type"), [
    (b'{"s": "\\ud800"}', "application/json"),
    (b's: "\\ud800"\n', "application/yaml"),
])
def test_lone_surrogates_are_refused(body: bytes, content_type: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(body, content_type)
    assert err.value.status == 400
