"""Kubernetes protobuf bodies: real kubectl captures, a test-side encoder, and fuzzing.

The files tests/unit/data/kubectl-1.32-*.pb are the exact bodies kubectl 1.32.5 POSTed for
`kubectl create namespace foo`, `create configmap cm1 --from-literal=a=1
--from-literal=b=hello`, `create secret generic s1 --from-literal=password=s3cr3t`,
`create deployment web --image=nginx:1.25 --replicas=3 --port=80`, `create service clusterip
svc1 --tcp=80:8080`, `create service nodeport np1 --tcp=5678:8080 --node-port=30080`,
`create pdb pdb1 --selector=app=web --min-available=1`, `create priorityclass high
--value=1000 --description=top` and `autoscale deployment web --min=1 --max=3
--cpu-percent=80`, recorded by a loopback HTTP server that answered discovery.
"""

from __future__ import annotations

import base64
import random
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.decoding import DecodeError, decode_object
from dockyard.api.protobuf import PROTOBUF_MAGIC, ProtobufError, decode_unknown

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
PROTOBUF = "application/vnd.kubernetes.protobuf"


# --- a small encoder, the inverse of the wire rules ----------------------------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: Any) -> bytes:
    """Encode one field: int/bool as varint, str/bytes/list-of-fields as length-delimited."""
    if isinstance(value, bool | int):
        return varint(number << 3) + varint(int(value))
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, list):
        value = b"".join(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def entry(key: str, value: str | bytes) -> bytes:
    return b"".join([field(1, key), field(2, value)])


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = [field(1, api_version), field(2, kind)]
    return PROTOBUF_MAGIC + b"".join([field(1, type_meta), field(2, raw)])


def meta(name: str, *extra: bytes) -> bytes:
    return b"".join([field(1, name), *extra])


# --- real captures -------------------------------------------------------------------------

def decode_file(name: str) -> dict[str, Any]:
    return decode_object((DATA / name).read_bytes(), PROTOBUF)


def test_kubectl_create_namespace() -> None:
    assert decode_file("kubectl-1.32-create-namespace.pb") == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"},
        "spec": {}, "status": {},
    }


def test_kubectl_create_configmap() -> None:
    assert decode_file("kubectl-1.32-create-configmap.pb") == {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cm1", "namespace": "default"},
        "data": {"a": "1", "b": "hello"},
    }


def test_kubectl_create_secret_generic() -> None:
    obj = decode_file("kubectl-1.32-create-secret-generic.pb")
    assert obj["kind"] == "Secret"
    assert obj["metadata"] == {"name": "s1", "namespace": "default"}
    assert base64.b64decode(obj["data"]["password"]) == b"s3cr3t"


def test_kubectl_create_deployment() -> None:
    # The same object kubectl 1.31 sends as JSON, minus `creationTimestamp: null`.
    assert decode_file("kubectl-1.32-create-deployment.pb") == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                         "ports": [{"containerPort": 80}],
                                         "resources": {}}]},
            },
            "strategy": {},
        },
        "status": {},
    }


def test_kubectl_create_service_clusterip() -> None:
    assert decode_file("kubectl-1.32-create-service-clusterip.pb") == {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "svc1", "namespace": "default", "labels": {"app": "svc1"}},
        "spec": {"ports": [{"name": "80-8080", "protocol": "TCP", "port": 80,
                            "targetPort": 8080}],
                 "selector": {"app": "svc1"}, "type": "ClusterIP"},
        "status": {"loadBalancer": {}},
    }


def test_kubectl_create_service_nodeport() -> None:
    spec = decode_file("kubectl-1.32-create-service-nodeport.pb")["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"] == [{"name": "5678-8080", "protocol": "TCP", "port": 5678,
                              "targetPort": 8080, "nodePort": 30080}]


def test_kubectl_create_pdb_priorityclass_and_autoscale() -> None:
    pdb = decode_file("kubectl-1.32-create-pdb.pb")
    assert (pdb["apiVersion"], pdb["kind"]) == ("policy/v1", "PodDisruptionBudget")
    assert pdb["spec"] == {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    pc = decode_file("kubectl-1.32-create-priorityclass.pb")
    assert {k: v for k, v in pc.items() if k != "metadata"} == {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "value": 1000,
        "description": "top", "preemptionPolicy": "PreemptLowerPriority"}
    hpa = decode_file("kubectl-1.32-autoscale.pb")
    assert hpa["apiVersion"] == "autoscaling/v1"
    assert hpa["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web",
                                              "apiVersion": "apps/v1"},
                           "minReplicas": 1, "maxReplicas": 3,
                           "targetCPUUtilizationPercentage": 80}


