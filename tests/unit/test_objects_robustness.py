"""Malformed input never crashes the object model: every field of a valid object of every
kind is replaced by values of the wrong type, and defaults, validation, the write strategy and
the Table row must still return (errors are values, never exceptions)."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from dockyard.api.tables import table
from dockyard.objects.kinds import (
    handlers_for,
    prepare_for_create,
    prepare_for_status_update,
    prepare_for_update,
)
from dockyard.objects.pod import pod_requests, pod_summary, qos_class
from dockyard.objects.resources import RESOURCES, lookup_kind_any_version

pytestmark = pytest.mark.unit

WEIRD: list[Any] = [None, "x", -1, True, [], {}, [1], {"a": 1}, 1.5]

CONTAINER = {
    "name": "app",
    "image": "nginx:1.27",
    "ports": [{"containerPort": 80, "name": "http"}],
    "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
    "volumeMounts": [{"name": "v", "mountPath": "/v"}],
    "livenessProbe": {"httpGet": {"port": 80}},
    "securityContext": {"runAsUser": 1},
    "lifecycle": {"preStop": {"sleep": {"seconds": 1}}},
}
POD_SPEC = {
    "containers": [CONTAINER],
    "volumes": [{"name": "v", "configMap": {"name": "c", "items": [{"key": "a", "path": "a"}]}}],
    "tolerations": [{"key": "k", "operator": "Exists"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "z", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "z", "whenUnsatisfiable": "DoNotSchedule"}
    ],
}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}
SAMPLES: dict[str, dict[str, Any]] = {
    "Pod": {
        "spec": {
            **POD_SPEC,
            "initContainers": [{"name": "side", "image": "busybox", "restartPolicy": "Always"}],
            "readinessGates": [{"conditionType": "example.com/ok"}],
        },
        "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.1"}],
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [
                {
                    "name": "side",
                    "started": True,
                    "ready": True,
                    "restartCount": 1,
                    "state": {"running": {}},
                    "lastState": {
                        "terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:00:00Z"}
                    },
                }
            ],
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 2,
                    "ready": True,
                    "state": {"terminated": {"exitCode": 2, "signal": 9}},
                    "lastState": {"terminated": {"finishedAt": "2024-01-01T00:00:00Z"}},
                }
            ],
        },
    },
    "Deployment": {
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": TEMPLATE,
            "strategy": {"rollingUpdate": {"maxSurge": 1}},
        },
        "status": {"replicas": 1},
    },
    "ReplicaSet": {
        "spec": {
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            "template": TEMPLATE,
        }
    },
    "Service": {
        "spec": {
            "type": "NodePort",
            "selector": {"app": "web"},
            "ports": [{"port": 80, "nodePort": 30080}],
        }
    },
    "Node": {
        "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
        "status": {"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready", "status": "True"}]},
    },
    "Namespace": {"spec": {"finalizers": ["kubernetes"]}},
    "Endpoints": {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]},
    "Event": {
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "type": "Normal",
        "series": {"count": 2},
    },
    "ConfigMap": {"data": {"a": "1"}, "binaryData": {"b": "AA=="}, "immutable": False},
    "Secret": {"data": {"a": "MQ=="}, "stringData": {"b": "2"}},
    "Lease": {"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}},
    "HorizontalPodAutoscaler": {
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "maxReplicas": 3,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 15}]}
            },
        }
    },
    "PodDisruptionBudget": {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}},
    "PriorityClass": {"value": 10},
}


def sample(kind: str) -> dict[str, Any]:
    info = lookup_kind_any_version(kind)
    assert info is not None
    meta: dict[str, Any] = {
        "name": "x",
        "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "K", "name": "o", "uid": "u"}],
    }
    if info.namespaced:
        meta["namespace"] = "default"
    body = copy.deepcopy(SAMPLES[kind])
    meta.update(body.pop("metadata", {}))
    return {"apiVersion": info.api_version, "kind": kind, "metadata": meta, **body}


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every field below the top level (kind and apiVersion stay)."""
    if isinstance(value, dict):
        for key, child in value.items():
            if prefix or key not in ("kind", "apiVersion"):
                yield (*prefix, key)
                yield from paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield (*prefix, i)
            yield from paths(child, (*prefix, i))


