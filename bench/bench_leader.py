"""Benchmark leader election between two `dockyard server`s on one real etcd.

Each round starts etcd and servers a and b (both with controllers and the scheduler, short
--leader-elect-* durations), then stops the leader and times until the other holds the Lease
kube-system/dockyard-controllers, as seen through the survivor's api. Half the rounds stop the
leader with SIGKILL (the survivor must wait for the lease to expire), half with SIGTERM (the
leader releases the Lease on its way out). Prints each figure and the medians.

    .venv/bin/python bench/bench_leader.py [--rounds 2] [--lease 4] [--retry 0.5]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.etcds import start_etcd  # noqa: E402
from tests.servers import RunningServer, start_server  # noqa: E402

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/dockyard-controllers"


def holder(server: RunningServer, token: str) -> str | None:
    """Return the Lease's holderIdentity as the server answers it (None if unreadable)."""
    code, body, _ = server.request("GET", LEASE_PATH, token=token)
    if code != 200:
        return None
    return json.loads(body)["spec"].get("holderIdentity")


def identity(server: RunningServer) -> str:
    """Return the identity a server campaigns as (kept in its data dir)."""
    return (server.data_dir / "leader-identity").read_text().splitlines()[0]


def one_round(base: Path, sig: signal.Signals, flags: list[str]) -> float:
    """Start etcd and two servers, stop the leader with `sig`; return seconds to takeover."""
    etcd = start_etcd(base / "etcd")
    servers: list[RunningServer] = []
    try:
        for name in ("a", "b"):
            (base / name).mkdir()
            shared = ["--shared-dir", str(servers[0].data_dir)] if servers else []
            servers.append(start_server(base / name / "data", "--store", etcd.store_spec,
                                        *shared, *flags))
        leader, other = servers
        token = leader.token  # b shares a's tokens (--shared-dir)
        assert holder(other, token) == identity(leader), "a started first and should lead"
        started = time.perf_counter()
        leader.stop(sig)
        while holder(other, token) != identity(other):
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for server in servers:
            server.stop()
        etcd.stop()


def main() -> None:
    """Run the rounds and print takeover times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds per signal")
    parser.add_argument("--lease", type=float, default=4.0, help="lease duration, seconds")
    parser.add_argument("--retry", type=float, default=0.5, help="retry period, seconds")
    args = parser.parse_args()
    flags = ["--leader-elect-lease-duration", str(args.lease),
             "--leader-elect-renew-deadline", str(args.lease * 0.75),
             "--leader-elect-retry-period", str(args.retry)]  # fmt: skip
    for sig in (signal.SIGKILL, signal.SIGTERM):
        times = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                times.append(one_round(Path(tmp), sig, flags))
        shown = ", ".join(f"{t:.2f}" for t in times)
        print(f"{sig.name}: the other server leads after {shown} s "
              f"(median {statistics.median(times):.2f} s; lease {args.lease} s, "
              f"retry {args.retry} s)")


if __name__ == "__main__":
    main()
