"""Benchmark the object model: defaults + validation per write, selectors, requests, Tables.

Every api write runs apply_defaults + validate (+ validate_update); every list with a
selector runs matches() per object; every `kubectl get` builds a Table. Prints CPU
microseconds per operation (median of --repeat runs; CPU time, so other load on the machine
inflates the figures less than wall time would) and Table build time for --pods pods.

    .venv/bin/python bench/bench_objects.py [--pods 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dockyard.api.tables import table
from dockyard.objects.kinds import handlers_for
from dockyard.objects.pod import pod_requests, pod_summary
from dockyard.objects.resources import lookup
from dockyard.objects.selectors import FieldSelector, LabelSelector


def make_pod(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"web-{i}",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front", "pod-template-hash": "abc12"},
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": {
            "nodeName": f"n{i % 50}",
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "name": "http"}],
                    "env": [{"name": "MODE", "value": "prod"}],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "500m", "memory": "128Mi"},
                    },
                    "readinessProbe": {"httpGet": {"port": 80}},
                },
                {"name": "log", "image": "busybox:1.36"},
            ],
        },
        "status": {
            "phase": "Running",
            "podIP": f"10.244.{i // 250}.{i % 250 + 1}",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}},
                {
                    "name": "log",
                    "ready": True,
                    "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {
                        "terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:10:00Z"}
                    },
                },
            ],
        },
    }


def make_deployment() -> dict[str, Any]:
    pod = make_pod(0)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": pod["metadata"]["labels"]},
                "spec": {"containers": pod["spec"]["containers"]},
            },
        },
    }


def per_op_us(action: Callable[[], object], count: int, repeat: int) -> float:
    """Return the median CPU microseconds per call over repeat runs of count calls."""
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(count):
            action()
        runs.append((time.process_time() - start) / count * 1e6)
    return statistics.median(runs)


def write_path(obj: dict[str, Any]) -> Callable[[], object]:
    handlers = handlers_for(obj["kind"])

    def run() -> object:
        fresh = copy.deepcopy(obj)
        handlers.apply_defaults(fresh)
        errors = handlers.validate(fresh)
        assert not errors, errors
        return handlers.validate_update(fresh, fresh)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    pod, deployment = make_pod(1), make_deployment()
    copy_cost = per_op_us(lambda: copy.deepcopy(pod), 2000, args.repeat)
    labels = LabelSelector.parse("app=web,tier in (front,back),!canary")
    fields = FieldSelector.parse("spec.nodeName=n1,status.phase!=Failed", "Pod")
    figures = {
        "pod write (copy + defaults + validate + update rules)": per_op_us(
            write_path(pod), 2000, args.repeat
        ),
        "  of which deepcopy": copy_cost,
        "deployment write (copy + defaults + validate + update rules)": per_op_us(
            write_path(deployment), 2000, args.repeat
        ),
        "label selector parse": per_op_us(
            lambda: LabelSelector.parse("app=web,tier in (front,back),!canary"), 20000, args.repeat
        ),
        "label selector match": per_op_us(
            lambda: labels.matches(pod["metadata"]["labels"]), 100000, args.repeat
        ),
        "field selector match": per_op_us(lambda: fields.matches(pod), 100000, args.repeat),
        "pod_requests": per_op_us(lambda: pod_requests(pod), 20000, args.repeat),
        "pod_summary (kubectl STATUS)": per_op_us(lambda: pod_summary(pod), 20000, args.repeat),
    }
    for name, value in figures.items():
        print(f"{name:62s} {value:8.1f} us/op")
    pods = [make_pod(i) for i in range(args.pods)]
    info = lookup("", "v1", "pods")
    assert info is not None
    now = datetime(2024, 1, 2, tzinfo=UTC)
    times = []
    for _ in range(args.repeat):
        start = time.process_time()
        result = table(info, pods, resource_version="1", now=now)
        times.append(time.process_time() - start)
    assert len(result["rows"]) == args.pods
    print(f"{'Table of ' + str(args.pods) + ' pods':62s} {statistics.median(times) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
