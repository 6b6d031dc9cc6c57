"""Kubernetes' rules as the agent applies them: env, back-off, phase, conditions, ports."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from dockyard.agent import podspec
from dockyard.agent.podspec import ConfigError, PodContext
from dockyard.agent.volumes import write_atomic_dir

pytestmark = pytest.mark.unit


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "prod", "uid": "u1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                     **spec}}  # fmt: skip


CTX = PodContext(
    pod_ip="10.0.0.5", host_ip="192.0.2.1",
    config_maps={"cfg": {"data": {"k": "v", "other": "o"}}, "gone": None},
    secrets={"sec": {"data": {"pw": base64.b64encode(b"s3cret").decode()}}},
)  # fmt: skip


def test_env_resolves_values_references_and_fields() -> None:
    container = {"name": "c", "env": [
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-b $(MISSING) $$(A)"},  # $$ escapes; unknown stays
        {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
        {"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "O", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "x",
                                                          "optional": True}}},
    ], "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}]}  # fmt: skip
    env = podspec.container_env(pod(), container, CTX)
    assert env == {"CM_k": "v", "CM_other": "o", "A": "a", "B": "a-b $(MISSING) $(A)",
                   "K": "v", "P": "s3cret", "N": "web", "NS": "prod", "IP": "10.0.0.5",
                   "NODE": "n1", "L": "web"}  # fmt: skip


@pytest.mark.parametrize(("ref", "message"), [
    ({"configMapKeyRef": {"name": "cfg", "key": "absent"}},
     "couldn't find key absent in Configmap prod/cfg"),
    ({"configMapKeyRef": {"name": "gone", "key": "x"}}, 'configmap "gone" not found'),
    ({"secretKeyRef": {"name": "nosecret", "key": "x"}}, 'secret "nosecret" not found'),
    ({"fieldRef": {"fieldPath": "spec.nothing"}}, "unsupported fieldRef"),
])  # fmt: skip
def test_env_reference_errors_name_what_is_missing(ref: dict[str, Any], message: str) -> None:
    container = {"name": "c", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(ConfigError, match=message):
        podspec.container_env(pod(), container, CTX)


def test_back_off_is_immediate_then_doubles_from_10s_to_5min() -> None:
    # restarts already in the streak → delay: 0→0, 1→10, 2→20, 3→40, 4→80, 5→160, 6→300 (cap)
    assert [podspec.restart_delay(n) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]


@pytest.mark.parametrize(("policy", "code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 3, True),
    ("Never", 1, False),
])  # fmt: skip
def test_should_restart_follows_restart_policy(policy: str, code: int, restart: bool) -> None:
    assert podspec.should_restart(policy, code) is restart


RUNNING = {"state": {"running": {}}}
DONE = {"state": {"terminated": {"exitCode": 0}}}
FAILED = {"state": {"terminated": {"exitCode": 1}}}
BACKOFF = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
           "lastState": {"terminated": {"exitCode": 1}}}  # fmt: skip
CREATING = {"state": {"waiting": {"reason": "ContainerCreating"}}}


@pytest.mark.parametrize(("policy", "init", "main", "phase"), [
    ("Always", [], [RUNNING], "Running"),
    ("Always", [], [CREATING], "Pending"),
    ("Always", [], [BACKOFF], "Running"),  # a crash-looping pod is Running, as in Kubernetes
    ("Always", [], [DONE], "Running"),  # it will be restarted
    ("Never", [], [DONE], "Succeeded"),
    ("Never", [], [DONE, FAILED], "Failed"),
    ("OnFailure", [], [FAILED], "Running"),
    ("OnFailure", [], [DONE], "Succeeded"),
    ("Always", [RUNNING], [CREATING], "Pending"),
    ("Never", [FAILED], [CREATING], "Failed"),
    ("Always", [DONE], [RUNNING], "Running"),
])  # fmt: skip
def test_phase_is_the_kubelets(policy: str, init: list[Any], main: list[Any], phase: str) -> None:
    assert podspec.pod_phase(pod(restartPolicy=policy), init, main) == phase


def test_condition_keeps_transition_time_while_status_stays() -> None:
    conditions: list[dict[str, Any]] = []
    podspec.set_condition(conditions, "Ready", False, "t1", "ContainersNotReady", "why")
    podspec.set_condition(conditions, "Ready", False, "t2", "ContainersNotReady", "why")
    assert conditions[0]["lastTransitionTime"] == "t1"
    podspec.set_condition(conditions, "Ready", True, "t3")
    assert conditions[0] == {"type": "Ready", "status": "True", "lastProbeTime": None,
                             "lastTransitionTime": "t3"}  # fmt: skip


def test_host_ports_and_resources() -> None:
    p = pod(containers=[{"name": "c", "ports": [
        {"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}, {"containerPort": 81}],
        "resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "64Mi"}}}])
    [mapping] = podspec.port_mappings(p)
    assert (mapping.host_port, mapping.container_port, mapping.protocol) == (8080, 80, "tcp")
    res = podspec.resources(p["spec"]["containers"][0])
    assert (res.cpu_request_millis, res.cpu_limit_millis, res.memory_limit_bytes) == (
        250, 1000, 64 * 1024 * 1024)


def test_atomic_dir_swaps_all_keys_at_once(tmp_path: Any) -> None:
    write_atomic_dir(tmp_path, {"a": "1", "b": "2"}, 0o644)
    assert (tmp_path / "a").read_text() == "1" and (tmp_path / "b").is_symlink()
    write_atomic_dir(tmp_path, {"a": "3"}, 0o600)
    assert (tmp_path / "a").read_text() == "3" and not (tmp_path / "b").exists()
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("..2")]) == 1
    with pytest.raises(ValueError, match="leaves the volume"):
        write_atomic_dir(tmp_path, {"../x": "no"}, 0o644)
