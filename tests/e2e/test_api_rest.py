"""The api server over real HTTPS, as a client sees it: auth, CRUD semantics, errors, watch."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RunningServer, start_server

pytestmark = pytest.mark.e2e

DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
        },
    },
}


def body(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def call(server: RunningServer, method: str, path: str, obj: Any = None, **kw: Any
         ) -> tuple[int, dict[str, Any]]:
    data = obj if isinstance(obj, bytes) or obj is None else body(obj)
    code, raw, _ = server.request(method, path, data, **kw)
    return code, json.loads(raw) if raw.strip() else {}


def make_configmap(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


CM = "/api/v1/namespaces/default/configmaps"


def test_health_is_open_and_everything_else_needs_a_token(dockyard_server: RunningServer) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        code, raw, _ = dockyard_server.request("GET", path, token="")
        assert (code, raw) == (200, b"ok")
    code, answer = call(dockyard_server, "GET", "/api/v1/namespaces", token="")
    assert code == 401 and answer["reason"] == "Unauthorized"
    code, answer = call(dockyard_server, "GET", "/api/v1/namespaces", token="not-a-token")
    assert code == 401


def test_node_token_is_forbidden_outside_its_node(dockyard_server: RunningServer) -> None:
    code, joined = call(dockyard_server, "POST", "/dockyard/v1/join", {"nodeName": "n1"})
    assert code == 201
    node_token = joined["token"]
    code, answer = call(dockyard_server, "POST", "/apis/apps/v1/namespaces/default/deployments",
                        DEPLOYMENT, token=node_token)
    assert code == 403 and answer["reason"] == "Forbidden"
    assert "system:node:n1" in answer["message"]
    other = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}}
    code, answer = call(dockyard_server, "POST", "/api/v1/nodes", other, token=node_token)
    assert code == 403
    own = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    code, answer = call(dockyard_server, "POST", "/api/v1/nodes", own, token=node_token)
    assert code == 201, answer
    code, _ = call(dockyard_server, "GET", "/api/v1/namespaces/default/pods", token=node_token)
    assert code == 200


def test_built_in_namespaces_exist(dockyard_server: RunningServer) -> None:
    code, answer = call(dockyard_server, "GET", "/api/v1/namespaces")
    names = {n["metadata"]["name"] for n in answer["items"]}
    assert {"default", "kube-system", "kube-public"} <= names


def test_create_get_update_delete_with_metadata_semantics(dockyard_server: RunningServer) -> None:
    code, created = call(dockyard_server, "POST", CM, make_configmap("crud", a="1"))
    assert code == 201
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    created["data"]["a"] = "2"
    code, updated = call(dockyard_server, "PUT", f"{CM}/crud", created)
    assert code == 200 and updated["data"] == {"a": "2"}
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    assert updated["metadata"]["uid"] == meta["uid"]
    # the first version is now stale: a compare-and-swap conflict, nothing changes
    created["data"]["a"] = "3"
    code, answer = call(dockyard_server, "PUT", f"{CM}/crud", created)
    assert code == 409 and answer["reason"] == "Conflict"
    code, current = call(dockyard_server, "GET", f"{CM}/crud")
    assert current["data"] == {"a": "2"}
    code, _ = call(dockyard_server, "DELETE", f"{CM}/crud")
    assert code == 200
    code, answer = call(dockyard_server, "GET", f"{CM}/crud")
    assert code == 404 and answer["reason"] == "NotFound"
    assert answer["message"] == 'configmaps "crud" not found'


def test_create_twice_is_already_exists(dockyard_server: RunningServer) -> None:
    assert call(dockyard_server, "POST", CM, make_configmap("twice"))[0] == 201
    code, answer = call(dockyard_server, "POST", CM, make_configmap("twice"))
    assert code == 409 and answer["reason"] == "AlreadyExists"


def test_generate_name_makes_unique_names(dockyard_server: RunningServer) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}
    names = {call(dockyard_server, "POST", CM, obj)[1]["metadata"]["name"] for _ in range(5)}
    assert len(names) == 5 and all(n.startswith("gen-") and len(n) == 9 for n in names)


def test_generation_bumps_on_spec_changes_only(dockyard_server: RunningServer) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    code, created = call(dockyard_server, "POST", path, {**DEPLOYMENT, "metadata": {
        "name": "gen", "labels": {"app": "web"}}})
    assert code == 201 and created["metadata"]["generation"] == 1
    assert created["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%",
                                                            "maxUnavailable": "25%"}
    assert created["spec"]["revisionHistoryLimit"] == 10
    code, labelled = call(dockyard_server, "PATCH", f"{path}/gen",
                          {"metadata": {"labels": {"x": "y"}}},
                          content_type="application/merge-patch+json")
    assert code == 200 and labelled["metadata"]["generation"] == 1
    code, scaled = call(dockyard_server, "PATCH", f"{path}/gen", {"spec": {"replicas": 5}},
                        content_type="application/merge-patch+json")
    assert code == 200 and scaled["metadata"]["generation"] == 2


def test_status_is_written_only_through_the_status_subresource(
    dockyard_server: RunningServer,
) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    obj = {**DEPLOYMENT, "metadata": {"name": "st"}, "status": {"replicas": 9}}
    code, created = call(dockyard_server, "POST", path, obj)
    assert code == 201 and created.get("status", {}).get("replicas") in (None, 0)
    code, patched = call(dockyard_server, "PATCH", f"{path}/st", {"status": {"replicas": 7}},
                         content_type="application/merge-patch+json")
    assert patched.get("status", {}).get("replicas") in (None, 0)
    code, patched = call(dockyard_server, "PATCH", f"{path}/st/status",
                         {"status": {"replicas": 7}},
                         content_type="application/merge-patch+json")
    assert code == 200 and patched["status"]["replicas"] == 7


def test_invalid_objects_get_422_naming_each_field_and_nothing_is_stored(
    dockyard_server: RunningServer,
) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    bad = json.loads(json.dumps(DEPLOYMENT))
    bad["metadata"]["name"] = "Bad_Name"
    bad["spec"]["replicas"] = -1
    code, answer = call(dockyard_server, "POST", path, bad)
    assert code == 422 and answer["reason"] == "Invalid"
    fields = {c["field"] for c in answer["details"]["causes"]}
    assert {"metadata.name", "spec.replicas"} <= fields
    code, _ = call(dockyard_server, "GET", f"{path}/Bad_Name")
    assert code == 404


def test_immutable_selector_is_refused(dockyard_server: RunningServer) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    code, created = call(dockyard_server, "POST", path, {**DEPLOYMENT, "metadata": {"name": "im"}})
    assert code == 201
    created["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    created["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    code, answer = call(dockyard_server, "PUT", f"{path}/im", created)
    assert code == 422 and "spec.selector" in answer["message"]


@pytest.mark.parametrize(
    ("raw", "content_type", "code"),
    [
        (b"{not json", "application/json", 400),
        (b"a: [1, 2\n", "application/yaml", 400),
        (b'{"apiVersion": "v2", "kind": "ConfigMap", "metadata": {"name": "x"}}',
         "application/json", 400),
        (b'{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}',
         "application/json", 400),
        (b"x" * (3 * 1024 * 1024 + 10), "application/json", 413),
    ],
)
def test_bad_bodies_get_clear_errors(
    dockyard_server: RunningServer, raw: bytes, content_type: str, code: int
) -> None:
    got, answer = call(dockyard_server, "POST", CM, raw, content_type=content_type)
    assert got == code, answer
    assert answer["kind"] == "Status" and answer["message"]
    assert dockyard_server.request("GET", "/readyz", token="")[0] == 200


def test_unknown_resources_and_bad_names(dockyard_server: RunningServer) -> None:
    assert call(dockyard_server, "GET", "/api/v1/namespaces/default/widgets")[0] == 404
    assert call(dockyard_server, "GET", "/apis/nope/v1/things")[0] == 404
    assert call(dockyard_server, "GET", f"{CM}/..")[0] in (400, 404)
    bad = make_configmap("a..b")
    bad["metadata"]["name"] = "a/b"
    assert call(dockyard_server, "POST", CM, bad)[0] == 422


def test_dry_run_stores_nothing(dockyard_server: RunningServer) -> None:
    code, answer = call(dockyard_server, "POST", f"{CM}?dryRun=All", make_configmap("dry"))
    assert code == 201 and answer["metadata"]["name"] == "dry"
    assert call(dockyard_server, "GET", f"{CM}/dry")[0] == 404


def test_label_and_field_selectors(dockyard_server: RunningServer) -> None:
    for name, tier in (("sel-a", "front"), ("sel-b", "back"), ("sel-c", "front")):
        obj = make_configmap(name)
        obj["metadata"]["labels"] = {"tier": tier, "suite": "sel"}
        assert call(dockyard_server, "POST", CM, obj)[0] == 201
    _, answer = call(dockyard_server, "GET", f"{CM}?labelSelector=tier%3Dfront,suite%3Dsel")
    assert sorted(i["metadata"]["name"] for i in answer["items"]) == ["sel-a", "sel-c"]
    _, answer = call(dockyard_server, "GET", f"{CM}?labelSelector=tier+in+(back)")
    assert [i["metadata"]["name"] for i in answer["items"]] == ["sel-b"]
    _, answer = call(dockyard_server, "GET", f"{CM}?fieldSelector=metadata.name%3Dsel-c")
    assert [i["metadata"]["name"] for i in answer["items"]] == ["sel-c"]
    code, answer = call(dockyard_server, "GET", f"{CM}?labelSelector=%3D%3D%3D")
    assert code == 400


def test_paged_list_returns_everything_once(dockyard_server: RunningServer) -> None:
    for i in range(7):
        obj = make_configmap(f"page-{i}")
        obj["metadata"]["labels"] = {"suite": "page"}
        call(dockyard_server, "POST", CM, obj)
    seen: list[str] = []
    token = ""
    while True:
        _, answer = call(dockyard_server, "GET",
                         f"{CM}?labelSelector=suite%3Dpage&limit=3&continue={token}")
        seen += [i["metadata"]["name"] for i in answer["items"]]
        token = answer["metadata"].get("continue", "")
        if not token:
            break
    assert sorted(seen) == [f"page-{i}" for i in range(7)]


def _watch_lines(server: RunningServer, path: str, count: int) -> list[dict[str, Any]]:
    req = urllib.request.Request(server.url + path,
                                 headers={"Authorization": f"Bearer {server.token}"})
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(req, context=server.ssl_context(), timeout=20) as resp:
        for line in resp:
            events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def test_watch_from_a_resource_version_sees_every_change_in_order(
    dockyard_server: RunningServer,
) -> None:
    _, created = call(dockyard_server, "POST", CM, make_configmap("w1", v="0"))
    start = created["metadata"]["resourceVersion"]
    result: list[dict[str, Any]] = []
    watcher = threading.Thread(target=lambda: result.extend(_watch_lines(
        dockyard_server, f"{CM}?watch=true&resourceVersion={start}"
        "&fieldSelector=metadata.name%3Dw1", 3)))
    watcher.start()
    for value in ("1", "2"):
        _, current = call(dockyard_server, "GET", f"{CM}/w1")
        current["data"]["v"] = value
        call(dockyard_server, "PUT", f"{CM}/w1", current)
    call(dockyard_server, "DELETE", f"{CM}/w1")
    watcher.join(20)
    assert [e["type"] for e in result] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert [e["object"]["data"]["v"] for e in result] == ["1", "2", "2"]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in result]
    assert versions == sorted(versions) and versions[0] > int(start)


def test_watch_without_version_starts_with_current_objects(dockyard_server: RunningServer) -> None:
    call(dockyard_server, "POST", CM, make_configmap("w2"))
    events = _watch_lines(dockyard_server, f"{CM}?watch=1&fieldSelector=metadata.name%3Dw2", 1)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "w2"


def test_watch_from_the_future_is_refused(dockyard_server: RunningServer) -> None:
    code, answer = call(dockyard_server, "GET", f"{CM}?watch=1&resourceVersion=999999999")
    assert code == 504 and "Too large resource version" in answer["message"]


def test_scale_subresource(dockyard_server: RunningServer) -> None:
    path = "/apis/apps/v1/namespaces/default/deployments"
    call(dockyard_server, "POST", path, {**DEPLOYMENT, "metadata": {"name": "sc"}})
    code, scale = call(dockyard_server, "PATCH", f"{path}/sc/scale", {"spec": {"replicas": 4}},
                       content_type="application/merge-patch+json")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert scale["status"]["selector"] == "app=web"
    _, deployment = call(dockyard_server, "GET", f"{path}/sc")
    assert deployment["spec"]["replicas"] == 4
    code, answer = call(dockyard_server, "PATCH", f"{path}/sc/scale", {"spec": {"replicas": -2}},
                        content_type="application/merge-patch+json")
    assert code == 422


def test_binding_sets_node_once(dockyard_server: RunningServer) -> None:
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bindme"},
           "spec": {"schedulerName": "manual", "containers": [{"name": "c", "image": "busybox"}]}}
    assert call(dockyard_server, "POST", pods, pod)[0] == 201
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bindme"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    code, _ = call(dockyard_server, "POST", f"{pods}/bindme/binding", binding)
    assert code == 201
    _, bound = call(dockyard_server, "GET", f"{pods}/bindme")
    assert bound["spec"]["nodeName"] == "n1"
    conditions = {c["type"]: c["status"] for c in bound["status"]["conditions"]}
    assert conditions["PodScheduled"] == "True"
    code, _ = call(dockyard_server, "POST", f"{pods}/bindme/binding", binding)
    assert code == 409


def test_deleting_a_namespace_deletes_its_contents(dockyard_server: RunningServer) -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}}
    assert call(dockyard_server, "POST", "/api/v1/namespaces", ns)[0] == 201
    path = "/api/v1/namespaces/doomed/configmaps"
    assert call(dockyard_server, "POST", path, make_configmap("inside"))[0] == 201
    assert call(dockyard_server, "DELETE", "/api/v1/namespaces/doomed")[0] == 200
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if call(dockyard_server, "GET", "/api/v1/namespaces/doomed")[0] == 404:
            break
        time.sleep(0.2)
    assert call(dockyard_server, "GET", "/api/v1/namespaces/doomed")[0] == 404
    assert call(dockyard_server, "GET", f"{path}/inside")[0] == 404


def test_metrics_in_prometheus_format(dockyard_server: RunningServer) -> None:
    code, raw, headers = dockyard_server.request("GET", "/metrics", accept="text/plain")
    text = raw.decode()
    assert code == 200 and "apiserver_request_total" in text
    assert "dockyard_store_revision" in text


def test_restart_keeps_objects_versions_and_ca(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        _, created = call(server, "POST", CM, make_configmap("keep", k="v"))
        ca = server.ca_file.read_bytes()
    finally:
        server.stop()
    again = start_server(tmp_path / "data")
    try:
        code, got = call(again, "GET", f"{CM}/keep")
        assert code == 200 and got["data"] == {"k": "v"}
        assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        assert got["metadata"]["uid"] == created["metadata"]["uid"]
        assert again.ca_file.read_bytes() == ca
    finally:
        again.stop()


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        names = [f"k9-{i}" for i in range(20)]
        for name in names:
            assert call(server, "POST", CM, make_configmap(name))[0] == 201
    finally:
        server.stop(signal.SIGKILL)
    again = start_server(tmp_path / "data")
    try:
        _, listed = call(again, "GET", CM)
        assert set(names) <= {i["metadata"]["name"] for i in listed["items"]}
    finally:
        again.stop()


def test_unsupported_field_selector_is_a_400(dockyard_server: RunningServer) -> None:
    code, answer = call(dockyard_server, "GET", f"{CM}?fieldSelector=spec.nodeName%3Dx")
    assert code == 400 and "field label not supported" in answer["message"]


def test_priority_class_sets_pod_priority(dockyard_server: RunningServer) -> None:
    pc = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
          "metadata": {"name": "high"}, "value": 1000}
    assert call(dockyard_server, "POST", "/apis/scheduling.k8s.io/v1/priorityclasses", pc)[0] == 201
    pods = "/api/v1/namespaces/default/pods"

    def pod(name: str, cls: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"schedulerName": "manual",
                                "containers": [{"name": "c", "image": "busybox"}]}
        if cls:
            spec["priorityClassName"] = cls
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}

    code, created = call(dockyard_server, "POST", pods, pod("prio", "high"))
    assert code == 201 and created["spec"]["priority"] == 1000
    code, created = call(dockyard_server, "POST", pods, pod("noprio", None))
    assert code == 201 and created["spec"]["priority"] == 0
    code, answer = call(dockyard_server, "POST", pods, pod("badprio", "nope"))
    assert code == 403 and "no PriorityClass with name nope" in answer["message"]


def test_patch_carrying_a_stale_resource_version_is_a_conflict(
    dockyard_server: RunningServer,
) -> None:
    _, created = call(dockyard_server, "POST", CM, make_configmap("stalepatch", v="1"))
    stale = created["metadata"]["resourceVersion"]
    call(dockyard_server, "PATCH", f"{CM}/stalepatch", {"data": {"v": "2"}},
         content_type="application/merge-patch+json")
    code, answer = call(dockyard_server, "PATCH", f"{CM}/stalepatch",
                        {"metadata": {"resourceVersion": stale}, "data": {"v": "3"}},
                        content_type="application/merge-patch+json")
    assert code == 409 and answer["reason"] == "Conflict"
    assert call(dockyard_server, "GET", f"{CM}/stalepatch")[1]["data"] == {"v": "2"}


def test_watch_older_than_history_gets_410_expired(tmp_path: Path) -> None:
    import time

    server = start_server(tmp_path / "data", "--watch-history-seconds", "1")
    try:
        _, created = call(server, "POST", CM, make_configmap("old"))
        old = created["metadata"]["resourceVersion"]
        deadline = time.monotonic() + 30
        events: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            call(server, "POST", CM, make_configmap(f"new-{time.monotonic_ns()}"))
            events = _watch_lines(server, f"{CM}?watch=1&resourceVersion={old}", 1)
            if events[0]["type"] == "ERROR":
                break
            time.sleep(1)
        assert events[0]["type"] == "ERROR"
        assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    finally:
        server.stop()