def test_zero_values_that_mean_something_are_kept() -> None:
    # PriorityClass.value has no omitempty; minAvailable is an IntOrString pointer.
    pc = decode_unknown(envelope("scheduling.k8s.io/v1", "PriorityClass",
                                 field(1, meta("p")) + field(2, 0)))
    assert pc["value"] == 0
    pdb = decode_unknown(envelope("policy/v1", "PodDisruptionBudget", field(1, meta("b")) + field(
        2, [field(1, [field(1, 0), field(2, 0)])])))
    assert pdb["spec"] == {"minAvailable": 0}


# --- encoded bodies ------------------------------------------------------------------------

def test_deployment_fields_by_number() -> None:
    container = [
        field(1, "app"), field(2, "img:1"), field(3, "/bin/sh"), field(3, "-c"),
        field(4, "sleep 1"), field(5, "/work"),
        field(6, [field(1, "http"), field(3, 8080), field(4, "TCP")]),
        field(7, [field(1, "MODE"), field(2, "prod")]),
        field(7, [field(1, "NODE"), field(3, [field(1, [field(2, "spec.nodeName")])])]),
        field(8, [field(1, entry("cpu", field(1, "500m"))),
                  field(2, entry("memory", field(1, "64Mi")))]),
        field(10, [field(1, [field(2, [field(1, "/healthz"),
                                       field(2, [field(1, 0), field(2, 8080)])])]),
                   field(3, 5)]),
        field(14, "IfNotPresent"),
    ]
    pod_spec = [
        field(1, [field(1, "data"), field(2, [field(2, [field(1, "Memory")])])]),
        field(2, container), field(3, "Always"), field(4, 0), field(6, "ClusterFirst"),
        field(22, [field(1, "k"), field(2, "Exists"), field(4, "NoSchedule")]),
    ]
    spec = [
        field(1, 0),  # replicas is a pointer in Go: an explicit 0 stays
        field(2, [field(1, entry("app", "w"))]),
        field(3, [field(1, meta("", field(11, entry("app", "w")))), field(2, pod_spec)]),
        field(4, [field(1, "RollingUpdate"),
                  field(2, [field(1, [field(1, 1), field(3, "25%")]),
                            field(2, [field(1, 0), field(2, 2)])])]),
        field(5, 0),  # minReadySeconds: a plain int32, omitted when zero
        field(6, 10), field(7, True), field(9, 600),
    ]
    obj = decode_unknown(envelope("apps/v1", "Deployment",
                                  field(1, meta("w")) + field(2, spec)))
    s = obj["spec"]
    assert s["replicas"] == 0 and "minReadySeconds" not in s
    assert (s["revisionHistoryLimit"], s["paused"], s["progressDeadlineSeconds"]) == (10, True, 600)
    assert s["strategy"] == {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}}
    pod = s["template"]["spec"]
    assert pod["volumes"] == [{"name": "data", "emptyDir": {"medium": "Memory"}}]
    assert pod["terminationGracePeriodSeconds"] == 0
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    c = pod["containers"][0]
    assert c["command"] == ["/bin/sh", "-c"] and c["args"] == ["sleep 1"]
    assert c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert c["env"] == [{"name": "MODE", "value": "prod"},
                        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    assert c["resources"] == {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}}
    assert c["livenessProbe"] == {"httpGet": {"path": "/healthz", "port": 8080},
                                  "timeoutSeconds": 5}