def replaced(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    target: Any = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = copy.deepcopy(value)
    return result


def exercise(obj: dict[str, Any], good: dict[str, Any]) -> None:
    kind = str(obj["kind"])
    handlers = handlers_for(kind)
    handlers.apply_defaults(obj)
    handlers.validate(obj)
    handlers.validate_update(obj, good)
    handlers.validate_update(good, obj)
    prepare_for_update(copy.deepcopy(obj), good)
    prepare_for_status_update(copy.deepcopy(obj), good)
    prepare_for_create(copy.deepcopy(obj))
    info = lookup_kind_any_version(kind)
    assert info is not None
    table(info, [obj], resource_version="1", now=datetime(2024, 1, 1, tzinfo=UTC))
    if kind == "Pod":
        pod_requests(obj)
        pod_summary(obj)
        qos_class(obj)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_samples_are_valid(kind: str) -> None:
    obj = sample(kind)
    handlers_for(kind).apply_defaults(obj)
    assert handlers_for(kind).validate(obj) == []


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_wrong_types_never_raise(kind: str) -> None:
    good = sample(kind)
    handlers_for(kind).apply_defaults(good)
    count = 0
    for path in list(paths(good)):
        for value in WEIRD:
            exercise(replaced(good, path, value), good)
            count += 1
    assert count > 20


def test_every_served_kind_has_a_sample() -> None:
    assert {r.kind for r in RESOURCES} == set(SAMPLES)


# --- seeded random mutations, several levels deep ------------------------------------------

FUZZ_KEYS = [
    "name",
    "image",
    "ports",
    "containerPort",
    "protocol",
    "env",
    "valueFrom",
    "fieldRef",
    "fieldPath",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "volumes",
    "emptyDir",
    "hostPath",
    "path",
    "configMap",
    "items",
    "key",
    "secret",
    "selector",
    "matchLabels",
    "matchExpressions",
    "operator",
    "values",
    "template",
    "metadata",
    "labels",
    "spec",
    "status",
    "conditions",
    "type",
    "containerStatuses",
    "state",
    "waiting",
    "terminated",
    "reason",
    "restartCount",
    "lastState",
    "finishedAt",
    "tolerations",
    "effect",
    "affinity",
    "nodeAffinity",
    "topologyKey",
    "strategy",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "replicas",
    "subsets",
    "addresses",
    "ip",
    "data",
    "behavior",
    "scaleUp",
    "policies",
    "metrics",
    "target",
    "averageUtilization",
]
FUZZ_LEAVES: list[Any] = [
    None,
    "",
    "x",
    "Always",
    "TCP",
    "100m",
    "1Gi",
    "-1",
    0,
    -5,
    80,
    70000,
    True,
    1.5,
    "a/b",
    "..",
    "metadata.labels['a']",
]


class Fuzzer:
    """Random JSON-shaped values and in-place mutations, reproducible from a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth > 3 or roll < 0.3:
            return self.rng.choice(FUZZ_LEAVES)
        if roll < 0.6:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        return {
            self.rng.choice(FUZZ_KEYS): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))
        }

    def mutate(self, obj: Any, depth: int = 0) -> None:
        if isinstance(obj, dict):
            keys = [k for k in obj if depth or k not in ("kind", "apiVersion")]
            if not keys:
                return
            key = self.rng.choice(keys)
            if self.rng.random() < 0.4 or depth > 6:
                obj[key] = self.value()
            else:
                self.mutate(obj[key], depth + 1)
            if depth and self.rng.random() < 0.2:
                obj[self.rng.choice(FUZZ_KEYS)] = self.value()
        elif isinstance(obj, list) and obj:
            index = self.rng.randrange(len(obj))
            if self.rng.random() < 0.4:
                obj[index] = self.value()
            else:
                self.mutate(obj[index], depth + 1)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_deep_mutations_never_raise(seed: int) -> None:
    fuzz = Fuzzer(seed)
    for _ in range(400):
        kind = fuzz.rng.choice(sorted(SAMPLES))
        good = sample(kind)
        handlers_for(kind).apply_defaults(good)
        bad = copy.deepcopy(good)
        for _ in range(fuzz.rng.randint(1, 4)):
            fuzz.mutate(bad)
        exercise(bad, good)
