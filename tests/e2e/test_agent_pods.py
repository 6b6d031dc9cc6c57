"""The agent end to end: a real `dockyard server` with its agent, real runc, driven by kubectl.

Covers node registration and heartbeat, a pod's life (init containers, env, volumes, status as
Kubernetes reports it), logs, exec, top, restarts with back-off, probes, the reasons a pod
cannot run, and graceful deletion with preStop hooks; the module's server is checked to leave
nothing behind.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.images.store import ImageStore
from tests.e2e.test_agent_support import (
    KUBECTL,
    AgentServer,
    container_status,
    new_server,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentServer]:
    srv = new_server(tmp_path_factory.mktemp("agent-e2e"))
    try:
        yield srv
    finally:
        srv.stop_and_check()


def running(server: AgentServer, name: str) -> dict:
    def check() -> dict | None:
        pod = server.get("pod", name)
        return pod if pod["status"].get("phase") == "Running" else None

    return wait_until(check, what=f"pod {name} Running")  # type: ignore[no-any-return]


def waiting_reason(server: AgentServer, name: str, reasons: set[str]) -> dict:
    def check() -> dict | None:
        status = container_status(server.get("pod", name))
        waiting = status.get("state", {}).get("waiting", {})
        return waiting if waiting.get("reason") in reasons else None

    return wait_until(check, what=f"{name} waiting with {reasons}")  # type: ignore[no-any-return]


def test_node_registers_with_capacity_conditions_and_lease(server: AgentServer) -> None:
    node = server.get("node", server.node)
    status = node["status"]
    assert status["capacity"]["pods"] == "110" and status["allocatable"]["pods"] == "110"
    assert int(status["capacity"]["cpu"]) >= 1 and status["allocatable"]["memory"].endswith("Ki")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "KubeletReady"
    assert conditions["MemoryPressure"]["status"] == "False"
    assert conditions["PIDPressure"]["status"] == "False"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert {"type": "Hostname", "address": server.node} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    assert status["nodeInfo"]["operatingSystem"] == "linux"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("runc://")
    first = server.get("lease", server.node, "kube-node-lease")["spec"]["renewTime"]
    wait_until(lambda: server.get("lease", server.node, "kube-node-lease")["spec"]["renewTime"]
               != first, timeout=30, what="the lease renewed")  # fmt: skip


def test_pod_runs_with_init_env_volumes_and_reports_status(server: AgentServer) -> None:
    secret = base64.b64encode(b"s3cret").decode()
    server.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{greeting: hello, file.txt: from-configmap}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
data: {{password: {secret}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: life, labels: {{app: life}}}}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - {{name: prep, image: busybox, command: [sh, -c, "echo prepared > /shared/mark"],
     volumeMounts: [{{name: shared, mountPath: /shared}}]}}
  containers:
  - name: main
    image: busybox
    command: [sh, -c, "cat /shared/mark; echo $GREETING $POD $NS $IP $NODE $(MSG); cat /cfg/file.txt; echo; cat /sec/password; echo; exec sleep 3600"]
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: cfg, key: greeting}}}}}}
    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: NS, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
    - {{name: IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}
    - {{name: MSG, value: "msg-$(POD)"}}
    volumeMounts:
    - {{name: shared, mountPath: /shared}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: sec, mountPath: /sec}}
  volumes:
  - {{name: shared, emptyDir: {{}}}}
  - {{name: cfg, configMap: {{name: cfg}}}}
  - {{name: sec, secret: {{secretName: sec}}}}
""")  # noqa: E501
    pod = running(server, "life")
    wait_until(lambda: "s3cret" in server.kubectl("logs", "life").stdout, what="logs")
    pod = server.get("pod", "life")
    ip = pod["status"]["podIP"]
    lines = server.kubectl("logs", "life").stdout.splitlines()
    assert lines[:4] == ["prepared", f"hello life default {ip} {server.node} msg-life",
                         "from-configmap", "s3cret"]  # fmt: skip
    status = pod["status"]
    assert status["hostIP"] == "127.0.0.1" and status["podIPs"] == [{"ip": ip}]
    assert status["startTime"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"PodReadyToStartContainers": "True", "Initialized": "True",
                          "Ready": "True", "ContainersReady": "True", "PodScheduled": "True"}
    main = container_status(pod, "main")
    assert main["ready"] and main["started"] and main["restartCount"] == 0
    assert main["containerID"].startswith("runc://")
    assert main["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert "startedAt" in main["state"]["running"]
    init = pod["status"]["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert init["state"]["terminated"]["exitCode"] == 0
    assert server.kubectl("logs", "life", "-c", "prep").stdout == ""
    events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=life",
                            "-o", "jsonpath={.items[*].reason}").stdout.split()  # fmt: skip
    assert {"Pulled", "Created", "Started"} <= set(events)


def test_exec_streams_stdio_and_exit_codes(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: shell}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
""")
    running(server, "shell")
    out = server.kubectl("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                         check=False)  # fmt: skip
    assert out.returncode == 3 and out.stdout == "out\n" and "err" in out.stderr
    echoed = server.kubectl("exec", "-i", "shell", "--", "sh", "-c", "tr a-z A-Z; echo done",
                            stdin="hello\n")  # fmt: skip
    assert echoed.stdout == "HELLO\ndone\n"
    missing = server.kubectl("exec", "shell", "--", "/no/such", check=False)
    assert missing.returncode != 0


def test_logs_follow_tail_and_previous_after_kill(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: counter}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sh, -c, "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"]}
""")  # noqa: E501
    first = running(server, "counter")
    wait_until(lambda: len(server.kubectl("logs", "counter").stdout.splitlines()) >= 5)
    assert server.kubectl("logs", "counter", "--tail", "2").stdout.count("\n") == 2
    follow = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(server.kubeconfig), "logs", "-f", "counter", "--tail",
         "1"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in range(4)]
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + 4))  # new lines as they come
    finally:
        follow.kill()
        follow.wait()
    # kill the container's process (our server started it): the agent restarts it
    os.kill(server.container_pid(first["metadata"]["uid"], "c"), signal.SIGKILL)
    pod = wait_until(lambda: (p := server.get("pod", "counter")) and
                     container_status(p)["restartCount"] >= 1 and
                     "running" in container_status(p)["state"] and p, what="a restart")
    status = container_status(pod)
    assert status["lastState"]["terminated"]["exitCode"] == 137
    assert status["containerID"] != container_status(first)["containerID"]
    previous = server.kubectl("logs", "counter", "--previous").stdout
    assert previous.startswith("line 0\nline 1\n")


