"""Benchmark patching, server-side apply and body decoding on realistic Deployment objects.

Figures: operations per second and mean microseconds per call for the kubectl apply
strategic merge patch, a merge patch, a JSON patch, a server-side apply re-apply and its
record_update, and decoding of the same Deployment as JSON, YAML and Kubernetes protobuf.
Also the time to refuse a "billion laughs" YAML bomb.

    .venv/bin/python bench/bench_patch.py [--seconds 1.0] [--containers 3]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from dockyard.api.apply import record_update, server_side_apply
from dockyard.api.decoding import DecodeError, decode_object
from dockyard.api.patching import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, apply_patch

DATA = Path(__file__).resolve().parents[1] / "tests" / "unit" / "data"


def deployment(containers: int) -> dict[str, Any]:
    """Return a Deployment with the given number of containers, env vars and ports."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"team": "core"}},
        "spec": {
            "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": f"c{i}", "image": f"registry.local/app{i}:1.0",
                     "ports": [{"containerPort": 8000 + i, "name": f"http{i}"}],
                     "env": [{"name": f"VAR{j}", "value": str(j)} for j in range(8)],
                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                     "volumeMounts": [{"name": "data", "mountPath": f"/data{i}"}]}
                    for i in range(containers)
                ], "volumes": [{"name": "data", "emptyDir": {}}]},
            },
        },
    }


def measure(name: str, seconds: float, fn: Callable[[], object]) -> None:
    """Run fn repeatedly for about `seconds` and print its rate."""
    fn()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        count += 1
    elapsed = time.perf_counter() - started
    print(f"{name:<40} {count / elapsed:>10,.0f} ops/s {elapsed / count * 1e6:>10,.1f} us/op")


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per figure")
    parser.add_argument("--containers", type=int, default=3, help="containers per Deployment")
    args = parser.parse_args()
    obj = deployment(args.containers)
    first = obj["spec"]["template"]["spec"]["containers"][0]["name"]
    smp = json.dumps({"spec": {"replicas": 4, "template": {"spec": {
        "$setElementOrder/containers": [{"name": c["name"]} for c in
                                        obj["spec"]["template"]["spec"]["containers"]],
        "containers": [{"image": "registry.local/app0:1.1", "name": first}]}}}}).encode()
    merge = json.dumps({"spec": {"replicas": 5}}).encode()
    jsonp = json.dumps([{"op": "test", "path": "/spec/replicas", "value": 3},
                        {"op": "replace", "path": "/spec/replicas", "value": 6}]).encode()
    now = "2026-01-01T00:00:00Z"
    applied = server_side_apply(None, obj, manager="kubectl", force=False, kind="Deployment",
                                api_version="apps/v1", now=now)
    changed = copy.deepcopy(obj)
    changed["spec"]["replicas"] = 7
    as_json = json.dumps(obj).encode()
    as_yaml = yaml.safe_dump(obj).encode()
    proto = (DATA / "kubectl-1.32-create-deployment.pb").read_bytes()
    print(f"Deployment with {args.containers} containers: {len(as_json)} bytes of JSON")
    measure("strategic merge patch (kubectl apply)", args.seconds,
            lambda: apply_patch(obj, smp, STRATEGIC_MERGE_PATCH, "Deployment"))
    measure("merge patch (kubectl scale)", args.seconds,
            lambda: apply_patch(obj, merge, MERGE_PATCH, "Deployment"))
    measure("json patch (test + replace)", args.seconds,
            lambda: apply_patch(obj, jsonp, JSON_PATCH, "Deployment"))
    measure("server-side apply (changed replicas)", args.seconds,
            lambda: server_side_apply(applied, changed, manager="kubectl", force=False,
                                      kind="Deployment", api_version="apps/v1", now=now))
    measure("record_update (one field changed)", args.seconds,
            lambda: record_update(applied, {**applied, "spec": changed["spec"]},
                                  manager="editor", api_version="apps/v1", now=now))
    measure("decode JSON", args.seconds, lambda: decode_object(as_json, "application/json"))
    measure("decode YAML", args.seconds, lambda: decode_object(as_yaml, "application/yaml"))
    measure("decode protobuf (kubectl create deploy)", args.seconds,
            lambda: decode_object(proto, "application/vnd.kubernetes.protobuf"))
    bomb = "a: &a [" + ",".join(["lol"] * 9) + "]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(8))
    started = time.perf_counter()
    with contextlib.suppress(DecodeError):
        decode_object(bomb.encode(), "application/yaml")
    took_ms = (time.perf_counter() - started) * 1e3
    print(f"{'refuse billion-laughs YAML bomb':<40} {took_ms:>10.2f} ms")


if __name__ == "__main__":
    main()
