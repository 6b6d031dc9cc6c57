"""Leader election across two `dockyard server`s on one real etcd, BOTH with controllers and
the scheduler, driven by real kubectl 1.32.

Only the holder of the Lease kube-system/dockyard-controllers runs the loops: a Deployment of 3
gets exactly 3 pods; SIGKILL of the leader hands over once the Lease expires (short durations
through the --leader-elect-* flags) and the survivor's controllers scale; SIGTERM releases the
Lease, so the other server takes over at once, long before the lease duration.
A lone server restarted after SIGKILL resumes its own term at once (its identity is kept in its
data dir). Each test has its own etcd (or SQLite), so no Lease outlives it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.etcds import RunningEtcd, etcd_installed
from tests.servers import RunningServer, start_server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not etcd_installed(), reason="apt-get install etcd-server"),
]

KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32")
if not KUBECTL.exists():
    pytest.skip("kubectl 1.32 is not installed here", allow_module_level=True)

LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 0.5
SHORT = ["--leader-elect-lease-duration", str(LEASE_DURATION),
         "--leader-elect-renew-deadline", str(RENEW_DEADLINE),
         "--leader-elect-retry-period", str(RETRY_PERIOD)]  # fmt: skip
LONG = ["--leader-elect-lease-duration", "60", "--leader-elect-renew-deadline", "40",
        "--leader-elect-retry-period", str(RETRY_PERIOD)]  # fmt: skip


def kubectl(server: RunningServer, *args: str) -> str:
    """Run kubectl 1.32 against one server; fail the test on a non-zero exit."""
    cache = server.data_dir.parent / "kubectl-cache"
    result = subprocess.run([str(KUBECTL), "--kubeconfig", str(server.kubeconfig),
                             "--cache-dir", str(cache), *args],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
    return result.stdout


def lease_spec(server: RunningServer) -> dict[str, Any]:
    out = kubectl(server, "get", "lease", "dockyard-controllers", "-n", "kube-system",
                  "-o", "json")
    return dict(json.loads(out)["spec"])


def identity(server: RunningServer) -> str:
    """Return the holder identity the server keeps in its data dir (and logged)."""
    kept = (server.data_dir / "leader-identity").read_text().splitlines()[0]
    log = (server.data_dir.parent / f"{server.data_dir.name}-server.log").read_text()
    assert f"campaigning for lease kube-system/dockyard-controllers as {kept}" in log
    return kept


def pod_names(server: RunningServer, namespace: str) -> list[str]:
    return kubectl(server, "get", "pods", "-n", namespace, "-o", "name").split()


def event_counts(server: RunningServer, namespace: str) -> dict[str, int]:
    """Return how many times each Event reason was recorded in a namespace."""
    counts: dict[str, int] = {}
    items = json.loads(kubectl(server, "get", "events", "-n", namespace, "-o", "json"))["items"]
    for event in items:
        counts[event["reason"]] = counts.get(event["reason"], 0) + int(event.get("count") or 1)
    return counts


def eventually(check: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until check() is true, failing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def start_pair(etcd: RunningEtcd, tmp_path: Path, flags: list[str]
               ) -> tuple[RunningServer, RunningServer]:  # fmt: skip
    """Start server a, then server b sharing a's CA and tokens; both run every loop."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = start_server(tmp_path / "a" / "data", "--store", etcd.store_spec, *flags)
    try:
        b = start_server(tmp_path / "b" / "data", "--store", etcd.store_spec, "--shared-dir",
                         str(a.data_dir), *flags)
    except Exception:
        a.stop()
        raise
    return a, b


@pytest.fixture
def pair(etcd: RunningEtcd, tmp_path: Path, request: pytest.FixtureRequest
         ) -> Iterator[tuple[RunningServer, RunningServer]]:  # fmt: skip
    a, b = start_pair(etcd, tmp_path, getattr(request, "param", SHORT))
    yield a, b
    b.stop()
    a.stop()


