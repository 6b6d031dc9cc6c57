"""End-to-end: the kubectl-style verbs of `dockyard`, run as a person runs them.

One `dockyard server --no-agent` (api server, scheduler, controllers) per module; every test
drives the installed `dockyard` command by subprocess with KUBECONFIG set, parses `-o json`
output, and checks messages and exit codes of common mistakes. A recording proxy proves the
verbs send only standard Kubernetes API paths. Verbs that need running containers are in
test_cli_docker.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockyard.objects.resources import lookup
from tests.e2e.test_cli_support import DOCKYARD, RecordingProxy, dockyard, ok
from tests.servers import RunningServer, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

WEB = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: nginx
        image: {image}
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("cli-kube") / "data")
    try:
        yield srv
    finally:
        srv.stop()


def web(name: str, replicas: int = 2, image: str = "nginx:1.25") -> str:
    """Return the manifest of a Deployment and Service named `name`."""
    return WEB.format(name=name, replicas=replicas, image=image)


def get_json(server: RunningServer, *args: str) -> Any:
    """Return `dockyard get ARGS -o json` parsed."""
    return json.loads(ok(server.kubeconfig, "get", *args, "-o", "json"))


def wait_for(check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {check}")


def test_apply_reports_created_unchanged_configured(server: RunningServer,
                                                   tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(web("apply1"))
    out = ok(server.kubeconfig, "apply", "-f", str(manifest))
    assert out.splitlines() == ["deployment.apps/apply1 created", "service/apply1 created"]
    out = ok(server.kubeconfig, "apply", "-f", str(manifest))
    assert out.splitlines() == ["deployment.apps/apply1 unchanged", "service/apply1 unchanged"]
    manifest.write_text(web("apply1", replicas=4))
    out = ok(server.kubeconfig, "apply", "-f", str(manifest))
    assert "deployment.apps/apply1 configured" in out
    assert get_json(server, "deploy", "apply1")["spec"]["replicas"] == 4


def test_apply_directory_stdin_and_json_output(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-a}\n"
                                     "data: {k: a}\n")
    (tmp_path / "b.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "cm-b"}}))
    (tmp_path / "notes.txt").write_text("not a manifest")
    out = ok(server.kubeconfig, "apply", "-f", str(tmp_path))
    assert out.splitlines() == ["configmap/cm-a created", "configmap/cm-b created"]
    doc = json.loads(ok(server.kubeconfig, "apply", "-f", "-", "-o", "json", stdin=(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-c}\ndata: {k: c}\n")))
    assert doc["kind"] == "ConfigMap" and doc["data"] == {"k": "c"}
    fields = doc["metadata"]["managedFields"]
    assert any(f["manager"] == "dockyard" and f["operation"] == "Apply" for f in fields)


def test_get_tables_names_yaml_selectors(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("get1", replicas=1))
    out = ok(server.kubeconfig, "get", "deploy,svc", "-l", "app=get1")
    assert re.search(r"^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$", out, re.M)
    assert "deployment.apps/get1" in out
    out = ok(server.kubeconfig, "get", "svc", "get1")
    assert re.search(r"^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE$", out, re.M)
    wide = ok(server.kubeconfig, "get", "deploy", "get1", "-o", "wide")
    assert "CONTAINERS" in wide and "nginx:1.25" in wide
    names = ok(server.kubeconfig, "get", "deployments", "-o", "name").split()
    assert "deployment.apps/get1" in names
    doc = yaml.safe_load(ok(server.kubeconfig, "get", "deploy/get1", "-o", "yaml"))
    assert doc["metadata"]["name"] == "get1"
    listed = get_json(server, "deploy", "-l", "app=get1")
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == [
        "get1"]
    everywhere = ok(server.kubeconfig, "get", "ns", "-A")
    assert "kube-system" in everywhere or "default" in everywhere
    out = ok(server.kubeconfig, "get", "pods", "-A", "-l", "app=get1")
    assert out.startswith("NAMESPACE")


def test_get_missing_object_and_empty_list(server: RunningServer) -> None:
    result = dockyard(server.kubeconfig, "get", "deploy", "nosuch")
    assert result.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "nosuch" not found' in result.stderr
    result = dockyard(server.kubeconfig, "get", "pods", "-l", "app=nothing-here")
    assert result.returncode == 0 and "No resources found in default namespace." in result.stderr


def test_get_watch_prints_changes(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("watch1", replicas=1))
    with _popen(server, "get", "deploy", "watch1", "-w", "--request-timeout", "8") as proc:
        time.sleep(4)
        ok(server.kubeconfig, "scale", "deploy/watch1", "--replicas", "3")
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = [line for line in out.splitlines() if line.startswith("watch1")]
    assert len(lines) >= 2, out  # the listed row, then at least one change
    assert re.search(r"^watch1\s+\d/3", out, re.M), out


def _popen(server: RunningServer, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, KUBECONFIG=str(server.kubeconfig))
    return subprocess.Popen([DOCKYARD, *args], stdout=subprocess.PIPE, text=True, env=env)


def test_describe_shows_fields_and_events(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("desc1", replicas=2))

    def described() -> str | None:
        out = ok(server.kubeconfig, "describe", "deployment", "desc1")
        return out if "ScalingReplicaSet" in out else None

    out = wait_for(described)
    assert "Name:         desc1" in out and "Namespace:    default" in out
    assert "app=desc1" in out and "Image:  nginx:1.25" in out
    assert re.search(r"Normal\s+ScalingReplicaSet", out)


def test_scale_set_image_rollout_history_undo(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("roll1", replicas=1))
    assert ok(server.kubeconfig, "scale", "deployment/roll1", "--replicas", "3").strip() == (
        "deployment.apps/roll1 scaled")
    assert get_json(server, "deploy", "roll1")["spec"]["replicas"] == 3
    assert ok(server.kubeconfig, "set", "image", "deploy/roll1", "nginx=nginx:1.26").strip() == (
        "deployment.apps/roll1 image updated")

    def two_revisions() -> str | None:
        out = ok(server.kubeconfig, "rollout", "history", "deploy/roll1")
        return out if re.search(r"^2\s", out, re.M) else None

    out = wait_for(two_revisions)
    assert out.splitlines()[:2] == ["deployment.apps/roll1", "REVISION   CHANGE-CAUSE"]
    revision1 = yaml.safe_load(ok(server.kubeconfig, "rollout", "history", "deploy/roll1",
                                  "--revision", "1"))
    assert revision1["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert ok(server.kubeconfig, "rollout", "undo", "deploy/roll1").strip() == (
        "deployment.apps/roll1 rolled back")
    deployment = get_json(server, "deploy", "roll1")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert "pod-template-hash" not in deployment["spec"]["template"]["metadata"]["labels"]


def test_rollout_pause_resume_restart_status(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("roll2", replicas=0))
    assert ok(server.kubeconfig, "rollout", "pause", "deploy/roll2").strip() == (
        "deployment.apps/roll2 paused")
    assert get_json(server, "deploy", "roll2")["spec"]["paused"] is True
    ok(server.kubeconfig, "rollout", "resume", "deploy/roll2")
    assert not get_json(server, "deploy", "roll2")["spec"].get("paused")
    ok(server.kubeconfig, "rollout", "restart", "deploy/roll2")
    template = get_json(server, "deploy", "roll2")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" in template["metadata"]["annotations"]
    # zero replicas: the rollout finishes without any pod having to run
    out = ok(server.kubeconfig, "rollout", "status", "deploy/roll2", "--timeout", "60")
    assert out.strip().endswith('deployment "roll2" successfully rolled out')
    result = dockyard(server.kubeconfig, "rollout", "status", "svc/roll2")
    assert result.returncode == 1 and "rollout works on deployments" in result.stderr


def test_delete_by_name_file_and_selector(server: RunningServer, tmp_path: Path) -> None:
    manifest = tmp_path / "del.yaml"
    manifest.write_text(web("del1", replicas=0))
    ok(server.kubeconfig, "apply", "-f", str(manifest))
    out = ok(server.kubeconfig, "delete", "-f", str(manifest))
    assert out.splitlines() == ['deployment.apps "del1" deleted', 'service "del1" deleted']
    assert dockyard(server.kubeconfig, "get", "deploy", "del1").returncode == 1
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("del2", replicas=0))
    assert ok(server.kubeconfig, "delete", "deploy", "-l", "app=del2").strip() == (
        'deployment.apps "del2" deleted')
    assert ok(server.kubeconfig, "delete", "svc/del2").strip() == 'service "del2" deleted'
    result = dockyard(server.kubeconfig, "delete", "deploy", "del2")
    assert result.returncode == 1 and "NotFound" in result.stderr
    assert dockyard(server.kubeconfig, "delete", "deploy", "del2",
                    "--ignore-not-found").returncode == 0
    result = dockyard(server.kubeconfig, "delete", "deploy")
    assert result.returncode == 1 and "no name was specified" in result.stderr


def test_events_and_autoscale(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=web("ev1", replicas=1))

    def scaled_events() -> list[Any]:
        doc = json.loads(ok(server.kubeconfig, "events", "--for", "deploy/ev1", "-o", "json"))
        return [e for e in doc["items"] if e["reason"] == "ScalingReplicaSet"]

    assert wait_for(scaled_events)
    table = ok(server.kubeconfig, "events")
    assert table.startswith("LAST SEEN   TYPE") and "deployment/ev1" in table
    out = ok(server.kubeconfig, "autoscale", "deploy/ev1", "--min", "1", "--max", "4",
             "--cpu-percent", "60")
    assert out.strip() == "horizontalpodautoscaler.autoscaling/ev1 autoscaled"
    hpa = get_json(server, "hpa", "ev1")
    assert hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    result = dockyard(server.kubeconfig, "autoscale", "deploy/nosuch", "--max", "2")
    assert result.returncode == 1 and '"nosuch" not found' in result.stderr


def test_diff_exit_codes(server: RunningServer, tmp_path: Path) -> None:
    manifest = tmp_path / "diff.yaml"
    manifest.write_text(web("diff1", replicas=1))
    ok(server.kubeconfig, "apply", "-f", str(manifest))
    same = dockyard(server.kubeconfig, "diff", "-f", str(manifest))
    assert same.returncode == 0 and same.stdout == ""
    manifest.write_text(web("diff1", replicas=5))
    changed = dockyard(server.kubeconfig, "diff", "-f", str(manifest))
    assert changed.returncode == 1
    assert "-  replicas: 1" in changed.stdout and "+  replicas: 5" in changed.stdout
    assert get_json(server, "deploy", "diff1")["spec"]["replicas"] == 1  # dry run only
    broken = dockyard(server.kubeconfig, "diff", "-f", str(tmp_path / "missing.yaml"))
    assert broken.returncode == 2 and "does not exist" in broken.stderr


NODE = """\
apiVersion: v1
kind: Node
metadata:
  name: {name}
