"""track_write's shortcuts give exactly the managedFields record_update computes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from dockyard.api.apply import record_update
from dockyard.api.managed_fields import manager_of, track_write
from dockyard.api.status import StatusError
from dockyard.api.storage import now_rfc3339

pytestmark = pytest.mark.unit
Obj = dict[str, Any]


def request(manager: str = "kubectl-client-side-apply") -> Any:
    return make_mocked_request("POST", f"/api/v1/namespaces/d/pods?fieldManager={manager}")


def deployment(image: str = "nginx:1.25", replicas: int = 2) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "d", "labels": {"app": "web"},
                     "annotations": {"note": "x"}, "uid": "u", "resourceVersion": "5"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "nginx", "image": image,
                                   "ports": [{"containerPort": 80, "protocol": "TCP"}],
                                   "env": [{"name": "A", "value": "1"}]},
                                  {"name": "side", "image": "busybox"}]}}},
        "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]},
    }


def pod_without_keys() -> Obj:
    # A container without its name: the keyed list is owned whole.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"image": "busybox"}]}}


def expected(before: Obj | None, after: Obj, manager: str) -> Any:
    tracked = record_update(copy.deepcopy(before), copy.deepcopy(after), manager=manager,
                            api_version=str(after.get("apiVersion", "")), now=now_rfc3339())
    return tracked.get("metadata", {}).get("managedFields", [])


@pytest.mark.parametrize("obj", [
    deployment(),
    pod_without_keys(),
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "empty"}},  # owns nothing
    {"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "u"},
     "spec": {"a": [1, 2]}},
])
def test_create_records_what_record_update_records(obj: Obj) -> None:
    new = copy.deepcopy(obj)
    track_write(new, None, request("creator"))
    assert new["metadata"]["managedFields"] == expected(None, obj, "creator")
    assert {k: v for k, v in new.items() if k != "metadata"} == {
        k: v for k, v in obj.items() if k != "metadata"}  # nothing else touched


def test_create_that_sends_managed_fields_keeps_them_as_record_update_does() -> None:
    sent = deployment()
    sent["metadata"]["managedFields"] = [{
        "manager": "someone", "operation": "Apply", "apiVersion": "apps/v1", "time": "t",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}}]  # not set here
    new = copy.deepcopy(sent)
    track_write(new, None, request("creator"))
    assert new["metadata"]["managedFields"] == expected(None, sent, "creator")
    assert [e["manager"] for e in new["metadata"]["managedFields"]] == ["someone", "creator"]


@pytest.mark.parametrize("change", ["image", "status", "replicas"])
def test_update_records_what_record_update_records(change: str) -> None:
    current = deployment()
    current["metadata"]["managedFields"] = expected(None, current, "creator")
    after = copy.deepcopy(current)
    if change == "image":
        after["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26"
    elif change == "status":
        after["status"]["replicas"] = 3
    else:
        after["spec"]["replicas"] = 5
    new = copy.deepcopy(after)
    track_write(new, current, request("editor"))
    assert new["metadata"]["managedFields"] == expected(current, after, "editor")
    assert new["status"] == after["status"]


def test_deeply_nested_object_is_refused_with_a_status() -> None:
    deep: Obj = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": deep}
    with pytest.raises(StatusError) as caught:
        track_write(obj, None, request())
    assert caught.value.code == 400


def test_manager_is_the_user_agent_product_without_field_manager() -> None:
    req = make_mocked_request("POST", "/api/v1/pods",
                              headers={"User-Agent": "kubectl/v1.32.5 (linux/amd64)"})
    assert manager_of(req) == "kubectl"