def test_only_the_leader_runs_controllers_and_kubectl_shows_it(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    # a started alone: it held the Lease before it said "ready" (no lease-duration wait).
    spec = lease_spec(b)
    assert spec["holderIdentity"] == identity(a) != identity(b)
    assert spec["leaseDurationSeconds"] == 4 and spec["leaseTransitions"] == 0
    table = kubectl(b, "get", "lease", "-n", "kube-system")
    assert "HOLDER" in table and identity(a) in table
    kubectl(a, "create", "namespace", "le-one")
    kubectl(b, "create", "deployment", "web", "-n", "le-one", "--image", "busybox",
            "--replicas", "3")
    eventually(lambda: len(pod_names(a, "le-one")) >= 3)
    for _ in range(10):
        assert len(pod_names(b, "le-one")) == 3
        time.sleep(0.3)
    replicasets = kubectl(a, "get", "replicasets", "-n", "le-one", "-o", "name").split()
    assert len(replicasets) == 1
    # Two replicaset controllers would each create pods and then delete the surplus (the
    # count settles back to 3 within seconds, so the Events are what tell).
    eventually(lambda: event_counts(a, "le-one").get("SuccessfulCreate") == 3)
    assert "SuccessfulDelete" not in event_counts(a, "le-one")
    assert lease_spec(a)["holderIdentity"] == identity(a)  # b is still a candidate


def test_sigkill_of_the_leader_hands_over_after_the_lease_expires(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    assert lease_spec(b)["holderIdentity"] == identity(a)
    kubectl(b, "create", "namespace", "le-two")
    kubectl(b, "create", "deployment", "web", "-n", "le-two", "--image", "busybox",
            "--replicas", "3")
    eventually(lambda: len(pod_names(b, "le-two")) == 3)
    # Events are written in the background: let a's reach etcd before it dies.
    eventually(lambda: event_counts(b, "le-two").get("SuccessfulCreate") == 3)
    a.stop(signal.SIGKILL)  # no release: b must wait out the Lease
    killed = time.monotonic()
    eventually(lambda: lease_spec(b)["holderIdentity"] == identity(b), timeout=20)
    took = time.monotonic() - killed
    # b saw a's last renewal at most one (jittered) retry after it was written, and tries again
    # every retry: lease duration + 2 x 1.2 x retry, and 2 s for a busy 2-core machine.
    assert took < LEASE_DURATION + 2 * 1.2 * RETRY_PERIOD + 2.0, took
    print(f"takeover after SIGKILL: {took:.1f}s (lease duration {LEASE_DURATION}s)")
    assert lease_spec(b)["leaseTransitions"] == 1
    kubectl(b, "scale", "deployment", "web", "-n", "le-two", "--replicas", "5")
    eventually(lambda: len(pod_names(b, "le-two")) == 5)
    eventually(lambda: event_counts(b, "le-two").get("SuccessfulCreate") == 5)  # 3, then 2
    assert "SuccessfulDelete" not in event_counts(b, "le-two")


@pytest.mark.parametrize("pair", [LONG], indirect=True)
def test_sigterm_of_the_leader_releases_the_lease_for_the_other_at_once(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    assert lease_spec(b)["holderIdentity"] == identity(a)
    stopping = time.monotonic()
    a.stop(signal.SIGTERM)
    eventually(lambda: lease_spec(b)["holderIdentity"] == identity(b), timeout=20)
    took = time.monotonic() - stopping
    assert took < 10.0, took  # the lease duration is 60 s: only a release explains this
    print(f"takeover after SIGTERM: {took:.1f}s (lease duration 60s)")
    kubectl(b, "create", "namespace", "le-three")  # b's controllers and scheduler now run
    kubectl(b, "create", "deployment", "web", "-n", "le-three", "--image", "busybox",
            "--replicas", "2")
    eventually(lambda: len(pod_names(b, "le-three")) == 2)


def test_a_lone_server_killed_and_restarted_leads_again_at_once(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", *LONG)  # SQLite: the single-machine default
    try:
        first = lease_spec(server)
        kept = identity(server)
        assert first["holderIdentity"] == kept
    finally:
        server.stop(signal.SIGKILL)  # no release: the Lease still names it for 60 s
    server = start_server(tmp_path / "data", *LONG)
    try:
        began = time.monotonic()
        again = lease_spec(server)
        assert again["holderIdentity"] == kept and again["leaseTransitions"] == 0
        assert again["acquireTime"] == first["acquireTime"]  # the same term, renewed
        kubectl(server, "create", "deployment", "web", "--image", "busybox", "--replicas", "2")
        eventually(lambda: len(pod_names(server, "default")) == 2, timeout=20)
        assert time.monotonic() - began < 20  # far inside the 60 s a new identity would wait
    finally:
        server.stop()
