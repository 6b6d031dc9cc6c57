"""Pod defaults, validation, update rules, effective requests, QoS and kubectl's STATUS."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from dockyard.objects.pod import (
    apply_defaults,
    default_pull_policy,
    initial_status,
    is_pod_ready,
    pod_limits,
    pod_phase,
    pod_requests,
    pod_summary,
    qos_class,
    validate,
    validate_update,
)

pytestmark = pytest.mark.unit


class PodBuilder:
    """Builds pod dicts: make_pod("p").container("app", cpu="100m").on_node("n1")."""

    def __init__(self, name: str) -> None:
        self.obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": []},
        }

    def container(
        self,
        name: str = "app",
        image: str = "busybox:1.36",
        *,
        init: bool = False,
        sidecar: bool = False,
        **resources: Any,
    ) -> PodBuilder:
        c: dict[str, Any] = {"name": name, "image": image}
        requests = {
            k.replace("_", "-"): v for k, v in resources.items() if not k.startswith("lim_")
        }
        limits = {k[4:].replace("_", "-"): v for k, v in resources.items() if k.startswith("lim_")}
        if requests or limits:
            c["resources"] = {}
            if requests:
                c["resources"]["requests"] = requests
            if limits:
                c["resources"]["limits"] = limits
        if sidecar:
            c["restartPolicy"] = "Always"
        key = "initContainers" if init or sidecar else "containers"
        self.obj["spec"].setdefault(key, []).append(c)
        return self

    def on_node(self, node: str) -> PodBuilder:
        self.obj["spec"]["nodeName"] = node
        return self

    def status(self, **status: Any) -> PodBuilder:
        self.obj["status"] = status
        return self

    def deleting(self) -> PodBuilder:
        self.obj["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
        return self

    def build(self) -> dict[str, Any]:
        return copy.deepcopy(self.obj)

    def defaulted(self) -> dict[str, Any]:
        obj = self.build()
        apply_defaults(obj)
        return obj


def make_pod(name: str = "p") -> PodBuilder:
    return PodBuilder(name)


def errors(obj: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e.field, e.type) for e in validate(obj)]


# --- defaults ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v2", "IfNotPresent"),
        ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
    ],
)
def test_image_pull_policy_default(image: str, policy: str) -> None:
    assert default_pull_policy(image) == policy


def test_pod_defaults_as_kubernetes() -> None:
    pod = make_pod().container().build()
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    pod["spec"]["containers"][0]["livenessProbe"] = {"httpGet": {"port": 80}}
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "c"}}]
    apply_defaults(pod)
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["volumes"][0]["configMap"]["defaultMode"] == 420
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {}
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    # not-ready/unreachable tolerations: the api server's admission (test_admission_tolerations)
    assert "tolerations" not in spec


def test_defaults_are_idempotent() -> None:
    once = make_pod().container().defaulted()
    twice = copy.deepcopy(once)
    apply_defaults(twice)
    assert once == twice


def test_limits_become_requests_when_requests_missing() -> None:
    pod = make_pod().container(lim_cpu="500m", lim_memory="64Mi", cpu="100m").defaulted()
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {
        "cpu": "100m",
        "memory": "64Mi",
    }


def test_priority_class_leaves_priority_for_the_server() -> None:
    pod = make_pod().container().build()
    pod["spec"]["priorityClassName"] = "high"
    apply_defaults(pod)
    assert "priority" not in pod["spec"]


# --- validation ----------------------------------------------------------------------------


def with_container(**fields: Any) -> dict[str, Any]:
    pod = make_pod().container().build()
    pod["spec"]["containers"][0].update(fields)
    apply_defaults(pod)
    return pod


def test_valid_pod_has_no_errors() -> None:
    assert validate(make_pod().container(cpu="100m", lim_cpu="1").defaulted()) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"name": "Bad_Name"}, ("spec.containers[0].name", "FieldValueInvalid")),
        ({"name": ""}, ("spec.containers[0].name", "FieldValueRequired")),
        ({"image": ""}, ("spec.containers[0].image", "FieldValueRequired")),
        (
            {"imagePullPolicy": "Sometimes"},
            ("spec.containers[0].imagePullPolicy", "FieldValueNotSupported"),
        ),
        (
            {"ports": [{"containerPort": 0}]},
            ("spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
        ),
        (
            {"ports": [{"containerPort": 70000}]},
            ("spec.containers[0].ports[0].containerPort", "FieldValueInvalid"),
        ),
        (
            {"ports": [{"containerPort": 80, "protocol": "HTTP"}]},
            ("spec.containers[0].ports[0].protocol", "FieldValueNotSupported"),
        ),
        (
            {"ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}]},
            ("spec.containers[0].ports[1].name", "FieldValueDuplicate"),
        ),
        (
            {"ports": [{"containerPort": 80, "name": "a-very-long-port-name"}]},
            ("spec.containers[0].ports[0].name", "FieldValueInvalid"),
        ),
        (
            {"env": [{"name": "1BAD", "value": "x"}]},
            ("spec.containers[0].env[0].name", "FieldValueInvalid"),
        ),
        (
            {"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]},
            ("spec.containers[0].env[0].valueFrom", "FieldValueInvalid"),
        ),
        (
            {"resources": {"requests": {"cpu": "lots"}}},
            ("spec.containers[0].resources.requests[cpu]", "FieldValueInvalid"),
        ),
        (
            {"resources": {"requests": {"memory": "-1Mi"}}},
            ("spec.containers[0].resources.requests[memory]", "FieldValueInvalid"),
        ),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            ("spec.containers[0].resources.requests", "FieldValueInvalid"),
        ),
        (
            {"resources": {"requests": {"gpu": "1"}}},
            ("spec.containers[0].resources.requests[gpu]", "FieldValueInvalid"),
        ),
        (
            {"volumeMounts": [{"name": "missing", "mountPath": "/x"}]},
            ("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound"),
        ),
        (
            {"livenessProbe": {"periodSeconds": 5}},
            ("spec.containers[0].livenessProbe", "FieldValueRequired"),
        ),
        (
            {"livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}},
            ("spec.containers[0].livenessProbe.tcpSocket", "FieldValueForbidden"),
        ),
        (
            {"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}},
            ("spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid"),
        ),
        (
            {"readinessProbe": {"httpGet": {"port": 0}}},
            ("spec.containers[0].readinessProbe.httpGet.port", "FieldValueInvalid"),
        ),
    ],
)
def test_container_errors(fields: dict[str, Any], expected: tuple[str, str]) -> None:
    assert expected in errors(with_container(**fields))


def test_requests_over_limits_message() -> None:
    pod = with_container(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})
    [err] = validate(pod)
    assert err.message == 'Invalid value: "2": must be less than or equal to cpu limit of 1'


def test_extended_resources_accepted() -> None:
    pod = with_container(resources={"limits": {"example.com/gpu": "1"}})
    assert validate(pod) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s.update(containers=[]), ("spec.containers", "FieldValueRequired")),
        (
            lambda s: s["containers"].append(dict(s["containers"][0])),
            ("spec.containers[1].name", "FieldValueDuplicate"),
        ),
        (
            lambda s: s.update(restartPolicy="Sometimes"),
            ("spec.restartPolicy", "FieldValueNotSupported"),
        ),
        (lambda s: s.update(dnsPolicy="Weird"), ("spec.dnsPolicy", "FieldValueNotSupported")),
        (
            lambda s: s.update(
                volumes=[{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]
            ),
            ("spec.volumes[1].name", "FieldValueDuplicate"),
        ),
        (lambda s: s.update(volumes=[{"name": "a"}]), ("spec.volumes[0]", "FieldValueRequired")),
        (
            lambda s: s.update(volumes=[{"name": "a", "emptyDir": {}, "hostPath": {"path": "/"}}]),
            ("spec.volumes[0].hostPath", "FieldValueForbidden"),
        ),
        (
            lambda s: s.update(nodeSelector={"bad key": "x"}),
            ("spec.nodeSelector", "FieldValueInvalid"),
        ),
        (
            lambda s: s.update(tolerations=[{"key": "a", "operator": "Exists", "value": "v"}]),
            ("spec.tolerations[0].operator", "FieldValueInvalid"),
        ),
        (
            lambda s: s.update(tolerations=[{"key": "a", "effect": "Sometimes"}]),
            ("spec.tolerations[0].effect", "FieldValueNotSupported"),
        ),
        (
            lambda s: s.update(
                tolerations=[{"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5}]
            ),
            ("spec.tolerations[0].effect", "FieldValueInvalid"),
        ),
        (
            lambda s: s.update(activeDeadlineSeconds=0),
            ("spec.activeDeadlineSeconds", "FieldValueInvalid"),
        ),
        (lambda s: s.update(nodeName="Bad_Node"), ("spec.nodeName", "FieldValueInvalid")),
        (
            lambda s: s.update(
                initContainers=[
                    {"name": "i", "image": "x", "readinessProbe": {"exec": {"command": ["t"]}}}
                ]
            ),
            ("spec.initContainers[0].readinessProbe", "FieldValueForbidden"),
        ),
    ],
)
def test_spec_errors(mutate: Any, expected: tuple[str, str]) -> None:
    pod = make_pod().container().defaulted()
    mutate(pod["spec"])
    assert expected in errors(pod)


def test_spec_of_wrong_type_is_a_field_error() -> None:
    pod = make_pod().build()
    pod["spec"] = "nope"
    assert ("spec", "FieldValueTypeInvalid") in errors(pod)
    pod["spec"] = {"containers": "nope"}
    assert ("spec.containers", "FieldValueTypeInvalid") in errors(pod)


# --- update --------------------------------------------------------------------------------


def test_update_may_change_images_only() -> None:
    old = make_pod().container().defaulted()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    new["spec"]["activeDeadlineSeconds"] = 60
    assert validate_update(new, old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["restartPolicy"] = "Never"
    [err] = validate_update(moved, old)
    assert (err.field, err.type) == ("spec", "FieldValueForbidden")
    assert "restartPolicy" in err.message


def test_update_may_add_tolerations_but_not_remove() -> None:
    old = make_pod().container().defaulted()
    old["spec"]["tolerations"] = [{"key": "a", "operator": "Exists", "effect": "NoExecute"},
                                  {"key": "b", "operator": "Exists"}]
    more = copy.deepcopy(old)
    more["spec"]["tolerations"].append({"key": "x", "operator": "Exists"})
    assert validate_update(more, old) == []
    fewer = copy.deepcopy(old)
    fewer["spec"]["tolerations"] = fewer["spec"]["tolerations"][:1]
    assert [e.field for e in validate_update(fewer, old)] == ["spec"]


# --- requests and QoS ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        # 100m + 200m = 300m cpu; 64Mi + 0 memory
        (
            make_pod().container("a", cpu="100m", memory="64Mi").container("b", cpu="200m"),
            {"cpu": 300, "memory": 64 * 2**20},
        ),
        # an init container needing 1 cpu dominates the 300m of the app containers
        (make_pod().container("a", cpu="300m").container("i", cpu="1", init=True), {"cpu": 1000}),
        # a sidecar adds to the app containers: 300m + 100m = 400m; the init step is 100m+200m
        (
            make_pod()
            .container("s", cpu="100m", sidecar=True)
            .container("i", cpu="200m", init=True)
            .container("a", cpu="300m"),
            {"cpu": 400},
        ),
        # extended resources pass through in whole units
        (make_pod().container("a", **{"example.com/gpu": "2"}), {"example.com/gpu": 2}),
        (make_pod().container("a"), {}),
    ],
)
def test_pod_requests(builder: PodBuilder, expected: dict[str, int]) -> None:
    assert pod_requests(builder.build()) == expected


def test_pod_overhead_counts() -> None:
    pod = make_pod().container("a", cpu="100m").build()
    pod["spec"]["overhead"] = {"cpu": "50m"}
    assert pod_requests(pod) == {"cpu": 150}


@pytest.mark.parametrize(
    ("builder", "qos"),
    [
        (make_pod().container(), "BestEffort"),
        (make_pod().container(cpu="100m"), "Burstable"),
        (make_pod().container(lim_cpu="1", lim_memory="1Gi"), "Guaranteed"),
        (make_pod().container(cpu="500m", lim_cpu="1", lim_memory="1Gi"), "Burstable"),
        (make_pod().container(lim_cpu="1"), "Burstable"),
    ],
)
def test_qos_class(builder: PodBuilder, qos: str) -> None:
    assert qos_class(builder.defaulted()) == qos
    assert qos_class(builder.build()) == qos  # the same before defaults (create order)
    assert initial_status(builder.defaulted()) == {"phase": "Pending", "qosClass": qos}


def test_phase_and_readiness() -> None:
    pod = make_pod().container().build()
    assert pod_phase(pod) == "Pending"
    assert not is_pod_ready(pod)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    assert pod_phase(pod) == "Running" and is_pod_ready(pod)


# --- kubectl STATUS ------------------------------------------------------------------------

RUNNING = {"running": {"startedAt": "2024-01-01T00:00:00Z"}}


def cs(
    name: str = "app",
    *,
    ready: bool = False,
    restarts: int = 0,
    state: Any = None,
    last: Any = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": state or {},
    }
    if last:
        status["lastState"] = last
    return status


@pytest.mark.parametrize(
    ("builder", "ready", "reason", "restarts"),
    [
        (make_pod().container().status(phase="Pending"), 0, "Pending", 0),
        (
            make_pod()
            .container()
            .status(phase="Running", containerStatuses=[cs(ready=True, state=RUNNING)]),
            1,
            "Running",
            0,
        ),
        (
            make_pod()
            .container()
            .status(
                phase="Running",
                containerStatuses=[
                    cs(restarts=4, state={"waiting": {"reason": "CrashLoopBackOff"}})
                ],
            ),
            0,
            "CrashLoopBackOff",
            4,
        ),
        (
            make_pod()
            .container()
            .status(
                phase="Pending",
                containerStatuses=[cs(state={"waiting": {"reason": "ImagePullBackOff"}})],
            ),
            0,
            "ImagePullBackOff",
            0,
        ),
        (
            make_pod()
            .container()
            .status(
                phase="Succeeded",
                containerStatuses=[
                    cs(state={"terminated": {"exitCode": 0, "reason": "Completed"}})
                ],
            ),
            0,
            "Completed",
            0,
        ),
        (
            make_pod()
            .container()
            .status(phase="Failed", containerStatuses=[cs(state={"terminated": {"exitCode": 3}})]),
            0,
            "ExitCode:3",
            0,
        ),
        (
            make_pod()
            .container()
            .status(
                phase="Failed",
                containerStatuses=[cs(state={"terminated": {"exitCode": 137, "signal": 9}})],
            ),
            0,
            "Signal:9",
            0,
        ),
        (
            make_pod()
            .container()
            .container("i", init=True)
            .status(phase="Pending", initContainerStatuses=[cs("i", state={"running": {}})]),
            0,
            "Init:0/1",
            0,
        ),
        (
            make_pod()
            .container()
            .container("i", init=True)
            .status(
                phase="Pending",
                initContainerStatuses=[
                    cs("i", state={"terminated": {"exitCode": 1, "reason": "Error"}})
                ],
            ),
            0,
            "Init:Error",
            0,
        ),
        (
            make_pod()
            .container()
            .container("i", init=True)
            .status(
                phase="Pending",
                initContainerStatuses=[
                    cs("i", restarts=2, state={"waiting": {"reason": "CrashLoopBackOff"}})
                ],
            ),
            0,
            "Init:CrashLoopBackOff",
            2,
        ),
        (
            make_pod()
            .container()
            .status(phase="Running", containerStatuses=[cs(ready=True, state=RUNNING)])
            .deleting(),
            1,
            "Terminating",
            0,
        ),
        (
            make_pod().container().status(phase="Running", reason="NodeLost").deleting(),
            0,
            "Unknown",
            0,
        ),
        (make_pod().container().status(phase="Failed", reason="Evicted"), 0, "Evicted", 0),
        # a sidecar counts towards READY's total: 2/2
        (
            make_pod()
            .container()
            .container("s", sidecar=True)
            .status(
                phase="Running",
                initContainerStatuses=[{**cs("s", ready=True, state=RUNNING), "started": True}],
                containerStatuses=[cs(ready=True, state=RUNNING)],
            ),
            2,
            "Running",
            0,
        ),
    ],
)
def test_pod_summary(builder: PodBuilder, ready: int, reason: str, restarts: int) -> None:
    summary = pod_summary(builder.build())
    assert (summary.ready, summary.reason, summary.restarts) == (ready, reason, restarts)


def test_pod_summary_remembers_last_restart() -> None:
    last = {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:05:00Z"}}
    pod = (
        make_pod()
        .container()
        .status(
            phase="Running",
            containerStatuses=[cs(ready=True, restarts=2, state=RUNNING, last=last)],
        )
        .build()
    )
    summary = pod_summary(pod)
    assert summary.total == 1
    assert summary.last_restart == datetime(2024, 1, 1, 0, 5, tzinfo=UTC)


# --- status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            {
                "phase": "Running",
                "podIP": "10.244.0.5",
                "podIPs": [{"ip": "10.244.0.5"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "restartCount": 1}],
            },
            [],
        ),
        ({"phase": "Sleeping"}, [("status.phase", "FieldValueNotSupported")]),
        (
            {"conditions": [{"type": "Ready", "status": "Maybe"}]},
            [("status.conditions[0].status", "FieldValueNotSupported")],
        ),
        ({"podIP": "10.244.0.999"}, [("status.podIP", "FieldValueInvalid")]),
        (
            {"podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.6"}]},
            [("status.podIPs[0].ip", "FieldValueInvalid")],
        ),
        (
            {"containerStatuses": [{"name": "ghost"}]},
            [("status.containerStatuses[0].name", "FieldValueNotFound")],
        ),
        (
            {"containerStatuses": [{"name": "app", "restartCount": -1}]},
            [("status.containerStatuses[0].restartCount", "FieldValueInvalid")],
        ),
    ],
)
def test_status_errors(status: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    pod = make_pod().container().status(**status).defaulted()
    assert errors(pod) == expected


def test_terminal_phase_is_final() -> None:
    old = make_pod().container().status(phase="Succeeded").defaulted()
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Running"
    assert [(e.field, e.type) for e in validate_update(new, old)] == [
        ("status.phase", "FieldValueForbidden")
    ]
    running = make_pod().container().status(phase="Running").defaulted()
    done = copy.deepcopy(running)
    done["status"]["phase"] = "Failed"
    assert validate_update(done, running) == []


# --- security context, lifecycle, host ports -----------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_ADMIN"]}}}, []),
        (
            {"securityContext": {"runAsUser": -1}},
            [("spec.containers[0].securityContext.runAsUser", "FieldValueInvalid")],
        ),
        (
            {"securityContext": {"privileged": "yes"}},
            [("spec.containers[0].securityContext.privileged", "FieldValueTypeInvalid")],
        ),
        (
            {"securityContext": {"privileged": True, "allowPrivilegeEscalation": False}},
            [("spec.containers[0].securityContext.allowPrivilegeEscalation", "FieldValueInvalid")],
        ),
        ({"lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", "sleep 1"]}}}}, []),
        (
            {"lifecycle": {"preStop": {}}},
            [("spec.containers[0].lifecycle.preStop", "FieldValueRequired")],
        ),
        (
            {"lifecycle": {"postStart": {"exec": {"command": ["x"]}, "sleep": {"seconds": 1}}}},
            [("spec.containers[0].lifecycle.postStart.sleep", "FieldValueForbidden")],
        ),
        (
            {"lifecycle": {"preStop": {"sleep": {"seconds": 0}}}},
            [("spec.containers[0].lifecycle.preStop.sleep.seconds", "FieldValueInvalid")],
        ),
    ],
)
def test_security_context_and_lifecycle(fields: dict[str, Any], expected: list[Any]) -> None:
    assert errors(with_container(**fields)) == expected


def test_host_ports_may_not_collide() -> None:
    pod = make_pod().container("a").container("b").build()
    for c in pod["spec"]["containers"]:
        c["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    apply_defaults(pod)
    assert errors(pod) == [("spec.containers[1].ports[0].hostPort", "FieldValueDuplicate")]
    pod["spec"]["containers"][1]["ports"][0]["protocol"] = "UDP"  # another protocol is fine
    assert errors(pod) == []
    pod["spec"]["securityContext"] = {"fsGroup": -5}
    assert errors(pod) == [("spec.securityContext.fsGroup", "FieldValueInvalid")]


def test_null_fields_get_defaults_like_absent_ones() -> None:
    pod = make_pod().container().build()
    pod["spec"].update(restartPolicy=None, tolerations=None, securityContext=None)
    pod["spec"]["containers"][0].update(resources=None, imagePullPolicy=None)
    apply_defaults(pod)
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["securityContext"] == {}
    assert pod["spec"]["tolerations"] is None  # no default: left to admission
    assert pod["spec"]["containers"][0]["resources"] == {}
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert validate(pod) == []


def test_pod_limits_follow_the_same_arithmetic() -> None:
    # app 1 cpu + sidecar 500m = 1500m; the init step 500m + 2 = 2500m dominates
    pod = (
        make_pod()
        .container("s", sidecar=True, lim_cpu="500m")
        .container("i", init=True, lim_cpu="2")
        .container("a", lim_cpu="1", lim_memory="1Gi")
        .build()
    )
    assert pod_limits(pod) == {"cpu": 2500, "memory": 2**30}
    # worked example from the code comment: 100m + 200m apps, 50m sidecar, 1 cpu init
    pod = (
        make_pod()
        .container("s", sidecar=True, cpu="50m")
        .container("i", init=True, cpu="1")
        .container("a", cpu="100m")
        .container("b", cpu="200m")
        .build()
    )
    assert pod_requests(pod) == {"cpu": 1050}
