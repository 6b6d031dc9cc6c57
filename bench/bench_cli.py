"""Benchmark how long the `dockyard` command takes before it does any work.

Runs each case --repeat times as a fresh process and prints the median and best wall time:
the root command alone, every verb imported (what each invocation paid before verbs were
loaded lazily), `dockyard version` with no kubeconfig (one client verb's imports and its
error path) and `dockyard --help` (imports every verb for their help lines).

    .venv/bin/python bench/bench_cli.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
CASES: dict[str, list[str]] = {
    "import root command": [sys.executable, "-c", "import dockyard.cli.main"],
    "import every verb": [sys.executable, "-c", "from dockyard.cli.main import CLUSTER_VERBS as c\n"
                          "from dockyard.cli.kube_verbs import CLIENT_VERBS as k\n"
                          "[verb.load() for verb in c + k]"],
    "dockyard version (no kubeconfig)": [DOCKYARD, "version"],
    "dockyard --help": [DOCKYARD, "--help"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def wall_times(argv: list[str], repeat: int, env: dict[str, str]) -> list[float]:
    """Run argv `repeat` times; return each run's wall time in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    """Print median and best wall time per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "KUBECONFIG": str(Path(home) / "absent")}
        for name, argv in CASES.items():
            times = wall_times(argv, args.repeat, env)
            print(f"{name:36} median {statistics.median(times) * 1000:6.0f} ms"
                  f"   best {min(times) * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