def test_object_meta_fields() -> None:
    owner = [field(1, "ReplicaSet"), field(3, "rs"), field(4, "uid-1"), field(5, "apps/v1"),
             field(6, True)]
    fields_v1 = [field(1, b'{"f:data":{"f:a":{}}}')]
    managed = [field(1, "kubectl"), field(2, "Update"), field(3, "v1"),
               field(4, [field(1, 1700000000)]), field(6, "FieldsV1"), field(7, fields_v1)]
    raw = field(1, meta("cm", field(2, "gen-"), field(3, "ns"), field(5, "u"), field(6, "42"),
                        field(7, 3), field(8, [field(1, 1700000000), field(2, 5)]),
                        field(12, entry("note", "x")), field(13, owner), field(14, "f1"),
                        field(17, managed)))
    raw += field(3, entry("bin", b"\x00\xff")) + field(4, True)
    obj = decode_unknown(envelope("v1", "ConfigMap", raw))
    m = obj["metadata"]
    assert m["generateName"] == "gen-" and m["namespace"] == "ns" and m["uid"] == "u"
    assert m["resourceVersion"] == "42" and m["generation"] == 3
    assert m["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert m["annotations"] == {"note": "x"} and m["finalizers"] == ["f1"]
    assert m["ownerReferences"] == [{"kind": "ReplicaSet", "name": "rs", "uid": "uid-1",
                                     "apiVersion": "apps/v1", "controller": True}]
    assert m["managedFields"] == [{"manager": "kubectl", "operation": "Update",
                                   "apiVersion": "v1", "time": "2023-11-14T22:13:20Z",
                                   "fieldsType": "FieldsV1",
                                   "fieldsV1": {"f:data": {"f:a": {}}}}]
    assert obj["binaryData"] == {"bin": base64.b64encode(b"\x00\xff").decode()}
    assert obj["immutable"] is True


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = (field(99, 7) + field(98, "zzz") + varint(97 << 3 | 1) + b"\x01" * 8
               + varint(96 << 3 | 5) + b"\x02" * 4)
    raw = field(1, meta("foo", unknown)) + unknown
    assert decode_unknown(envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}


def test_negative_int64_is_twos_complement() -> None:
    raw = field(1, meta("d")) + field(2, [field(1, -1)])
    assert decode_unknown(envelope("apps/v1", "Deployment", raw))["spec"]["replicas"] == -1


def test_packed_repeated_ints() -> None:
    packed = field(4, varint(1000) + varint(2000))  # supplementalGroups, packed
    pod_spec = field(14, [packed])
    raw = field(1, meta("d")) + field(2, [field(3, [field(2, pod_spec)])])
    obj = decode_unknown(envelope("apps/v1", "Deployment", raw))
    assert obj["spec"]["template"]["spec"]["securityContext"] == {
        "supplementalGroups": [1000, 2000]}


# --- errors --------------------------------------------------------------------------------

BAD = [
    ("no magic", b"\x0a\x00"),
    ("truncated varint", PROTOBUF_MAGIC + b"\x0a\x80"),
    ("length past the end", PROTOBUF_MAGIC + b"\x0a\x10\x0a"),
    ("group wire type", PROTOBUF_MAGIC + b"\x0b"),
    ("field number zero", PROTOBUF_MAGIC + b"\x00\x01"),
    ("string as varint", envelope("v1", "Namespace", field(1, [varint(1 << 3) + varint(5)]))),
    ("bad utf-8 name", envelope("v1", "Namespace", field(1, [field(1, b"\xff\xfe")]))),
    ("truncated fixed64", PROTOBUF_MAGIC + varint(9 << 3 | 1) + b"\x00"),
    ("varint too long", PROTOBUF_MAGIC + b"\x08" + b"\xff" * 11),
]


@pytest.mark.parametrize("body", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_malformed_bodies_are_400(body: bytes) -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(body, PROTOBUF)
    assert err.value.status == 400


def test_unsupported_kind_is_415_and_says_send_json() -> None:
    with pytest.raises(DecodeError) as err:
        decode_object(envelope("batch/v1", "Job", field(1, meta("s"))), PROTOBUF)
    assert err.value.status == 415
    assert "application/json" in str(err.value)


def test_deep_nesting_is_refused() -> None:
    raw = b""
    for _ in range(200):
        raw = field(1, raw)  # metadata inside metadata... (field 1 of ObjectMeta is a string)
    with pytest.raises(ProtobufError):
        decode_unknown(envelope("v1", "Namespace", raw))


def test_fuzz_random_bytes_only_raise_decode_error() -> None:
    rng = random.Random(1234)
    real = (DATA / "kubectl-1.32-create-deployment.pb").read_bytes()
    for i in range(3000):
        if i % 2:
            body = PROTOBUF_MAGIC + rng.randbytes(rng.randrange(0, 64))
        else:
            mutated = bytearray(real)
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(4, len(mutated))] = rng.randrange(256)
            body = bytes(mutated[: rng.randrange(4, len(mutated) + 1)])
        try:
            obj = decode_object(body, PROTOBUF)
        except DecodeError as exc:
            assert exc.status in (400, 415)
        else:
            assert isinstance(obj, dict)
