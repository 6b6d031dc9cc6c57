"""Real kubectl (1.27 and 1.32) against a dockyard server, with its kubeconfig unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.servers import RunningServer

pytestmark = pytest.mark.e2e

KUBECTL_DIR = Path("/usr/lib/google-cloud-sdk/bin")
VERSIONS = [v for v in ("1.27", "1.32") if (KUBECTL_DIR / f"kubectl.{v}").exists()]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nginx" / "deployment.yaml"

if not VERSIONS:
    pytest.skip("kubectl binaries are not installed here", allow_module_level=True)


class Kubectl:
    """Runs one kubectl version with the server's kubeconfig and a private cache dir."""

    def __init__(self, version: str, server: RunningServer, cache: Path) -> None:
        self.binary = str(KUBECTL_DIR / f"kubectl.{version}")
        self.server = server
        self.cache = cache

    def run(self, *args: str, stdin: str | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.server.kubeconfig),
               "--cache-dir", str(self.cache), *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self.run(*args, "-o", "json").stdout)


@pytest.fixture(params=VERSIONS)
def kubectl(request: pytest.FixtureRequest, dockyard_server: RunningServer, tmp_path: Path
            ) -> Kubectl:
    return Kubectl(request.param, dockyard_server, tmp_path / "cache")


def namespace_for(kubectl: Kubectl) -> str:
    ns = "kc-" + Path(kubectl.binary).suffix.lstrip(".").replace(".", "-")
    if kubectl.run("get", "namespace", ns, check=False).returncode != 0:
        kubectl.run("create", "namespace", ns)
    return ns


def test_create_namespace(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    assert kubectl.json("get", "namespace", ns)["status"]["phase"] == "Active"


def test_apply_is_created_then_unchanged_then_configured(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    out = kubectl.run("apply", "-n", ns, "-f", str(EXAMPLE)).stdout
    assert "deployment.apps/my-nginx created" in out
    out = kubectl.run("apply", "-n", ns, "-f", str(EXAMPLE)).stdout
    assert "deployment.apps/my-nginx unchanged" in out
    changed = yaml.safe_load(EXAMPLE.read_text())
    changed["spec"]["replicas"] = 4
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "my-nginx:v2"
    out = kubectl.run("apply", "-n", ns, "-f", "-", stdin=yaml.safe_dump(changed)).stdout
    assert "configured" in out
    got = kubectl.json("get", "deployment", "my-nginx", "-n", ns)
    assert got["spec"]["replicas"] == 4
    containers = got["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["my-nginx:v2"]
    assert containers[0]["readinessProbe"]["httpGet"]["path"] == "/"


def test_server_side_apply_creates_and_updates(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"},
          "data": {"a": "1"}}
    out = kubectl.run("apply", "--server-side", "-n", ns, "-f", "-",
                      stdin=json.dumps(cm)).stdout
    assert "serverside-applied" in out
    cm["data"] = {"a": "2", "b": "3"}
    kubectl.run("apply", "--server-side", "-n", ns, "-f", "-", stdin=json.dumps(cm))
    assert kubectl.json("get", "configmap", "ssa", "-n", ns)["data"] == {"a": "2", "b": "3"}


def test_get_shows_kubectl_columns(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    kubectl.run("apply", "-n", ns, "-f", str(EXAMPLE))
    header = kubectl.run("get", "deployments", "-n", ns).stdout.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    wide = kubectl.run("get", "deployments", "-n", ns, "-o", "wide").stdout.splitlines()[0]
    assert "IMAGES" in wide and "SELECTOR" in wide
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps(pod))
    lines = kubectl.run("get", "pods", "-n", ns, "-o", "wide").stdout.splitlines()
    assert lines[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert lines[1].split()[:3] == ["p1", "0/1", "Pending"]
    everything = kubectl.run("get", "pods", "-A").stdout
    assert ns in everything


def test_scale_label_patch_and_delete(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    kubectl.run("apply", "-n", ns, "-f", str(EXAMPLE))
    kubectl.run("scale", "deployment", "my-nginx", "-n", ns, "--replicas=5")
    assert kubectl.json("get", "deploy", "my-nginx", "-n", ns)["spec"]["replicas"] == 5
    kubectl.run("label", "deployment", "my-nginx", "-n", ns, "tier=web", "--overwrite")
    kubectl.run("patch", "deployment", "my-nginx", "-n", ns, "--type=json",
                "-p", '[{"op":"add","path":"/spec/minReadySeconds","value":3}]')
    got = kubectl.json("get", "deploy", "my-nginx", "-n", ns)
    assert got["metadata"]["labels"]["tier"] == "web" and got["spec"]["minReadySeconds"] == 3
    kubectl.run("delete", "deployment", "my-nginx", "-n", ns, "--wait=true", "--timeout=30s")
    gone = kubectl.run("get", "deployment", "my-nginx", "-n", ns, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_errors_are_kubectl_errors(kubectl: Kubectl) -> None:
    missing = kubectl.run("get", "deployment", "nope", check=False)
    assert missing.returncode == 1
    assert 'deployments.apps "nope" not found' in missing.stderr
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
    result = kubectl.run("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert result.returncode != 0 and "is invalid" in result.stderr


def test_autoscale_posts_v1_and_reads_back_as_v2(kubectl: Kubectl) -> None:
    ns = namespace_for(kubectl)
    kubectl.run("apply", "-n", ns, "-f", str(EXAMPLE))
    kubectl.run("autoscale", "deployment", "my-nginx", "-n", ns, "--min=2", "--max=5",
                "--cpu-percent=70")
    v2 = kubectl.json("get", "hpa", "my-nginx", "-n", ns)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["minReplicas"] == 2 and v2["spec"]["maxReplicas"] == 5
    cpu = v2["spec"]["metrics"][0]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 70
    v1 = kubectl.json("get", "horizontalpodautoscalers.v1.autoscaling", "my-nginx", "-n", ns)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 70
    kubectl.run("delete", "hpa", "my-nginx", "-n", ns)
