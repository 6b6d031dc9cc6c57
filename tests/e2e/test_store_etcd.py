"""`dockyard server --store etcd://...`: real etcd, real kubectl 1.32, two api servers on one etcd.

Server A runs the controllers and the scheduler; server B (its own data dir and port, sharing
A's CA and tokens through --shared-dir) runs neither, so no loop runs twice. What one server
writes the other lists and watches, because both read the same etcd.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.etcds import RunningEtcd, etcd_installed, free_port, make_etcd_certs, start_etcd
from tests.servers import DOCKYARD, RunningServer, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not etcd_installed(), reason="apt-get install etcd-server"),
]

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")
if not KUBECTL.exists():
    pytest.skip("kubectl 1.32 is not installed here", allow_module_level=True)


class Kubectl:
    """kubectl 1.32 with one server's kubeconfig and a private cache dir."""

    def __init__(self, server: RunningServer, cache: Path) -> None:
        self.base = [str(KUBECTL), "--kubeconfig", str(server.kubeconfig),
                     "--cache-dir", str(cache)]

    def run(self, *args: str) -> str:
        result = subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.run(*args, "-o", "json"))

    def watch(self, *args: str) -> subprocess.Popen[str]:
        """Start `kubectl get -w` (stopped by the caller, by PID)."""
        return subprocess.Popen([*self.base, "get", "-w", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEtcd]:
    running = start_etcd(tmp_path_factory.mktemp("etcd"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server_a(etcd: RunningEtcd, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[RunningServer]:  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("a") / "data", "--store", etcd.store_spec)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_b(etcd: RunningEtcd, server_a: RunningServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:  # fmt: skip
    server = start_server(tmp_path_factory.mktemp("b") / "data", "--store", etcd.store_spec,
                          "--shared-dir", str(server_a.data_dir), "--no-scheduler",
                          controllers=False)
    yield server
    server.stop()


@pytest.fixture
def kubectl_a(server_a: RunningServer, tmp_path: Path) -> Kubectl:
    return Kubectl(server_a, tmp_path / "cache-a")


@pytest.fixture
def kubectl_b(server_b: RunningServer, tmp_path: Path) -> Kubectl:
    return Kubectl(server_b, tmp_path / "cache-b")


def read_until(watch: subprocess.Popen[str], wanted: str, timeout: float = 20) -> list[str]:
    """Return the watch's lines up to the first containing wanted; stop the watch by PID."""
    lines: list[str] = []
    try:
        assert watch.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = watch.stdout.readline()
            if not line:
                break
            lines.append(line)
            if wanted in line:
                return lines
        raise AssertionError(f"the watch never showed {wanted!r}: {lines}")
    finally:
        watch.kill()
        watch.wait(timeout=10)


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until check() is true, failing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.3)


def test_kubectl_create_get_list_watch_delete_on_etcd(kubectl_a: Kubectl) -> None:
    kubectl_a.run("create", "namespace", "etcd-one")  # protobuf body from kubectl 1.32
    kubectl_a.run("create", "configmap", "c1", "-n", "etcd-one", "--from-literal", "k=v")
    assert kubectl_a.json("get", "configmap", "c1", "-n", "etcd-one")["data"] == {"k": "v"}
    listed = kubectl_a.json("get", "configmaps", "-n", "etcd-one")["items"]
    assert "c1" in [item["metadata"]["name"] for item in listed]
    watch = kubectl_a.watch("configmaps", "-n", "etcd-one", "-o", "name", "--watch-only")
    time.sleep(1)  # let the watch start before the change it must see
    kubectl_a.run("create", "configmap", "c2", "-n", "etcd-one")
    assert any("configmap/c2" in line for line in read_until(watch, "configmap/c2"))
    kubectl_a.run("delete", "configmap", "c1", "-n", "etcd-one")
    names = kubectl_a.run("get", "configmaps", "-n", "etcd-one", "-o", "name").split()
    assert "configmap/c1" not in names and "configmap/c2" in names


def test_created_through_one_server_is_listed_and_watched_through_the_other(
    kubectl_a: Kubectl, kubectl_b: Kubectl
) -> None:
    kubectl_a.run("create", "namespace", "etcd-two")
    kubectl_a.run("create", "configmap", "from-a", "-n", "etcd-two")
    names = kubectl_b.run("get", "configmaps", "-n", "etcd-two", "-o", "name").split()
    assert "configmap/from-a" in names
    watch = kubectl_b.watch("configmaps", "-n", "etcd-two", "-o", "name", "--watch-only")
    time.sleep(1)
    kubectl_a.run("create", "configmap", "seen-by-b", "-n", "etcd-two")
    read_until(watch, "configmap/seen-by-b")
    kubectl_b.run("delete", "configmap", "from-a", "-n", "etcd-two")
    assert "configmap/from-a" not in kubectl_a.run("get", "cm", "-n", "etcd-two", "-o", "name")


def test_deployment_through_a_gets_pods_from_a_visible_in_b(
    kubectl_a: Kubectl, kubectl_b: Kubectl
) -> None:
    kubectl_a.run("create", "namespace", "etcd-three")
    kubectl_a.run("create", "deployment", "web", "-n", "etcd-three", "--image", "nginx:1.27",
                  "--replicas", "3")

    def three_pods_in_b() -> bool:
        pods = kubectl_b.json("get", "pods", "-n", "etcd-three", "-l", "app=web")["items"]
        return len(pods) == 3

    eventually(three_pods_in_b)  # only A runs controllers: A's ReplicaSet controller made them
    pods = kubectl_b.json("get", "pods", "-n", "etcd-three", "-l", "app=web")["items"]
    owners = {ref["kind"] for pod in pods for ref in pod["metadata"]["ownerReferences"]}
    assert owners == {"ReplicaSet"}
    deployment = kubectl_b.json("get", "deployment", "web", "-n", "etcd-three")
    assert deployment["status"]["replicas"] == 3


def test_service_ips_are_unique_across_both_servers(
    kubectl_a: Kubectl, kubectl_b: Kubectl
) -> None:
    kubectl_a.run("create", "namespace", "etcd-four")
    for n in range(6):  # alternate servers: both allocate from the claims in etcd
        kubectl = kubectl_a if n % 2 == 0 else kubectl_b
        kubectl.run("create", "service", "nodeport", f"s{n}", "-n", "etcd-four", "--tcp", "80")
    services = kubectl_a.json("get", "services", "-n", "etcd-four")["items"]
    ips = [s["spec"]["clusterIP"] for s in services]
    ports = [s["spec"]["ports"][0]["nodePort"] for s in services]
    assert len(ips) == 6 and len(set(ips)) == 6
    assert len(set(ports)) == 6


def test_a_token_made_through_b_works_at_a(server_a: RunningServer,
                                           server_b: RunningServer) -> None:  # fmt: skip
    join = (server_a.data_dir / "node-token").read_text().strip()
    code, body, _ = server_b.request("POST", "/dockyard/v1/join",
                                     json.dumps({"nodeName": "etcd-node"}).encode(), token=join)
    assert code == 201, body
    node_token = json.loads(body)["token"]
    code, body, _ = server_a.request("GET", "/api/v1/nodes/etcd-node", token=node_token)
    assert code != 401, body  # A knows the token B made: tokens.json is shared
    code, _, _ = server_a.request("GET", "/api/v1/nodes/etcd-node", token="dyn_unknown")
    assert code == 401


def test_both_servers_present_one_ca(server_a: RunningServer, server_b: RunningServer) -> None:
    assert server_b.ca_file.read_bytes() == server_a.ca_file.read_bytes()
    ca = x509.load_pem_x509_certificate(server_a.ca_file.read_bytes())
    serving = x509.load_pem_x509_certificate(
        (server_b.data_dir / "pki" / "server.crt").read_bytes())
    assert serving.issuer == ca.subject
    # Verified against A's CA file, with the admin token both servers share (it is in A's dir).
    assert server_b.request("GET", "/version", token=server_a.token)[0] == 200


def test_a_server_outlives_an_etcd_restart(tmp_path: Path) -> None:
    etcd = start_etcd(tmp_path / "etcd")
    try:
        server = start_server(tmp_path / "data", "--store", etcd.store_spec, "--no-scheduler",
                              controllers=False)
        try:
            kubectl = Kubectl(server, tmp_path / "cache")
            kubectl.run("create", "configmap", "before")
            etcd.restart()
            # Requests and watches after the restart reach the same etcd again.
            eventually(lambda: subprocess.run(
                [*kubectl.base, "get", "configmap", "before"], capture_output=True,
                timeout=60).returncode == 0)
            watch = kubectl.watch("configmaps", "-o", "name", "--watch-only")
            time.sleep(1)
            kubectl.run("create", "configmap", "after")
            read_until(watch, "configmap/after")
        finally:
            server.stop()
    finally:
        etcd.stop()


def test_unreachable_etcd_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "never"
    result = subprocess.run(
        [DOCKYARD, "server", "--data-dir", str(data_dir), "--port", "0", "--no-agent",
         "--store", f"etcd://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert f"cannot reach etcd at http://127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()


def test_a_second_server_on_the_same_data_dir_is_refused(
    etcd: RunningEtcd, server_a: RunningServer
) -> None:
    result = subprocess.run(
        [DOCKYARD, "server", "--data-dir", str(server_a.data_dir), "--port", "0", "--no-agent",
         "--store", etcd.store_spec],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert f"data dir {server_a.data_dir.resolve()} is in use by another dockyard server" in (
        result.stderr)
    assert "Traceback" not in result.stderr
    assert server_a.request("GET", "/healthz")[0] == 200  # the first one is untouched


def test_server_on_etcd_over_tls(tmp_path: Path) -> None:
    certs = make_etcd_certs(tmp_path / "certs")
    etcd = start_etcd(tmp_path / "etcd", certs)
    try:
        server = start_server(tmp_path / "data", "--store", etcd.store_spec,
                              "--etcd-cafile", str(certs.ca), "--etcd-certfile",
                              str(certs.client_cert), "--etcd-keyfile", str(certs.client_key),
                              "--no-scheduler", controllers=False)
        try:
            kubectl = Kubectl(server, tmp_path / "cache")
            kubectl.run("create", "configmap", "over-tls")
            assert kubectl.json("get", "configmap", "over-tls")["metadata"]["name"] == "over-tls"
        finally:
            server.stop()
    finally:
        etcd.stop()