def test_crash_loop_backs_off(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sh, -c, "echo bye; exit 2"]}]
""")
    waiting = waiting_reason(server, "crasher", {"CrashLoopBackOff"})
    assert "back-off 10s restarting failed container=c" in waiting["message"]
    pod = server.get("pod", "crasher")
    status = container_status(pod)
    assert status["restartCount"] == 1  # 0 → immediate restart, then 10 s back-off
    assert status["lastState"]["terminated"]["exitCode"] == 2
    assert pod["status"]["phase"] == "Running"  # as Kubernetes: crash-looping pods are Running
    assert "CrashLoopBackOff" in server.kubectl("get", "pod", "crasher").stdout


def test_restart_policy_never_and_on_failure(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: once}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "echo ok"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  restartPolicy: Never
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 7"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: retry}
spec:
  restartPolicy: OnFailure
  containers: [{name: c, image: busybox, command: [sh, -c, "exit 0"]}]
""")
    for name, phase in (("once", "Succeeded"), ("fails", "Failed"), ("retry", "Succeeded")):
        wait_until(lambda n=name, ph=phase: server.get("pod", n)["status"].get("phase") == ph,
                   what=f"{name} {phase}")  # fmt: skip
    fails = container_status(server.get("pod", "fails"))
    assert fails["state"]["terminated"]["exitCode"] == 7 and fails["restartCount"] == 0
    assert "Completed" in server.kubectl("get", "pod", "once").stdout


def test_liveness_failure_restarts_and_readiness_flips_ready(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "touch /tmp/alive; mkdir -p /www; echo ok > /www/index.html; exec httpd -f -p 8080 -h /www"]
    readinessProbe: {httpGet: {path: /index.html, port: 8080}, periodSeconds: 1}
    livenessProbe: {exec: {command: [cat, /tmp/alive]}, periodSeconds: 1, failureThreshold: 2}
    startupProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
""")  # noqa: E501
    wait_until(lambda: container_status(server.get("pod", "probed")).get("ready"),
               what="probed Ready")  # fmt: skip
    server.kubectl("exec", "probed", "--", "rm", "/www/index.html")
    wait_until(lambda: not container_status(server.get("pod", "probed")).get("ready"),
               what="probed not Ready")  # fmt: skip
    pod = server.get("pod", "probed")
    ready = {c["type"]: c for c in pod["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ContainersNotReady"
    assert container_status(pod)["restartCount"] == 0
    server.kubectl("exec", "probed", "--", "rm", "/tmp/alive")
    wait_until(lambda: container_status(server.get("pod", "probed"))["restartCount"] >= 1,
               what="a liveness restart")  # fmt: skip
    wait_until(lambda: container_status(server.get("pod", "probed")).get("ready"),
               what="Ready again after the restart")  # fmt: skip
    events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=probed"
                            ).stdout  # fmt: skip
    assert "Liveness probe failed" in events and "Readiness probe failed" in events
    assert "failed liveness probe, will be restarted" in events


def test_reasons_when_a_pod_cannot_run(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  containers: [{name: c, image: "nothing-here:1.0"}]
---
apiVersion: v1
kind: Pod
metadata: {name: neverpull}
spec:
  containers: [{name: c, image: "nothing:1.0", imagePullPolicy: Never}]
---
apiVersion: v1
kind: Pod
metadata: {name: nokey}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env: [{name: X, valueFrom: {configMapKeyRef: {name: cfg, key: absent}}}]
---
apiVersion: v1
kind: Pod
metadata: {name: badcommand}
spec:
  containers: [{name: c, image: busybox, command: [/not/there]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nohostpath}
spec:
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"], volumeMounts: [{name: h, mountPath: /h}]}
  volumes: [{name: h, hostPath: {path: /etc}}]
""")
    # a short name is pulled from the cluster's own registry (on loopback), which lacks it
    assert 'Failed to pull image "nothing-here:1.0"' in waiting_reason(
        server, "noimage", {"ErrImagePull", "ImagePullBackOff"})["message"]
    waiting_reason(server, "noimage", {"ImagePullBackOff"})
    assert "pull policy of Never" in waiting_reason(server, "neverpull",
                                                    {"ErrImageNeverPull"})["message"]
    assert "couldn't find key absent" in waiting_reason(
        server, "nokey", {"CreateContainerConfigError"})["message"]
    assert "/not/there" in waiting_reason(server, "badcommand", {"RunContainerError"})["message"]
    assert "is not allowed on this node" in waiting_reason(
        server, "nohostpath", {"ContainerCreating"})["message"]
    for name in ("noimage", "neverpull", "nokey", "badcommand", "nohostpath"):
        assert server.get("pod", name)["status"]["phase"] == "Pending"


