"""Server-side apply and managedFields: ownership, conflicts, force, removal, updates."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.apply import (
    BEFORE_FIRST_APPLY,
    from_fields_v1,
    path_string,
    record_update,
    server_side_apply,
    to_fields_v1,
)
from dockyard.api.decoding import decode_object
from dockyard.api.patch_schema import PatchError

pytestmark = pytest.mark.unit

V = "apps/v1"


def config(replicas: int = 2, image: str = "nginx:1.25", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": V, "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web", **labels}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "nginx", "image": image,
                                                  "ports": [{"containerPort": 80}]}]}},
        },
    }


def ssa(current: dict[str, Any] | None, applied: dict[str, Any], manager: str = "kubectl",
        force: bool = False, now: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return server_side_apply(current, applied, manager=manager, force=force, kind="Deployment",
                             api_version=V, now=now)


def update(before: dict[str, Any] | None, after: dict[str, Any], manager: str,
           now: str = "2026-01-01T00:00:01Z") -> dict[str, Any]:
    return record_update(before, after, manager=manager, api_version=V, now=now)


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> set[str]:
    entry = entries(obj).get((manager, operation))
    return {path_string(p) for p in from_fields_v1(entry["fieldsV1"])} if entry else set()


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


# --- create --------------------------------------------------------------------------------

def test_create_records_the_kubernetes_fieldsv1_trie() -> None:
    obj = ssa(None, config())
    assert {k: v for k, v in obj.items() if k != "metadata"} == {
        k: v for k, v in config().items() if k != "metadata"}
    [entry] = obj["metadata"]["managedFields"]
    assert {k: v for k, v in entry.items() if k != "fieldsV1"} == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": V,
        "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1"}
    # What a Kubernetes api server records for the same apply (LabelSelector is atomic,
    # container ports are keyed by containerPort and the defaulted protocol).
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:selector": {},
            "f:template": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {'k:{"name":"nginx"}': {
                    ".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {
                        ".": {}, "f:containerPort": {}}},
                }}},
            },
        },
    }


def test_inputs_are_not_mutated() -> None:
    current = ssa(None, config())
    snapshot, applied = copy.deepcopy(current), config(replicas=7)
    ssa(current, applied)
    update(current, applied, "x")
    assert current == snapshot and applied == config(replicas=7)


def test_status_and_managed_fields_in_the_configuration_are_ignored() -> None:
    applied = config()
    applied["status"] = {"replicas": 99}
    applied["metadata"]["managedFields"] = [{"manager": "evil", "operation": "Apply"}]
    obj = ssa(None, applied)
    assert "status" not in obj
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["kubectl"]


# --- re-apply, merge and removal -----------------------------------------------------------

def test_reapply_same_config_changes_nothing() -> None:
    first = ssa(None, config())
    again = ssa(first, config(), now="2026-02-02T00:00:00Z")
    assert again == first


def test_apply_changes_owned_fields() -> None:
    obj = ssa(ssa(None, config()), config(replicas=4, image="nginx:1.26"),
              now="2026-02-02T00:00:00Z")
    assert obj["spec"]["replicas"] == 4
    assert containers(obj)[0]["image"] == "nginx:1.26"
    assert entries(obj)[("kubectl", "Apply")]["time"] == "2026-02-02T00:00:00Z"


def test_field_dropped_from_config_is_removed() -> None:
    obj = ssa(None, config(tier="front"))
    obj = ssa(obj, config())
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert ".metadata.labels.tier" not in owned(obj, "kubectl")


def test_field_dropped_but_owned_by_another_applier_stays() -> None:
    obj = ssa(None, config(tier="front"))
    obj = ssa(obj, {"apiVersion": V, "kind": "Deployment",
                    "metadata": {"name": "web", "labels": {"tier": "front"}}}, manager="other")
    obj = ssa(obj, config())
    assert obj["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert owned(obj, "other") == {".metadata.labels.tier"}


def test_keyed_list_items_of_other_managers_survive() -> None:
    # A sidecar added by another manager is merged by name, not replaced by the list.
    obj = ssa(None, config())
    sidecar = {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"template": {"spec": {"containers": [{"name": "proxy",
                                                              "image": "envoy"}]}}}}
    obj = ssa(obj, sidecar, manager="injector")
    assert [c["name"] for c in containers(obj)] == ["nginx", "proxy"]
    obj = ssa(obj, config(image="nginx:1.26"))
    assert [(c["name"], c["image"]) for c in containers(obj)] == [
        ("nginx", "nginx:1.26"), ("proxy", "envoy")]


def test_list_item_dropped_from_config_is_removed() -> None:
    two = config()
    containers(two).append({"name": "log", "image": "busybox"})
    obj = ssa(None, two)
    obj = ssa(obj, config())
    assert [c["name"] for c in containers(obj)] == ["nginx"]
    assert not any("log" in p for p in owned(obj, "kubectl"))


def test_atomic_selector_is_replaced_whole() -> None:
    obj = ssa(None, config())
    changed = config()
    changed["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
    obj = ssa(obj, changed)
    assert obj["spec"]["selector"] == changed["spec"]["selector"]


def test_finalizers_are_a_set() -> None:
    base = {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"}}
    with_a = copy.deepcopy(base)
    with_a["metadata"]["finalizers"] = ["a"]
    with_b = copy.deepcopy(base)
    with_b["metadata"]["finalizers"] = ["b"]
    obj = ssa(ssa(None, with_a, manager="m1"), with_b, manager="m2")
    assert obj["metadata"]["finalizers"] == ["a", "b"]
    assert owned(obj, "m2") == {'.metadata.finalizers[="b"]'}
    obj = ssa(obj, base, manager="m1")  # m1 no longer wants "a"
    assert obj["metadata"]["finalizers"] == ["b"]


# --- conflicts -----------------------------------------------------------------------------

def scaled(obj: dict[str, Any], replicas: int, manager: str) -> dict[str, Any]:
    after = copy.deepcopy(obj)
    after["spec"]["replicas"] = replicas
    return update(obj, after, manager)


def test_update_takes_ownership_and_apply_then_conflicts() -> None:
    obj = scaled(ssa(None, config()), 5, "kubectl-scale")
    assert ".spec.replicas" not in owned(obj, "kubectl")
    assert owned(obj, "kubectl-scale", "Update") == {".spec.replicas"}
    with pytest.raises(PatchError) as err:
        ssa(obj, config(replicas=3))
    assert (err.value.status, err.value.reason) == (409, "Conflict")
    assert err.value.causes == [{"type": "FieldManagerConflict",
                                 "message": 'conflict with "kubectl-scale" using apps/v1',
                                 "field": ".spec.replicas"}]
    assert str(err.value).startswith('Apply failed with 1 conflict: conflict with '
                                     '"kubectl-scale" using apps/v1: .spec.replicas')


def test_same_value_is_shared_not_a_conflict() -> None:
    obj = scaled(ssa(None, config()), 5, "kubectl-scale")
    obj = ssa(obj, config(replicas=5))
    assert ".spec.replicas" in owned(obj, "kubectl")
    assert owned(obj, "kubectl-scale", "Update") == {".spec.replicas"}


def test_force_takes_ownership() -> None:
    obj = scaled(ssa(None, config()), 5, "kubectl-scale")
    obj = ssa(obj, config(replicas=3), force=True)
    assert obj["spec"]["replicas"] == 3
    assert ".spec.replicas" in owned(obj, "kubectl")
    # kubectl-scale owned nothing else: its entry is dropped.
    assert ("kubectl-scale", "Update") not in entries(obj)


def test_several_conflicts_are_listed() -> None:
    obj = ssa(None, config(), manager="a")
    with pytest.raises(PatchError) as err:
        ssa(obj, config(replicas=9, image="other"), manager="b")
    fields = sorted(c["field"] for c in err.value.causes)
    assert fields == ['.spec.replicas',
                      '.spec.template.spec.containers[name="nginx"].image']
    assert "Apply failed with 2 conflicts" in str(err.value)


def test_object_created_without_tracking_is_owned_before_first_apply() -> None:
    legacy = config()
    obj_ok = ssa(legacy, config())
    assert {e["manager"] for e in obj_ok["metadata"]["managedFields"]} == {
        BEFORE_FIRST_APPLY, "kubectl"}
    with pytest.raises(PatchError) as err:
        ssa(legacy, config(replicas=6))
    assert err.value.causes[0]["message"].startswith(f'conflict with "{BEFORE_FIRST_APPLY}"')


def test_created_by_kubectl_create_then_server_side_apply() -> None:
    created = update(None, config(replicas=1), "kubectl-create")
    assert ".spec.replicas" in owned(created, "kubectl-create", "Update")
    with pytest.raises(PatchError):
        ssa(created, config(replicas=2))
    obj = ssa(created, config(replicas=1))
    assert obj["spec"] == config(replicas=1)["spec"]


# --- bad input -----------------------------------------------------------------------------

def test_stale_resource_version_is_409() -> None:
    obj = ssa(None, config())
    obj["metadata"]["resourceVersion"] = "7"
    stale = config()
    stale["metadata"]["resourceVersion"] = "6"
    with pytest.raises(PatchError) as err:
        ssa(obj, stale)
    assert err.value.status == 409
    fresh = config()
    fresh["metadata"]["resourceVersion"] = "7"
    assert ssa(obj, fresh)["metadata"]["resourceVersion"] == "7"


@pytest.mark.parametrize("items", [
    [{"image": "no-name"}],
    ["just-a-string"],
    [{"name": "a"}, {"name": "a"}],
])
def test_bad_keyed_list_is_422(items: list[Any]) -> None:
    bad = config()
    bad["spec"]["template"]["spec"]["containers"] = items
    with pytest.raises(PatchError) as err:
        ssa(None, bad)
    assert err.value.status == 422


def test_manager_is_required() -> None:
    with pytest.raises(PatchError) as err:
        ssa(None, config(), manager="")
    assert err.value.status == 400


# --- record_update -------------------------------------------------------------------------

def test_update_records_changed_fields_only() -> None:
    obj = update(None, config(), "kubectl-create")
    after = copy.deepcopy(obj)
    containers(after)[0]["image"] = "nginx:1.26"
    after["metadata"]["annotations"] = {"note": "x"}
    obj = update(obj, after, "kubectl-set")
    assert owned(obj, "kubectl-set", "Update") == {
        '.spec.template.spec.containers[name="nginx"].image', ".metadata.annotations.note"}
    assert '.spec.template.spec.containers[name="nginx"].image' not in owned(
        obj, "kubectl-create", "Update")


def test_update_that_removes_fields_drops_their_ownership() -> None:
    obj = ssa(None, config(tier="front"))
    after = copy.deepcopy(obj)
    del after["metadata"]["labels"]["tier"]
    obj = update(obj, after, "editor")
    assert ".metadata.labels.tier" not in owned(obj, "kubectl")
    assert ("editor", "Update") not in entries(obj)


def test_client_sent_managed_fields_replace_the_old_ones() -> None:
    obj = ssa(None, config())
    after = copy.deepcopy(obj)
    after["metadata"]["managedFields"] = []
    after["spec"]["replicas"] = 9
    obj = update(obj, after, "editor")
    assert [e["manager"] for e in obj["metadata"]["managedFields"]] == ["editor"]


def test_update_without_changes_adds_no_entry() -> None:
    obj = ssa(None, config())
    assert update(obj, copy.deepcopy(obj), "noop") == obj


def test_status_is_not_tracked() -> None:
    obj = ssa(None, config())
    after = copy.deepcopy(obj)
    after["status"] = {"replicas": 2, "conditions": [{"type": "Available"}]}
    assert update(obj, after, "controller")["metadata"]["managedFields"] == obj[
        "metadata"]["managedFields"]


# --- FieldsV1 ------------------------------------------------------------------------------

def test_fields_v1_round_trip_of_a_kubernetes_entry() -> None:
    # As written by a Kubernetes api server for `kubectl create deployment`.
    trie = json.loads('{"f:metadata":{"f:labels":{".":{},"f:app":{}}},"f:spec":{'
                      '"f:progressDeadlineSeconds":{},"f:template":{"f:spec":{"f:containers":{'
                      '"k:{\\"name\\":\\"nginx\\"}":{".":{},"f:image":{},"f:name":{}}}}}}}')
    paths = from_fields_v1(trie)
    assert {path_string(p) for p in paths} == {
        ".metadata.labels", ".metadata.labels.app", ".spec.progressDeadlineSeconds",
        '.spec.template.spec.containers[name="nginx"]',
        '.spec.template.spec.containers[name="nginx"].image',
        '.spec.template.spec.containers[name="nginx"].name',
    }
    assert to_fields_v1(paths) == trie


def test_unknown_fields_v1_keys_are_ignored() -> None:
    assert from_fields_v1({"x:odd": {}, "f:a": {}}) == {(("f", "a"),)}


def named(*names: str) -> dict[str, Any]:
    cfg = config()
    cfg["spec"]["template"]["spec"]["containers"] = [{"name": n, "image": n} for n in names]
    return cfg


@pytest.mark.parametrize(("live", "applied", "want"), [
    (("a", "b"), ("b", "a"), ["b", "a"]),  # shared items follow the configuration
    (("a", "b"), ("a", "b", "c"), ["a", "b", "c"]),  # new items where the config puts them
    (("a", "b"), ("c", "a", "b"), ["c", "a", "b"]),
])
def test_keyed_list_order_follows_the_configuration(live: tuple[str, ...],
                                                     applied: tuple[str, ...],
                                                     want: list[str]) -> None:
    obj = ssa(ssa(None, named(*live)), named(*applied))
    assert [c["name"] for c in containers(obj)] == want


def test_items_of_other_managers_keep_their_place() -> None:
    obj = ssa(None, named("a"))
    injected = {"apiVersion": V, "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x"}]}}}}
    obj = ssa(obj, injected, manager="injector")  # live order: a, x
    obj = ssa(obj, named("a", "c"))
    assert [c["name"] for c in containers(obj)] == ["a", "x", "c"]


def test_empty_map_then_filled_map_keeps_the_new_content() -> None:
    # `resources: {}` is owned as a leaf; applying content below it must not delete it.
    empty = named("a")
    containers(empty)[0]["resources"] = {}
    obj = ssa(None, empty)
    filled = named("a")
    containers(filled)[0]["resources"] = {"limits": {"cpu": "1"}}
    obj = ssa(obj, filled)
    assert containers(obj)[0]["resources"] == {"limits": {"cpu": "1"}}


def test_deeply_nested_objects_are_400_not_a_crash() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(3000):
        node["a"] = {}
        node = node["a"]
    node["b"] = 1
    for call in (lambda: ssa(None, {"apiVersion": V, "kind": "Deployment", "spec": deep}),
                 lambda: update(None, {"apiVersion": V, "kind": "Deployment", "spec": deep}, "m")):
        with pytest.raises(PatchError) as err:
            call()
        assert err.value.status == 400


def test_status_only_write_with_client_cleared_managed_fields() -> None:
    obj = ssa(None, config())
    after = copy.deepcopy(obj)
    after["status"] = {"replicas": 1}
    after["metadata"]["managedFields"] = []
    assert "managedFields" not in update(obj, after, "controller")["metadata"]


def test_empty_list_is_owned_and_clears_the_managers_items() -> None:
    obj = ssa(None, named("a", "b"))
    cleared = named()
    obj = ssa(obj, cleared)
    assert containers(obj) == []
    assert ".spec.template.spec.containers" in owned(obj, "kubectl")


def test_real_kubectl_server_side_apply_body() -> None:
    # The body kubectl 1.32.5 PATCHes as application/apply-patch+yaml for
    # `kubectl apply --server-side`: decode it as the api server does, create, re-apply.
    body = (Path(__file__).parent / "data" / "kubectl-1.32-server-side-apply.json").read_bytes()
    applied = decode_object(body, "application/apply-patch+yaml")
    obj = ssa(None, applied)
    assert obj["spec"]["replicas"] == 3
    assert ssa(obj, applied, now="later") == obj
    assert owned(obj, "kubectl") >= {
        ".spec.replicas", '.spec.template.spec.containers[name="main"].env[name="A"].value'}
