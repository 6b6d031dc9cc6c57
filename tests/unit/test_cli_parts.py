"""Unit tests of the CLI's pure parts: flag parsing, manifests, names, rollout rule, printing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dockyard.cli.apply import _comparable, parse_manifests
from dockyard.cli.docker_commands import (
    RunSpec,
    build_objects,
    docker_memory,
    parse_cpus,
    parse_port,
    parse_run,
    parse_volume,
    ps_row,
)
from dockyard.cli.exec_stream import exit_code
from dockyard.cli.kube_commands import bar, pod_usage, status_report
from dockyard.cli.kubeargs import CliError, complete_kinds, resource, split_targets
from dockyard.cli.printers import aligned, object_name, table_rows
from dockyard.cli.rollout import rollout_message

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "want"), [
    ("8080:80", (8080, 80, "TCP")),
    ("53:53/udp", (53, 53, "UDP")),
    ("127.0.0.1:8080:80", (8080, 80, "TCP")),
    ("9000", (9000, 9000, "TCP")),
])
def test_parse_port(text: str, want: tuple[int, int, str]) -> None:
    assert parse_port(text) == want


@pytest.mark.parametrize("text", ["80:http", "0:80", "8080:80/icmp", "70000:80"])
def test_parse_port_rejects(text: str) -> None:
    with pytest.raises(CliError, match="invalid -p"):
        parse_port(text)


@pytest.mark.parametrize(("text", "want"), [
    ("512m", "512Mi"), ("1g", "1Gi"), ("64k", "64Ki"), ("1000", "1000"), ("", "")])
def test_docker_memory_units_are_binary(text: str, want: str) -> None:
    assert docker_memory(text) == want


def test_docker_memory_rejects_kubernetes_units() -> None:
    with pytest.raises(CliError, match="--memory"):
        docker_memory("512Mi")


def test_parse_cpus() -> None:
    assert parse_cpus("0.5") == "500m"
    assert parse_cpus("2") == "2000m"
    with pytest.raises(CliError):
        parse_cpus("-1")


def test_parse_volume() -> None:
    assert parse_volume("/srv:/data:ro") == ("/srv", "/data", True)
    assert parse_volume("cache:/cache") == ("cache", "/cache", False)
    with pytest.raises(CliError):
        parse_volume("/srv")


def _spec(**kw: object) -> RunSpec:
    args: dict[str, object] = dict(image="busybox", command=["sh"], detach=True, publish=[],
                                   env=[], volume=[], name="box", remove=False, cpus="",
                                   memory="", restart="no", replicas=0, interactive=False,
                                   tty=False)
    args.update(kw)
    return parse_run(**args)  # type: ignore[arg-type]


def test_run_builds_one_pod_with_host_ports_and_limits() -> None:
    spec = _spec(publish=["8080:80"], env=["A=1"], cpus="0.5", memory="256m",
                 volume=["/srv:/data:ro"], restart="on-failure")
    [pod] = build_objects(spec, "default")
    container = pod["spec"]["containers"][0]
    assert pod["kind"] == "Pod" and pod["spec"]["restartPolicy"] == "OnFailure"
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP", "hostPort": 8080}]
    assert container["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"}}
    assert container["env"] == [{"name": "A", "value": "1"}]
    assert pod["spec"]["volumes"] == [{"name": "vol-0", "hostPath": {"path": "/srv"}}]
    assert container["volumeMounts"] == [{"name": "vol-0", "mountPath": "/data",
                                          "readOnly": True}]


def test_run_with_replicas_builds_deployment_and_service() -> None:
    deployment, service = build_objects(_spec(replicas=3, publish=["8080:80"]), "default")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    assert "hostPort" not in deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["ports"][0]["targetPort"] == 80
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_run_flag_errors() -> None:
    with pytest.raises(CliError, match="restart policy"):
        _spec(restart="sometimes")
    with pytest.raises(CliError, match="--replicas"):
        _spec(detach=False, interactive=True, tty=True, replicas=2)


def test_run_interactive_pod_keeps_stdin_for_its_one_attach() -> None:
    [pod] = build_objects(_spec(detach=False, interactive=True, tty=True), "default")
    container = pod["spec"]["containers"][0]
    assert (container["stdin"], container.get("stdinOnce"), container["tty"]) == (True, None, True)
    [pod] = build_objects(_spec(detach=True, interactive=True), "default")
    assert "stdinOnce" not in pod["spec"]["containers"][0]  # later attaches keep stdin


def test_resource_names_and_typos() -> None:
    assert resource("deploy").plural == "deployments"
    assert resource("po").plural == "pods"
    assert resource("deployments.apps").kind == "Deployment"
    with pytest.raises(CliError, match='"deploymnets" — did you mean deployments?'):
        resource("deploymnets")
    with pytest.raises(CliError, match="doesn't have a resource type \"frobs\"$"):
        resource("frobs")


def test_split_targets_forms() -> None:
    assert [(i.plural, n) for i, n in split_targets(["svc,ep"])] == [("services", None),
                                                                     ("endpoints", None)]
    assert [(i.plural, n) for i, n in split_targets(["deploy/web", "po/x"])] == [
        ("deployments", "web"), ("pods", "x")]
    assert [(i.plural, n) for i, n in split_targets(["pods", "a", "b"])] == [
        ("pods", "a"), ("pods", "b")]
    with pytest.raises(CliError):
        split_targets(["svc,ep", "name"])


def test_manifest_yaml_error_names_file_and_line() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: [1\n"
    with pytest.raises(CliError, match=r"error parsing m\.yaml: line 7"):
        parse_manifests(text, "m.yaml")


def test_manifests_multi_document_and_lists() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\n"
            "apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: Secret, metadata: {name: b}}\n")
    got = [(m.obj["kind"], m.obj["metadata"]["name"], m.index)
           for m in parse_manifests(text, "f")]
    assert got == [("ConfigMap", "a", 0), ("Secret", "b", 2)]


def test_manifest_without_kind_is_named() -> None:
    with pytest.raises(CliError, match=r"f \(document 1\): error validating data: kind not set"):
        parse_manifests("apiVersion: v1\nmetadata: {name: a}\n", "f")


def test_diff_ignores_server_bookkeeping() -> None:
    a = {"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "5",
                                           "managedFields": [{}]}, "data": {"k": "v"}}
    b = {"kind": "ConfigMap", "metadata": {"name": "a", "resourceVersion": "9"},
         "data": {"k": "v"}, "status": {}}
    assert _comparable(a) == _comparable(b)


def _deployment(gen: int, observed: int, want: int, updated: int, replicas: int,
                available: int) -> dict[str, object]:
    return {"metadata": {"name": "web", "generation": gen},
            "spec": {"replicas": want},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "replicas": replicas, "availableReplicas": available}}


@pytest.mark.parametrize(("args", "done", "text"), [
    ((2, 1, 3, 3, 3, 3), False, "spec update to be observed"),
    ((2, 2, 3, 1, 3, 1), False, "1 out of 3 new replicas have been updated"),
    ((2, 2, 3, 3, 4, 3), False, "1 old replicas are pending termination"),  # 4 - 3 = 1
    ((2, 2, 3, 3, 3, 2), False, "2 of 3 updated replicas are available"),
    ((2, 2, 3, 3, 3, 3), True, 'deployment "web" successfully rolled out'),
])
def test_rollout_status_rule(args: tuple[int, ...], done: bool, text: str) -> None:
    message, finished = rollout_message(_deployment(*args))
    assert finished is done and text in message


def test_exec_status_frames_to_exit_codes() -> None:
    assert exit_code({"status": "Success"}) == 0
    assert exit_code({"status": "Failure", "reason": "NonZeroExitCode",
                      "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}) == 3
    assert exit_code({"status": "Failure", "reason": "InternalError",
                      "message": "container x is not running"}) == 126
    with pytest.raises(CliError, match="without a status"):
        exit_code({})


def test_table_rows_hide_wide_columns_and_add_namespace() -> None:
    table = {"columnDefinitions": [{"name": "Name"}, {"name": "Ready"},
                                   {"name": "IP", "priority": 1}],
             "rows": [{"cells": ["web-1", "1/1", "10.0.0.5"],
                       "object": {"metadata": {"namespace": "prod"}}}]}
    assert table_rows(table, wide=False, namespace_column=False) == (
        ["NAME", "READY"], [["web-1", "1/1"]])
    assert table_rows(table, wide=True, namespace_column=True, kind_prefix="pod") == (
        ["NAMESPACE", "NAME", "READY", "IP"], [["prod", "pod/web-1", "1/1", "10.0.0.5"]])
    assert aligned(["A", "LONGER"], [["xx", "y"]]) == "A    LONGER\nxx   y"


def test_object_name() -> None:
    assert object_name({"apiVersion": "apps/v1", "kind": "Deployment",
                        "metadata": {"name": "web"}}) == "deployment.apps/web"
    assert object_name({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}) == "pod/p"


def test_status_report_sums_requests_per_node() -> None:
    node = {"metadata": {"name": "n1"}, "spec": {},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}

    def pod(name: str, node_name: str, cpu: str) -> dict[str, object]:
        return {"metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": node_name,
                         "containers": [{"resources": {"requests": {"cpu": cpu,
                                                                    "memory": "1Gi"}}}]},
                "status": {"phase": "Running"}}

    report = status_report([node], [pod("a", "n1", "500m"), pod("b", "n1", "250m"),
                                    pod("c", "", "1")], {"n1": (1000, 1 << 30)})
    [n1] = report["nodes"]
    assert n1["cpu"] == {"allocatableMillis": 2000, "requestedMillis": 750, "usedMillis": 1000}
    assert n1["memory"]["requestedBytes"] == 2 << 30
    assert [p["name"] for p in report["pending"]] == ["c"]
    # 750 of 2000 millicores: 7.5 of 20 cells rounds to 8; 750*100//2000 = 37%
    assert bar(750, 2000) == "[########............]  37%"
    assert bar(None, 2000).endswith("-")


def test_pod_usage_sums_containers() -> None:
    metrics = {"containers": [{"usage": {"cpu": "250000000n", "memory": "1Mi"}},
                              {"usage": {"cpu": "5m", "memory": "1024Ki"}}]}
    assert pod_usage(metrics) == (255, 2 << 20)


def test_ps_row_running_and_exited() -> None:
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    pod = {"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"nodeName": "n1", "containers": [
               {"image": "busybox", "command": ["httpd"],
                "ports": [{"containerPort": 80, "hostPort": 8080}]}]},
           "status": {"phase": "Running", "containerStatuses": [
               {"state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}}}]}}
    row = ps_row(pod, now)
    assert (row["status"], row["running"], row["ports"]) == (
        "Up 5m", True, "0.0.0.0:8080->80/tcp")
    pod["status"] = {"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": 3, "finishedAt": "2026-01-01T00:09:00Z"}}}]}
    row = ps_row(pod, now)
    assert (row["status"], row["running"]) == ("Exited (3) 60s ago", False)


def test_complete_kinds() -> None:
    assert "deployments" in complete_kinds("dep") and "deploy" in complete_kinds("dep")
    assert "svc,endpoints" in complete_kinds("svc,end")


def test_usage_errors_exit_like_kubectl_and_docker() -> None:
    from typer.testing import CliRunner

    from dockyard.cli.main import app

    runner = CliRunner()
    assert runner.invoke(app, ["get", "--bogus"]).exit_code == 1  # kubectl: 1
    assert runner.invoke(app, ["rollout", "status"]).exit_code == 1
    assert runner.invoke(app, ["ps", "--bogus"]).exit_code == 125  # docker: 125
    assert runner.invoke(app, ["run", "--restart", "sometimes", "busybox"]).exit_code == 125


@pytest.mark.parametrize(("text", "seconds"), [("180", 180.0), ("180s", 180.0), ("3m", 180.0),
                                               ("1h30m", 5400.0), ("500ms", 0.5)])
def test_timeouts_take_kubectl_durations(text: str, seconds: float) -> None:
    from dockyard.cli.kubeargs import parse_duration

    assert parse_duration(text) == seconds


def test_a_bad_duration_names_itself() -> None:
    import typer

    from dockyard.cli.kubeargs import parse_duration

    with pytest.raises(typer.BadParameter, match="'3 minutes' is not a duration"):
        parse_duration("3 minutes")
