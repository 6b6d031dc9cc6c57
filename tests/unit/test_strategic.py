"""Strategic merge patch: each directive, keyed lists per schema, the Kubernetes docs' cases."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.patch_schema import FieldSchema, PatchError, field_at, schema_for
from dockyard.api.patching import STRATEGIC_MERGE_PATCH, apply_patch
from dockyard.api.strategic import strategic_merge

pytestmark = pytest.mark.unit


def smp(obj: dict[str, Any], patch: dict[str, Any], kind: str = "Deployment") -> dict[str, Any]:
    return apply_patch(obj, json.dumps(patch).encode(), STRATEGIC_MERGE_PATCH, kind)


def deployment(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": list(containers)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, **spec, "template": {"spec": pod_spec}},
    }


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def pod_patch(pod_spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": pod_spec}}}


# --- the case kubectl apply sends (see shared/reference/kubectl-wire.md) -------------------


def test_kubectl_apply_patch_changes_image_and_replicas() -> None:
    obj = deployment({"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]})
    patch = {"spec": {"replicas": 4, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}
    out = smp(obj, patch)
    assert out["spec"]["replicas"] == 4
    assert containers(out) == [
        {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}]}
    ]


def test_original_is_never_mutated() -> None:
    obj = deployment({"name": "nginx", "image": "nginx:1.25"})
    before = copy.deepcopy(obj)
    smp(obj, pod_patch({"containers": [{"name": "nginx", "image": "x", "env": [{"name": "A"}]}]}))
    assert obj == before


# --- the Kubernetes docs' examples (tasks/manage-kubernetes-objects/update-api-object-...) --


def test_docs_strategic_patch_adds_a_container_by_name() -> None:
    # Strategic merge: the list of containers is merged on "name", so both remain; as in the
    # docs' output, the patch's new item comes first (it was not on the server).
    obj = deployment({"name": "patch-demo-ctr", "image": "nginx"})
    out = smp(obj, pod_patch({"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}))
    assert [c["name"] for c in containers(out)] == ["patch-demo-ctr-2", "patch-demo-ctr"]


def test_docs_merge_patch_replaces_the_container_list() -> None:
    obj = deployment({"name": "patch-demo-ctr", "image": "nginx"})
    body = json.dumps(pod_patch({"containers": [{"name": "patch-demo-ctr-3", "image": "gcr"}]}))
    out = apply_patch(obj, body.encode(), "application/merge-patch+json", "Deployment")
    assert [c["name"] for c in containers(out)] == ["patch-demo-ctr-3"]


def test_docs_tolerations_have_no_merge_key_and_are_replaced() -> None:
    obj = deployment({"name": "c", "image": "nginx"})
    obj["spec"]["template"]["spec"]["tolerations"] = [{"effect": "NoSchedule", "key": "dedicated",
                                                       "value": "test-team"}]
    out = smp(obj, pod_patch({"tolerations": [{"effect": "NoSchedule", "key": "disktype",
                                               "value": "ssd"}]}))
    assert out["spec"]["template"]["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}
    ]


def test_docs_retain_keys_clears_the_old_strategy_member() -> None:
    obj = deployment({"name": "c", "image": "nginx"}, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    out = smp(obj, {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate"}


def test_without_retain_keys_the_old_member_stays() -> None:
    obj = deployment({"name": "c", "image": "nginx"}, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}})
    out = smp(obj, {"spec": {"strategy": {"type": "Recreate"}}})
    assert out["spec"]["strategy"] == {"type": "Recreate", "rollingUpdate": {"maxSurge": "25%"}}


# --- table: one case per rule --------------------------------------------------------------

Case = tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]

CASES: list[Case] = [
    (
        "null deletes a key",
        "Deployment",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "c": "3"}}},
        {"metadata": {"labels": {"b": "2", "c": "3"}}},
    ),
    (
        "null for a missing key is a no-op",
        "Deployment",
        {"spec": {"replicas": 1}},
        {"spec": {"paused": None}},
        {"spec": {"replicas": 1}},
    ),
    (
        "finalizers merge as a set (patchStrategy merge, no key)",
        "Pod",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["b", "c"]}},
        {"metadata": {"finalizers": ["a", "b", "c"]}},
    ),
    (
        "$deleteFromPrimitiveList removes finalizers",
        "Pod",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
    ),
    (
        "$deleteFromPrimitiveList and additions in one patch",
        "Pod",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["z"]}},
        {"metadata": {"finalizers": ["z", "b"]}},
    ),
    (
        "primitive list without merge strategy is replaced (args)",
        "Pod",
        {"spec": {"containers": [{"name": "c", "args": ["a", "b"]}]}},
        {"spec": {"containers": [{"name": "c", "args": ["z"]}]}},
        {"spec": {"containers": [{"name": "c", "args": ["z"]}]}},
    ),
    (
        "$patch: delete removes a keyed list item",
        "Pod",
        {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}},
        {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}},
        {"spec": {"containers": [{"name": "b", "image": "y"}]}},
    ),
    (
        "$patch: replace as a list item replaces the list",
        "Pod",
        {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}},
        {"spec": {"containers": [{"$patch": "replace"}, {"name": "c", "image": "z"}]}},
        {"spec": {"containers": [{"name": "c", "image": "z"}]}},
    ),
    (
        "$patch: replace in a map replaces the map",
        "Pod",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
        {"metadata": {"labels": {"c": "3"}}},
    ),
    (
        "$patch: delete in a map clears it",
        "Pod",
        {"metadata": {"labels": {"a": "1"}, "name": "p"}},
        {"metadata": {"labels": {"$patch": "delete"}}},
        {"metadata": {"labels": {}, "name": "p"}},
    ),
    (
        "$patch: merge is the default",
        "Pod",
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"$patch": "merge", "b": "2"}}},
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
    ),
    (
        "ports merge by containerPort inside a container merged by name",
        "Pod",
        {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "http"},
                                                          {"containerPort": 443}]}]}},
        {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80, "name": "web"},
                                                          {"containerPort": 9090}]}]}},
        # Patch items in patch order (80, then 9090 which is new), 443 kept after 80.
        {"spec": {"containers": [{"name": "c", "ports": [
            {"containerPort": 80, "name": "web"}, {"containerPort": 9090},
            {"containerPort": 443}]}]}},
    ),
    (
        "env merges by name; a null inside an item deletes that item's key",
        "Pod",
        {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"},
                                                        {"name": "B", "value": "2"}]}]}},
        {"spec": {"containers": [{"name": "c", "env": [{"name": "B", "value": None,
                                                        "valueFrom": {"fieldRef": {
                                                            "fieldPath": "spec.nodeName"}}}]}]}},
        {"spec": {"containers": [{"name": "c", "env": [
            {"name": "A", "value": "1"},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}},
    ),
    (
        "volumeMounts merge by mountPath",
        "Pod",
        {"spec": {"containers": [{"name": "c", "volumeMounts": [
            {"mountPath": "/a", "name": "v1"}]}]}},
        {"spec": {"containers": [{"name": "c", "volumeMounts": [
            {"mountPath": "/a", "readOnly": True}, {"mountPath": "/b", "name": "v2"}]}]}},
        {"spec": {"containers": [{"name": "c", "volumeMounts": [
            {"mountPath": "/a", "name": "v1", "readOnly": True},
            {"mountPath": "/b", "name": "v2"}]}]}},
    ),
    (
        "volumes merge by name and honour $retainKeys (volume source union)",
        "Pod",
        {"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}},
        {"spec": {"volumes": [{"name": "v", "$retainKeys": ["name", "hostPath"],
                               "hostPath": {"path": "/data"}}]}},
        {"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/data"}},
                              {"name": "w", "emptyDir": {}}]}},
    ),
    (
        "initContainers, imagePullSecrets and hostAliases are keyed",
        "Pod",
        {"spec": {"initContainers": [{"name": "i", "image": "a"}],
                  "imagePullSecrets": [{"name": "s1"}],
                  "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}},
        {"spec": {"initContainers": [{"name": "j", "image": "b"}],
                  "imagePullSecrets": [{"name": "s2"}],
                  "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}},
        {"spec": {"initContainers": [{"name": "j", "image": "b"}, {"name": "i", "image": "a"}],
                  "imagePullSecrets": [{"name": "s2"}, {"name": "s1"}],
                  "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}},
    ),
    (
        "ownerReferences merge by uid",
        "ReplicaSet",
        {"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}]}},
        {"metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}]}},
        {"metadata": {"ownerReferences": [{"uid": "u2", "name": "b"}, {"uid": "u1", "name": "a"}]}},
    ),
    (
        "status conditions merge by type",
        "Pod",
        {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                   {"type": "PodScheduled", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"status": {"conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "PodScheduled", "status": "True"}]}},
    ),
    (
        "containerStatuses are atomic in Kubernetes: replaced whole",
        "Pod",
        {"status": {"containerStatuses": [{"name": "a", "ready": True},
                                          {"name": "b", "ready": True}]}},
        {"status": {"containerStatuses": [{"name": "a", "ready": False}]}},
        {"status": {"containerStatuses": [{"name": "a", "ready": False}]}},
    ),
    (
        "service ports merge by port",
        "Service",
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}},
    ),
    (
        "node taints have no merge key: replaced",
        "Node",
        {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
        {"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}},
    ),
    (
        "node addresses merge by type",
        "Node",
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                  {"type": "Hostname", "address": "n1"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
        {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"},
                                  {"type": "Hostname", "address": "n1"}]}},
    ),
    (
        "endpoints subsets are replaced",
        "Endpoints",
        {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]},
        {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
        {"subsets": [{"addresses": [{"ip": "10.0.0.2"}]}]},
    ),
    (
        "a kind without rules still merges ownerReferences by uid",
        "ConfigMap",
        {"metadata": {"ownerReferences": [{"uid": "u1"}]}, "data": {"a": "1"}},
        {"metadata": {"ownerReferences": [{"uid": "u2"}]}, "data": {"b": "2"}},
        {"metadata": {"ownerReferences": [{"uid": "u2"}, {"uid": "u1"}]},
         "data": {"a": "1", "b": "2"}},
    ),
    (
        "a map patch onto a scalar replaces it; directives do not leak",
        "Pod",
        {"spec": {"nodeSelector": "oops"}},
        {"spec": {"nodeSelector": {"$patch": "merge", "disk": "ssd"}}},
        {"spec": {"nodeSelector": {"disk": "ssd"}}},
    ),
    (
        "a new keyed item is cleaned of nulls",
        "Pod",
        {"spec": {"containers": []}},
        {"spec": {"containers": [{"name": "c", "image": None, "tty": True}]}},
        {"spec": {"containers": [{"name": "c", "tty": True}]}},
    ),
]


@pytest.mark.parametrize(("kind", "obj", "patch", "want"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_strategic_merge_rules(kind: str, obj: dict[str, Any], patch: dict[str, Any],
                               want: dict[str, Any]) -> None:
    assert strategic_merge(obj, patch, schema_for(kind)) == want


# --- $setElementOrder ----------------------------------------------------------------------

def test_set_element_order_reorders_keyed_items() -> None:
    obj = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    out = smp(obj, pod_patch({"$setElementOrder/containers": [{"name": "c"}, {"name": "b"},
                                                              {"name": "a"}]}))
    assert [c["name"] for c in containers(out)] == ["c", "b", "a"]


def test_set_element_order_places_new_items() -> None:
    # kubectl sends the full order when it inserts "x" between "a" and "b".
    obj = deployment({"name": "a"}, {"name": "b"})
    out = smp(obj, pod_patch({
        "$setElementOrder/containers": [{"name": "a"}, {"name": "x"}, {"name": "b"}],
        "containers": [{"name": "x", "image": "new"}]}))
    assert [c["name"] for c in containers(out)] == ["a", "x", "b"]


def test_set_element_order_keeps_server_only_items_in_place() -> None:
    # "s" was added on the server (say by another client); the order names a, b only.
    obj = deployment({"name": "a"}, {"name": "s"}, {"name": "b"})
    out = smp(obj, pod_patch({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                              "containers": [{"name": "b", "image": "x"}]}))
    names = [c["name"] for c in containers(out)]
    assert sorted(names) == ["a", "b", "s"]
    assert names.index("b") < names.index("a")


def test_patch_list_order_wins_over_live_order() -> None:
    obj = deployment({"name": "a"}, {"name": "b"})
    out = smp(obj, pod_patch({"containers": [{"name": "b", "image": "1"},
                                             {"name": "a", "image": "2"}]}))
    assert [c["name"] for c in containers(out)] == ["b", "a"]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    obj = deployment({"name": "a"}, {"name": "b"})
    with pytest.raises(PatchError) as err:
        smp(obj, pod_patch({"$setElementOrder/containers": [{"name": "a"}],
                            "containers": [{"name": "b", "image": "x"}]}))
    assert err.value.status == 400


def test_delete_directive_on_a_missing_map_leaves_it_out() -> None:
    out = strategic_merge({"metadata": {}}, {"metadata": {"labels": {"$patch": "delete"}}},
                          schema_for("Pod"))
    assert out == {"metadata": {}}


def test_set_element_order_with_delete() -> None:
    # kubectl apply removing container "b": order lists the survivors, item gets $patch.
    obj = deployment({"name": "a"}, {"name": "b"}, {"name": "c"})
    out = smp(obj, pod_patch({"$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
                              "containers": [{"name": "b", "$patch": "delete"}]}))
    assert [c["name"] for c in containers(out)] == ["a", "c"]


def test_set_element_order_for_primitive_list() -> None:
    pod = {"metadata": {"finalizers": ["a", "b"]}}
    out = strategic_merge(pod, {"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"],
                                             "finalizers": ["c"]}}, schema_for("Pod"))
    assert out["metadata"]["finalizers"] == ["c", "b", "a"]


def test_kubectl_three_way_patch_deletes_keys_and_items() -> None:
    # Client-side apply after removing an env var, a label and the ports from the manifest.
    obj = deployment({"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                      "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]})
    patch = {"metadata": {"labels": None}, "spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"name": "nginx", "ports": None,
                        "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"name": "B", "$patch": "delete"}]}]}}}}
    out = smp(obj, patch)
    assert "labels" not in out["metadata"]
    assert containers(out) == [{"name": "nginx", "image": "nginx",
                                "env": [{"name": "A", "value": "1"}]}]


# --- errors --------------------------------------------------------------------------------

ERRORS = [
    ("missing merge key", {"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}, 400),
    ("unknown map directive", {"metadata": {"labels": {"$patch": "explode"}}}, 400),
    ("merge directive in a list item",
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "merge"}]}}}}, 400),
    ("delete directive without merge key",
     {"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}, 400),
    ("unknown list item directive",
     {"spec": {"template": {"spec": {"containers": [{"name": "a", "$patch": "boom"}]}}}}, 400),
    ("primitive item in keyed list", {"spec": {"template": {"spec": {"containers": ["a"]}}}}, 400),
    ("setElementOrder not a list",
     {"spec": {"template": {"spec": {"$setElementOrder/containers": "a"}}}}, 400),
    ("retainKeys not a list", {"spec": {"strategy": {"$retainKeys": "type"}}}, 400),
    ("patch sets a key outside $retainKeys",
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate",
                            "rollingUpdate": {"maxSurge": 1}}}}, 400),
    ("map item in a merged primitive list", {"metadata": {"finalizers": [{"a": 1}]}}, 400),
]


@pytest.mark.parametrize(("patch", "status"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_bad_strategic_patches_raise(patch: dict[str, Any], status: int) -> None:
    obj = deployment({"name": "a", "image": "x"})
    with pytest.raises(PatchError) as err:
        smp(obj, patch)
    assert err.value.status == status
    assert str(err.value)


def test_schema_paths_share_pod_spec_rules() -> None:
    pod_containers = field_at("Pod", ["spec", "containers"])
    template_containers = field_at("Deployment", ["spec", "template", "spec", "containers"])
    assert pod_containers is template_containers
    assert pod_containers.merge_key == "name"
    assert field_at("Pod", ["spec", "containers", "ports"]).merge_key == "containerPort"
    assert field_at("Pod", ["spec", "tolerations"]).merge_key is None


# --- ordering vectors (behaviour of k8s.io/apimachinery's strategicpatch) ------------------

ORDER_SCHEMA = FieldSchema(fields={
    "mergingList": FieldSchema(merge_key="name", strategy=frozenset({"merge"})),
    "mergingIntList": FieldSchema(strategy=frozenset({"merge"}), list_type="set"),
})


def keyed(*names: int) -> list[dict[str, Any]]:
    return [{"name": n} for n in names]


ORDER_CASES = [
    # (live list, $setElementOrder, result): server-only items (9, 7, 8) stay next to the
    # live neighbours they followed, the named items take the order given.
    ((1, 3, 4, 2, 9), (4, 2, 3, 1), (4, 2, 3, 1, 9)),
    ((1, 2, 9, 3, 4), (2, 1, 4, 3), (2, 1, 9, 4, 3)),
    ((1, 2, 7, 9, 8, 3, 4), (2, 1, 4, 3), (2, 1, 7, 9, 8, 4, 3)),
]


@pytest.mark.parametrize(("live", "order", "want"), ORDER_CASES)
def test_set_element_order_vectors_keyed(live: tuple[int, ...], order: tuple[int, ...],
                                         want: tuple[int, ...]) -> None:
    out = strategic_merge({"mergingList": keyed(*live)},
                          {"$setElementOrder/mergingList": keyed(*order)}, ORDER_SCHEMA)
    assert out == {"mergingList": keyed(*want)}


@pytest.mark.parametrize(("live", "order", "want"), ORDER_CASES)
def test_set_element_order_vectors_primitive(live: tuple[int, ...], order: tuple[int, ...],
                                             want: tuple[int, ...]) -> None:
    out = strategic_merge({"mergingIntList": list(live)},
                          {"$setElementOrder/mergingIntList": list(order)}, ORDER_SCHEMA)
    assert out == {"mergingIntList": list(want)}


def test_set_element_order_keeps_item_content_from_the_server() -> None:
    live = [{"name": 1, "other": "a"}, {"name": 3, "value": 3}, {"name": 2, "value": 2}]
    out = strategic_merge({"mergingList": live},
                          {"$setElementOrder/mergingList": keyed(2, 3, 1)}, ORDER_SCHEMA)
    assert out["mergingList"] == [live[2], live[1], live[0]]


def test_delete_add_and_order_together_orders_as_kubernetes() -> None:
    # kubectl's 3-way patch after replacing item 1 by 3, while the server also holds 4:
    # Kubernetes answers [2, 4, 3] (the live order it compares with is read after its
    # in-place delete and append).
    live = [{"name": 1}, {"name": 2, "other": "b"}, {"name": 4, "other": "c"}]
    out = strategic_merge({"mergingList": live}, {
        "$setElementOrder/mergingList": keyed(2, 3),
        "mergingList": [{"name": 3}, {"name": 1, "$patch": "delete"}],
    }, ORDER_SCHEMA)
    assert out == {"mergingList": [{"name": 2, "other": "b"}, {"name": 4, "other": "c"},
                                   {"name": 3}]}


def test_real_kubectl_client_side_apply_patch() -> None:
    # tests/unit/data/kubectl-1.32-apply-patch.json is the body kubectl 1.32.5 PATCHed for
    # `kubectl apply` of a manifest that changed the image and replicas and dropped the
    # "tier" label, the env var B and the container "side", against the live object in
    # kubectl-1.32-apply-live.json (which also holds a container "injected" by the server).
    data = Path(__file__).parent / "data"
    live = json.loads((data / "kubectl-1.32-apply-live.json").read_text())
    body = (data / "kubectl-1.32-apply-patch.json").read_bytes()
    out = apply_patch(live, body, STRATEGIC_MERGE_PATCH, "Deployment")
    assert out["metadata"]["labels"] == {"app": "app"}
    assert out["spec"]["replicas"] == 3
    assert containers(out) == [
        {"name": "main", "image": "nginx:1.26", "env": [{"name": "A", "value": "1"}],
         "ports": [{"containerPort": 80}]},
        {"name": "injected", "image": "proxy"},
    ]
    applied = json.loads(out["metadata"]["annotations"][
        "kubectl.kubernetes.io/last-applied-configuration"])
    assert applied["spec"]["replicas"] == 3