spec:
  taints: [{{key: cli-test, effect: NoSchedule}}]  # no other test's pod lands here
status:
  allocatable: {{cpu: "4", memory: 8Gi, pods: "110"}}
  capacity: {{cpu: "4", memory: 8Gi, pods: "110"}}
"""


def test_cordon_uncordon_drain_and_status(server: RunningServer) -> None:
    ok(server.kubeconfig, "apply", "-f", "-", stdin=NODE.format(name="cli-node-1"))
    # status is a subresource: apply ignores it, so the node's capacity is set the agent's way
    status = json.dumps({"status": yaml.safe_load(NODE.format(name="x"))["status"]}).encode()
    code, body, _ = server.request("PATCH", "/api/v1/nodes/cli-node-1/status", status,
                                   content_type="application/merge-patch+json")
    assert code == 200, body
    assert ok(server.kubeconfig, "cordon", "cli-node-1").strip() == "node/cli-node-1 cordoned"
    assert get_json(server, "node", "cli-node-1")["spec"]["unschedulable"] is True
    assert ok(server.kubeconfig, "cordon", "cli-node-1").strip() == (
        "node/cli-node-1 already cordoned")
    report = json.loads(ok(server.kubeconfig, "status", "-o", "json"))
    [node] = [n for n in report["nodes"] if n["name"] == "cli-node-1"]
    assert node["unschedulable"] is True and node["cpu"]["allocatableMillis"] == 4000
    assert ok(server.kubeconfig, "uncordon", "cli-node-1").strip() == (
        "node/cli-node-1 uncordoned")
    out = ok(server.kubeconfig, "drain", "cli-node-1")
    assert out.splitlines() == ["node/cli-node-1 cordoned", "node/cli-node-1 drained"]
    human = ok(server.kubeconfig, "status")
    assert "cli-node-1" in human and "SchedulingDisabled" in human
    result = dockyard(server.kubeconfig, "cordon", "no-such-node")
    assert result.returncode == 1 and 'nodes "no-such-node" not found' in result.stderr


def test_version_client_and_server(server: RunningServer) -> None:
    out = ok(server.kubeconfig, "version")
    assert out.startswith("Client Version: dockyard ") and "Server Version: v1." in out
    doc = json.loads(ok(server.kubeconfig, "version", "-o", "json"))
    assert doc["serverVersion"]["gitVersion"].startswith("v1.")
    assert doc["clientVersion"]["program"] == "dockyard"


def test_common_mistakes_have_clear_errors(server: RunningServer, tmp_path: Path) -> None:
    result = dockyard(server.kubeconfig, "get", "deploymnets")
    assert result.returncode == 1
    assert result.stderr.strip() == ('error: the server doesn\'t have a resource type '
                                     '"deploymnets" — did you mean deployments?')
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a\n")
    result = dockyard(server.kubeconfig, "apply", "-f", str(bad))
    assert result.returncode == 1 and f"error parsing {bad}: line 6" in result.stderr
    result = dockyard(server.kubeconfig, "apply", "-f", "-",
                      stdin="apiVersion: v9\nkind: Gadget\nmetadata: {name: g}\n")
    assert result.returncode == 1 and 'no matches for kind "Gadget"' in result.stderr
    result = dockyard(server.kubeconfig, "get", "pods", "-o", "table")
    assert result.returncode == 1 and "allowed formats are" in result.stderr
    result = dockyard(server.kubeconfig, "port-forward", "pod/nosuch", "8080:80")
    assert result.returncode == 1 and 'pods "nosuch" not found' in result.stderr
    result = dockyard(server.kubeconfig, "top", "pod")
    assert result.returncode == 1 and "metrics not available" in result.stderr


def test_unreachable_server_and_missing_kubeconfig(server: RunningServer,
                                                   tmp_path: Path) -> None:
    config = yaml.safe_load(server.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
    dead = tmp_path / "dead.kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    for verb in (["get", "pods"], ["apply", "-f", "-"], ["version"]):
        result = dockyard(dead, *verb, stdin="apiVersion: v1\nkind: ConfigMap\n"
                          "metadata: {name: x}\n")
        assert result.returncode == 1, verb
        assert "error: no server at https://127.0.0.1:1 — start one with `dockyard server`" in (
            result.stderr)
    result = dockyard(tmp_path / "nothing.kubeconfig", "get", "pods")
    assert result.returncode == 1 and "KUBECONFIG files exist" in result.stderr


def test_context_and_namespace_flags(server: RunningServer, tmp_path: Path) -> None:
    ok(server.kubeconfig, "apply", "-f", "-",
       stdin="apiVersion: v1\nkind: Namespace\nmetadata: {name: cli-ns}\n")
    ok(server.kubeconfig, "apply", "-n", "cli-ns", "-f", "-",
       stdin="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: in-ns}\n")
    assert get_json(server, "cm", "in-ns", "-n", "cli-ns")["metadata"]["namespace"] == "cli-ns"
    config = yaml.safe_load(server.kubeconfig.read_text())
    context = dict(config["contexts"][0])
    context = {"name": "other", "context": {**context["context"], "namespace": "cli-ns"}}
    config["contexts"].append(context)
    path = tmp_path / "two-contexts"
    path.write_text(yaml.safe_dump(config))
    out = ok(path, "get", "cm", "in-ns", "--context", "other", "-o", "name")
    assert out.strip() == "configmap/in-ns"
    result = dockyard(path, "get", "cm", "in-ns")
    assert result.returncode == 1  # the current context's namespace is default
    out = ok(path, "get", "cm", "--kubeconfig", str(server.kubeconfig), "-A", "-o", "name")
    assert "configmap/in-ns" in out.split()


STANDARD = re.compile(
    r"^/(version|api|apis|api/v1|apis/[a-z0-9.-]+/v[a-z0-9]+"
    r"|api/v1(/namespaces/[a-z0-9-]+)?/(?P<p1>[a-z]+)(/[^/]+(/(?P<s1>[a-z]+))?)?"
    r"|apis/(?P<g>[a-z0-9.-]+)/(?P<v>v[a-z0-9]+)(/namespaces/[a-z0-9-]+)?/(?P<p2>[a-z]+)"
    r"(/[^/]+(/(?P<s2>[a-z]+))?)?)$")
STANDARD_PARAMS = {"labelSelector", "fieldSelector", "limit", "resourceVersion", "watch",
                   "timeoutSeconds", "allowWatchBookmarks", "fieldManager", "force", "dryRun",
                   "continue", "ports"}


def test_only_standard_kubernetes_paths(server: RunningServer, tmp_path: Path) -> None:
    proxy = RecordingProxy(server.url, server.ca_file)
    proxy.start()
    try:
        via = proxy.kubeconfig(server.kubeconfig, tmp_path / "proxied")
        manifest = tmp_path / "std.yaml"
        manifest.write_text(web("std1", replicas=1))
        for verb in (["apply", "-f", str(manifest)], ["get", "deploy,svc,ep"],
                     ["get", "deploy", "std1", "-o", "json"], ["describe", "deploy/std1"],
                     ["scale", "deploy/std1", "--replicas", "2"],
                     ["set", "image", "deploy/std1", "nginx=nginx:2"],
                     ["rollout", "history", "deploy/std1"], ["rollout", "undo", "deploy/std1"],
                     ["rollout", "pause", "deploy/std1"], ["rollout", "resume", "deploy/std1"],
                     ["rollout", "restart", "deploy/std1"], ["events"], ["diff", "-f",
                                                                         str(manifest)],
                     ["autoscale", "deploy/std1", "--max", "3"], ["version"], ["status"],
                     ["get", "nodes"], ["delete", "-f", str(manifest)]):
            result = dockyard(via, *verb)
            assert result.returncode in (0, 1), (verb, result.stderr)
    finally:
        proxy.stop()
    assert len(proxy.requests) > 30
    for method, path, query in proxy.requests:
        match = STANDARD.match(path)
        assert match, f"non-standard path {method} {path}"
        plural = match.group("p1") or match.group("p2")
        sub = match.group("s1") or match.group("s2")
        if plural:
            group = match.group("g") or ""
            version = match.group("v") or "v1"
            info = lookup(group, version, plural)
            assert info is not None or group == "metrics.k8s.io", path
            assert sub is None or info is None or sub in info.subresources, path
        assert set(query) <= STANDARD_PARAMS, f"{path}: {query}"