def test_graceful_deletion_runs_prestop_then_sigterm(server: AgentServer) -> None:
    host = server.base / "host"
    server.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "trap 'echo term >> /h/log; exit 0' TERM; while true; do sleep 0.1; done"]
    lifecycle: {{preStop: {{exec: {{command: [sh, -c, "echo prestop >> /h/log"]}}}}}}
    volumeMounts: [{{name: h, mountPath: /h}}]
  volumes: [{{name: h, hostPath: {{path: {host}, type: Directory}}}}]
""")
    running(server, "graceful")
    started = time.monotonic()
    server.kubectl("delete", "pod", "graceful", "--wait=true", timeout=60)
    took = time.monotonic() - started
    assert (host / "log").read_text() == "prestop\nterm\n"
    assert took < 15  # the container exited on SIGTERM, long before the 20 s grace
    assert server.kubectl("get", "pod", "graceful", check=False).returncode != 0


def test_top_reads_metrics_api(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: busy}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sh, -c, "while true; do :; done"]}]
""")
    running(server, "busy")

    def busy_cpu() -> int:
        out = server.kubectl("top", "pod", "busy", "--no-headers", check=False).stdout.split()
        return int(out[1].rstrip("m")) if len(out) >= 3 else 0

    assert wait_until(busy_cpu, timeout=60, what="cpu usage of busy") > 100
    node = server.kubectl("top", "node", "--no-headers").stdout.split()
    assert node[0] == server.node and node[1].endswith("m")
    server.kubectl("delete", "pod", "busy", "--grace-period=1")


def test_node_token_acts_only_for_its_node(server: AgentServer) -> None:
    token = (server.data_dir / "agent" / server.node / "node-token").read_text().strip()
    own = server.kubectl("--token", token, "label", "node", server.node, "agent-test=yes")
    assert own.returncode == 0
    other = server.kubectl("--token", token, "create", "configmap", "by-node", check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower()
    assert Path(server.data_dir / "agent" / server.node / "serving.key").stat().st_mode & 0o077 == 0


def test_host_port_and_localhost_between_containers(server: AgentServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        host_port = s.getsockname()[1]
    server.apply(f"""
apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: busybox
    command: [sh, -c, "mkdir -p /www; echo served > /www/index.html; exec httpd -f -p 8080 -h /www"]
    ports: [{{containerPort: 8080, hostPort: {host_port}}}]
    readinessProbe: {{tcpSocket: {{port: 8080}}, periodSeconds: 1}}
  - {{name: client, image: busybox, command: [sleep, "3600"]}}
""")  # noqa: E501
    wait_until(lambda: container_status(server.get("pod", "web"), "server").get("ready"))
    local = server.kubectl("exec", "web", "-c", "client", "--", "wget", "-qO-",
                           "http://127.0.0.1:8080/")  # fmt: skip
    assert local.stdout == "served\n"
    with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=10) as resp:
        assert resp.read() == b"served\n"


def test_kubectl_before_1_30_gets_a_clear_exec_error(server: AgentServer) -> None:
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: old-client}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
""")
    running(server, "old-client")
    result = subprocess.run(
        [KUBECTL.replace("1.32", "1.29"), "--kubeconfig", str(server.kubeconfig), "exec",
         "old-client", "--", "true"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "kubectl 1.30 or newer" in result.stderr


def test_changing_a_pods_image_restarts_its_container(server: AgentServer) -> None:
    ImageStore(server.data_dir).tag("busybox:latest", "busybox:v2")
    server.apply("""
apiVersion: v1
kind: Pod
metadata: {name: swap}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: "busybox:latest", command: [sleep, "3600"]}]
""")
    before = container_status(running(server, "swap"))
    server.kubectl("set", "image", "pod/swap", "c=busybox:v2")
    after = wait_until(lambda: (s := container_status(server.get("pod", "swap")))
                       .get("image") == "busybox:v2" and "running" in s["state"] and s,
                       what="the new image running")  # fmt: skip
    assert after["containerID"] != before["containerID"] and after["restartCount"] == 1
