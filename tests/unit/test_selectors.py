"""Label and field selectors: grammar, dict form, matching, canonical strings, errors."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.objects.selectors import (
    FieldSelector,
    LabelSelector,
    NodeSelectorTerm,
    SelectorError,
    compile_selector,
    freeze,
    supported_fields,
    validate_label_selector,
)

pytestmark = pytest.mark.unit

WEB = {"app": "web", "tier": "front"}
DB = {"app": "db"}


@pytest.mark.parametrize(
    ("text", "web", "db", "none"),
    [
        ("", True, True, True),
        ("app=web", True, False, False),
        ("app==web", True, False, False),
        ("app!=web", False, True, True),  # != matches objects without the key
        ("app in (web,db)", True, True, False),
        ("app in ( web , db )", True, True, False),
        ("app notin (web)", False, True, True),
        ("tier", True, False, False),
        ("!tier", False, True, True),
        ("app=web,tier=front", True, False, False),
        ("app in (web, db),!tier", False, True, False),
        ("example.com/role=x", False, False, False),
    ],
)
def test_label_selector_matching(text: str, web: bool, db: bool, none: bool) -> None:
    selector = LabelSelector.parse(text)
    assert (selector.matches(WEB), selector.matches(DB), selector.matches({})) == (web, db, none)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("tier=front,app=web", "app=web,tier=front"),
        ("app in (web,db)", "app in (db,web)"),
        ("!b,a", "a,!b"),
        ("app==web", "app==web"),
        ("x notin (b,a)", "x notin (a,b)"),
    ],
)
def test_canonical_string(text: str, canonical: str) -> None:
    assert str(LabelSelector.parse(text)) == canonical
    assert LabelSelector.parse(canonical) == LabelSelector.parse(text)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("app=we b", "we b"),
        ("Bad Key=x", "Bad Key"),
        ("app in ()", "app"),
        ("app in (a", "("),
        ("app)", ")"),
        ("app=web,", "empty requirement"),
        ("app foo (x)", "app foo (x)"),
    ],
)
def test_label_selector_errors_name_the_term(text: str, named: str) -> None:
    with pytest.raises(SelectorError, match=named.replace("(", r"\(").replace(")", r"\)")):
        LabelSelector.parse(text)


def test_from_dict() -> None:
    selector = LabelSelector.from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "back"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    )
    assert selector.matches(WEB)
    assert not selector.matches({**WEB, "canary": "1"})
    assert str(selector) == "app=web,!canary,tier in (back,front)"


def test_none_matches_nothing_and_empty_matches_everything() -> None:
    assert not LabelSelector.from_dict(None).matches(WEB)
    assert LabelSelector.from_dict({}).matches(WEB)
    assert LabelSelector.from_dict({}).empty()
    assert not LabelSelector.nothing().matches({})


@pytest.mark.parametrize(
    "selector",
    [
        {"matchExpressions": [{"key": "a", "operator": "Near", "values": ["x"]}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchLabels": {"app": "-bad"}},
    ],
)
def test_from_dict_errors(selector: dict[str, Any]) -> None:
    with pytest.raises(SelectorError):
        LabelSelector.from_dict(selector)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"app": "web"}}, []),
        ({"matchLabels": {"bad key": "web"}}, [("spec.selector.matchLabels", "FieldValueInvalid")]),
        (
            {"matchExpressions": [{"key": "a", "operator": "In"}]},
            [("spec.selector.matchExpressions[0].values", "FieldValueRequired")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            [("spec.selector.matchExpressions[0].values", "FieldValueForbidden")],
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Near"}]},
            [("spec.selector.matchExpressions[0].operator", "FieldValueNotSupported")],
        ),
        ("app=web", [("spec.selector", "FieldValueTypeInvalid")]),
    ],
)
def test_validate_label_selector(selector: Any, expected: list[tuple[str, str]]) -> None:
    errs = validate_label_selector(selector, "spec.selector")
    assert [(e.field, e.type) for e in errs] == expected


def test_from_set() -> None:
    assert str(LabelSelector.from_set({"b": "2", "a": "1"})) == "a=1,b=2"


# --- field selectors -----------------------------------------------------------------------

POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always"},
    "status": {"phase": "Running"},
}
EVENT = {
    "kind": "Event",
    "metadata": {"name": "e1", "namespace": "default"},
    "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default", "uid": "u1"},
    "reason": "Scheduled",
    "type": "Normal",
    "source": {"component": "default-scheduler"},
}
NODE = {"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": True}}


@pytest.mark.parametrize(
    ("text", "obj", "matches"),
    [
        ("metadata.name=web-1", POD, True),
        ("metadata.name==web-1", POD, True),
        ("metadata.name!=web-1", POD, False),
        ("spec.nodeName=n1,status.phase=Running", POD, True),
        ("spec.nodeName=", POD, False),
        ("status.podIP=", POD, True),  # an absent field compares as ""
        ("status.phase!=Failed", POD, True),
        ("involvedObject.name=web-1,involvedObject.kind=Pod,involvedObject.uid=u1", EVENT, True),
        ("source=default-scheduler,type=Normal,reason=Scheduled", EVENT, True),
        ("spec.unschedulable=true", NODE, True),
        ("spec.unschedulable=false", NODE, False),
        ("", POD, True),
    ],
)
def test_field_selector_matching(text: str, obj: dict[str, Any], matches: bool) -> None:
    kind = str(obj["kind"])
    assert FieldSelector.parse(text, kind).matches(obj) is matches


def test_unknown_field_is_refused_with_kubernetes_message() -> None:
    with pytest.raises(SelectorError, match="^field label not supported: spec.foo$"):
        FieldSelector.parse("spec.foo=bar", "Pod")
    with pytest.raises(SelectorError, match="field label not supported: spec.nodeName"):
        FieldSelector.parse("spec.nodeName=n1", "Deployment")
    # without a kind the syntax is checked only
    assert not FieldSelector.parse("spec.foo=bar").matches(POD)


@pytest.mark.parametrize("text", ["metadata.name", "=x", "a=b\\"])
def test_field_selector_syntax_errors(text: str) -> None:
    with pytest.raises(SelectorError):
        FieldSelector.parse(text)


def test_field_selector_escapes_and_exact() -> None:
    selector = FieldSelector.parse(r"metadata.name=a\,b,metadata.namespace=d")
    assert selector.exact("metadata.name") == "a,b"
    assert selector.exact("spec.nodeName") is None
    assert str(selector) == r"metadata.name=a\,b,metadata.namespace=d"


def test_supported_fields_per_kind() -> None:
    assert supported_fields("Deployment") == ["metadata.name", "metadata.namespace"]
    assert "spec.nodeName" in supported_fields("Pod")
    assert "type" in supported_fields("Secret")


def test_malformed_labels_match_like_no_labels() -> None:
    assert LabelSelector.parse("!app").matches("oops")  # type: ignore[arg-type]
    assert not LabelSelector.parse("app").matches(None)


# --- compiled selectors (the scheduler's hot path) -----------------------------------------


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("selector", "web", "db", "none"),
    [
        (None, False, False, False),  # a missing selector matches nothing
        ({}, True, True, True),  # an empty one matches everything
        ({"matchLabels": {"app": "web"}}, True, False, False),
        ({"matchLabels": {"app": "web", "tier": "back"}}, False, False, False),
        ({"matchExpressions": [expr("app", "In", "db")]}, False, True, False),
        ({"matchExpressions": [expr("app", "In", "db", "web")]}, True, True, False),
        ({"matchExpressions": [expr("tier", "NotIn", "front")]}, False, True, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True, False, False),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False, True, True),
        # matchLabels AND expressions: app=web and tier in (front)
        (
            {"matchLabels": {"app": "web"}, "matchExpressions": [expr("tier", "In", "front")]},
            True,
            False,
            False,
        ),
    ],
)
def test_compiled_selector_matching(
    selector: dict[str, Any] | None, web: bool, db: bool, none: bool
) -> None:
    compiled = compile_selector(selector)
    assert (compiled.matches(WEB), compiled.matches(DB), compiled.matches({})) == (web, db, none)
    assert compiled == LabelSelector.from_dict(selector)


def test_compile_selector_parses_each_distinct_value_once() -> None:
    first = compile_selector({"matchLabels": {"a": "1", "b": "2"}})
    # the same value written in another key order is the same selector, not parsed again
    assert compile_selector({"matchLabels": {"b": "2", "a": "1"}}) is first
    assert compile_selector({"matchLabels": {"a": "1"}}) is not first
    assert freeze({"x": [1, {"y": 2}]}) == freeze({"x": (1, {"y": 2})})
    hash(freeze({"x": [1, {"y": 2}]}))


def test_compile_selector_refuses_a_bad_selector() -> None:
    with pytest.raises(SelectorError, match="'Near' is not a valid label selector operator"):
        compile_selector({"matchExpressions": [expr("a", "Near", "b")]})


NODE_LABELS = {"cpus": "8", "zone": "a", "gen": "new"}


@pytest.mark.parametrize(
    ("term", "matches"),
    [
        ({}, False),  # an empty term matches no node, as in Kubernetes
        ({"matchExpressions": []}, False),
        ({"matchExpressions": [expr("cpus", "Gt", "4")]}, True),  # 8 > 4
        ({"matchExpressions": [expr("cpus", "Gt", "8")]}, False),  # 8 > 8 fails
        ({"matchExpressions": [expr("cpus", "Lt", "16")]}, True),
        ({"matchExpressions": [expr("gen", "Gt", "1")]}, False),  # "new" is no integer
        ({"matchExpressions": [expr("ram", "Lt", "1")]}, False),  # a missing label fails
        ({"matchExpressions": [expr("zone", "In", "a", "b"), expr("cpus", "Gt", "2")]}, True),
        ({"matchFields": [expr("metadata.name", "In", "n1", "n2")]}, True),
        ({"matchFields": [expr("metadata.name", "NotIn", "n1")]}, False),
        # expressions AND fields
        (
            {
                "matchExpressions": [expr("zone", "In", "b")],
                "matchFields": [expr("metadata.name", "In", "n1")],
            },
            False,
        ),
    ],
)
def test_node_selector_term(term: dict[str, Any], matches: bool) -> None:
    assert NodeSelectorTerm.from_dict(term).matches(NODE_LABELS, "n1") is matches


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ({"matchExpressions": [expr("cpus", "Gt", "four")]}, "'cpus' needs one integer value"),
        ({"matchExpressions": [expr("cpus", "Lt", "1", "2")]}, "'cpus' needs one integer value"),
        ({"matchFields": [expr("metadata.uid", "In", "x")]}, "unsupported matchFields key"),
        ({"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}, "In or NotIn"),
        ({"matchExpressions": "cpus"}, "matchExpressions must be a list"),
    ],
)
def test_bad_node_selector_terms_are_named(term: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        NodeSelectorTerm.from_dict(term)
