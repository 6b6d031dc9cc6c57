"""Kubernetes protobuf request bodies (what kubectl 1.32+ POSTs for `kubectl create ...`).

A body is the magic `k8s\\x00` then a runtime.Unknown message: typeMeta (1: apiVersion,
2: kind), raw (2: the object's own protobuf), contentEncoding (3), contentType (4). The
object's protobuf is decoded with the message schemas below into the JSON shape the same
object has in JSON, so the api server handles both the same way.

Why our own decoder: the wire format is four rules (varint, 64-bit, length-delimited, 32-bit)
and the `protobuf` package would still need these schemas as generated code for every
Kubernetes type; a small table-driven walker is less code and no dependency.

The field numbers were read from k8s.io/api core/v1, apps/v1, policy/v1, scheduling/v1 and
autoscaling/v1 generated.proto and k8s.io/apimachinery meta/v1, runtime, resource and
intstr generated.proto. The schemas cover the kinds dockyard serves that kubectl 1.32
`create` subcommands send as protobuf (namespace, configmap, secret generic|tls|
docker-registry, deployment, service clusterip|nodeport|loadbalancer|externalname,
priorityclass, pdb; `kubectl autoscale` posts an autoscaling/v1 HorizontalPodAutoscaler)
and the fields those objects commonly hold.

Invariants:
- unknown field numbers are skipped (their wire type tells their length), never guessed;
- zero scalars are dropped as Go's `omitempty` JSON does, except in fields Go holds as
  pointers (replicas, immutable...), where the presence of a zero is meaningful;
- `bytes` fields become base64 strings, as in JSON; Time becomes RFC 3339 text;
- any malformed input (truncated varint, length past the end, bad UTF-8, a group wire
  type, nesting deeper than MAX_DEPTH) raises ProtobufError, never another exception.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["PROTOBUF_MAGIC", "KIND_SCHEMAS", "ProtobufError", "decode_unknown"]

PROTOBUF_MAGIC = b"k8s\x00"
MAX_DEPTH = 64

# Wire types.
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """A protobuf body that cannot be decoded, with the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class F:
    """One field of a message schema: its JSON name and how to decode it."""

    name: str
    kind: str  # string bytes raw int bool message map time intorstr quantity fieldsv1 inline
    sub: dict[int, F] | None = None
    repeated: bool = False
    keep_zero: bool = False  # Go holds the field as a pointer: a zero is meaningful
    value_kind: str = "string"  # for map: the kind of the values


Schema = dict[int, "F"]


# --- wire format ---------------------------------------------------------------------------


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
    raise ProtobufError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of a message."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtobufError("field number 0 is invalid")
        if wire == VARINT:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if pos + size > len(buf):
                raise ProtobufError(f"truncated fixed{size * 8} field {number}")
            yield number, wire, int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == LEN:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise ProtobufError(f"field {number} claims {size} bytes; only "
                                    f"{len(buf) - pos} remain")
            yield number, wire, buf[pos:pos + size]
            pos += size
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")


# --- values --------------------------------------------------------------------------------


def _expect(wire: int, want: int, field: F) -> None:
    if wire != want:
        raise ProtobufError(f"field {field.name!r} has wire type {wire}, expected {want}")


def _text(raw: bytes, field: F) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError(f"field {field.name!r} is not valid UTF-8") from None


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(field: F, wire: int, value: int | bytes, depth: int) -> Any:
    kind = field.kind
    if kind in ("int", "bool"):
        _expect(wire, VARINT, field)
        assert isinstance(value, int)
        return bool(value) if kind == "bool" else _signed(value)
    _expect(wire, LEN, field)
    assert isinstance(value, bytes)
    if kind == "string":
        return _text(value, field)
    if kind == "bytes":
        return base64.b64encode(value).decode("ascii")
    if kind == "raw":
        return value
    if kind == "message":
        assert field.sub is not None
        return _message(value, field.sub, depth + 1)
    if kind == "time":
        return _time(value, depth)
    if kind == "intorstr":
        return _int_or_string(value, depth)
    if kind == "quantity":
        return _message(value, {1: F("string", "string")}, depth + 1).get("string", "")
    if kind == "fieldsv1":
        return _fields_v1(value, depth)
    raise ProtobufError(f"schema error: unknown kind {kind!r}")


def _is_zero(value: Any) -> bool:
    return value in ("", 0, False) and not isinstance(value, dict | list)


def _message(buf: bytes, schema: Schema, depth: int) -> dict[str, Any]:
    """Decode one message into a JSON-shaped dict."""
    if depth > MAX_DEPTH:
        raise ProtobufError(f"messages nested deeper than {MAX_DEPTH}")
    out: dict[str, Any] = {}
    for number, wire, value in _fields(buf):
        field = schema.get(number)
        if field is None:
            continue
        if field.kind == "inline":
            _expect(wire, LEN, field)
            assert isinstance(value, bytes) and field.sub is not None
            out.update(_message(value, field.sub, depth + 1))
        elif field.kind == "map":
            _expect(wire, LEN, field)
            assert isinstance(value, bytes)
            key, item = _map_entry(value, field, depth)
            out.setdefault(field.name, {})[key] = item
        elif field.repeated and field.kind in ("int", "bool") and wire == LEN:
            assert isinstance(value, bytes)
            out.setdefault(field.name, []).extend(_packed(value, field))
        elif field.repeated:
            out.setdefault(field.name, []).append(_scalar(field, wire, value, depth))
        else:
            decoded = _scalar(field, wire, value, depth)
            if decoded is None or (_is_zero(decoded) and not field.keep_zero):
                out.pop(field.name, None)
            else:
                out[field.name] = decoded
    return out


def _packed(buf: bytes, field: F) -> list[Any]:
    """Decode a packed repeated varint field."""
    values: list[Any] = []
    pos = 0
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        values.append(bool(value) if field.kind == "bool" else _signed(value))
    return values


def _map_entry(buf: bytes, field: F, depth: int) -> tuple[str, Any]:
    entry = _message(buf, {1: F("key", "string", keep_zero=True),
                           2: F("value", field.value_kind, field.sub, keep_zero=True)},
                     depth + 1)
    default: Any = {} if field.value_kind == "message" else ""
    return entry.get("key", ""), entry.get("value", default)


def _time(buf: bytes, depth: int) -> str | None:
    parts = _message(buf, {1: F("seconds", "int"), 2: F("nanos", "int")}, depth + 1)
    seconds = parts.get("seconds", 0)
    if not seconds:
        return None  # the zero Time is null in JSON
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise ProtobufError(f"time {seconds} is out of range") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(buf: bytes, depth: int) -> int | str:
    parts = _message(buf, {1: F("type", "int"), 2: F("intVal", "int"), 3: F("strVal", "string")},
                     depth + 1)
    if parts.get("type", 0) == 1:
        return str(parts.get("strVal", ""))
    return int(parts.get("intVal", 0))


def _fields_v1(buf: bytes, depth: int) -> Any:
    raw = _message(buf, {1: F("Raw", "bytes")}, depth + 1).get("Raw", "")
    try:
        return json.loads(base64.b64decode(raw)) if raw else {}
    except ValueError:
        raise ProtobufError("managedFields fieldsV1 is not JSON") from None


# --- entry point ---------------------------------------------------------------------------


def decode_unknown(body: bytes) -> dict[str, Any]:
    """Decode `k8s\\x00` + runtime.Unknown into the object's JSON-shaped dict."""
    if not body.startswith(PROTOBUF_MAGIC):
        raise ProtobufError("missing the magic prefix 'k8s\\x00'")
    envelope = _message(body[len(PROTOBUF_MAGIC):], UNKNOWN, 0)
    type_meta = envelope.get("typeMeta", {})
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    encoding = envelope.get("contentEncoding", "")
    if encoding:
        raise ProtobufError(f"content encoding {encoding!r} is not supported", status=415)
    content_type = envelope.get("contentType", "")
    if content_type not in ("", "application/vnd.kubernetes.protobuf"):
        raise ProtobufError(f"runtime.Unknown content type {content_type!r} is not supported",
                            status=415)
    schema = KIND_SCHEMAS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"protobuf for {api_version or '?'} {kind or '?'} is not supported; "
                            f"send it as application/json", status=415)
    obj = _message(envelope.get("raw", b""), schema, 1)
    return {"apiVersion": api_version, "kind": kind, **obj}


# --- schemas (field numbers from the generated.proto files) --------------------------------

def _m(**numbered: F) -> Schema:
    """Build a schema from keyword arguments named f<number>."""
    return {int(key[1:]): value for key, value in numbered.items()}


def _s(name: str, *, keep: bool = False) -> F:
    return F(name, "string", keep_zero=keep)


def _i(name: str, *, keep: bool = False) -> F:
    return F(name, "int", keep_zero=keep)


def _b(name: str, *, keep: bool = False) -> F:
    return F(name, "bool", keep_zero=keep)


def _ios(name: str) -> F:
    """Describe an IntOrString: Go's JSON never omits it, so a zero is kept."""
    return F(name, "intorstr", keep_zero=True)


def _msg(name: str, sub: Schema, *, repeated: bool = False) -> F:
    return F(name, "message", sub, repeated=repeated)


def _strings(name: str) -> F:
    return F(name, "string", repeated=True)


def _str_map(name: str) -> F:
    return F(name, "map", value_kind="string")


TYPE_META = _m(f1=_s("apiVersion"), f2=_s("kind"))
UNKNOWN = _m(f1=_msg("typeMeta", TYPE_META), f2=F("raw", "raw"), f3=_s("contentEncoding"),
             f4=_s("contentType"))

OWNER_REFERENCE = _m(f5=_s("apiVersion"), f1=_s("kind"), f3=_s("name"), f4=_s("uid"),
                     f6=_b("controller", keep=True), f7=_b("blockOwnerDeletion", keep=True))
MANAGED_FIELDS_ENTRY = _m(f1=_s("manager"), f2=_s("operation"), f3=_s("apiVersion"),
                          f4=F("time", "time"), f6=_s("fieldsType"),
                          f7=F("fieldsV1", "fieldsv1"), f8=_s("subresource"))
OBJECT_META = _m(
    f1=_s("name"), f2=_s("generateName"), f3=_s("namespace"), f4=_s("selfLink"), f5=_s("uid"),
    f6=_s("resourceVersion"), f7=_i("generation"), f8=F("creationTimestamp", "time"),
    f9=F("deletionTimestamp", "time"), f10=_i("deletionGracePeriodSeconds", keep=True),
    f11=_str_map("labels"), f12=_str_map("annotations"),
    f13=_msg("ownerReferences", OWNER_REFERENCE, repeated=True), f14=_strings("finalizers"),
    f17=_msg("managedFields", MANAGED_FIELDS_ENTRY, repeated=True),
)
LABEL_SELECTOR_REQUIREMENT = _m(f1=_s("key"), f2=_s("operator"), f3=_strings("values"))
LABEL_SELECTOR = _m(f1=_str_map("matchLabels"),
                    f2=_msg("matchExpressions", LABEL_SELECTOR_REQUIREMENT, repeated=True))

# core/v1
NAMESPACE_CONDITION = _m(f1=_s("type"), f2=_s("status"), f4=F("lastTransitionTime", "time"),
                         f5=_s("reason"), f6=_s("message"))
NAMESPACE = _m(
    f1=_msg("metadata", OBJECT_META),
    f2=_msg("spec", _m(f1=_strings("finalizers"))),
    f3=_msg("status", _m(f1=_s("phase"),
                         f2=_msg("conditions", NAMESPACE_CONDITION, repeated=True))),
)
CONFIG_MAP = _m(f1=_msg("metadata", OBJECT_META), f2=_str_map("data"),
                f3=F("binaryData", "map", value_kind="bytes"), f4=_b("immutable", keep=True))
SECRET = _m(f1=_msg("metadata", OBJECT_META), f2=F("data", "map", value_kind="bytes"),
            f3=_s("type"), f4=_str_map("stringData"), f5=_b("immutable", keep=True))

LOCAL_OBJECT_REFERENCE = _m(f1=_s("name"))
_LOCAL_REF = F("", "inline", LOCAL_OBJECT_REFERENCE)
KEY_SELECTOR = _m(f1=_LOCAL_REF, f2=_s("key"), f3=_b("optional", keep=True))
ENV_VAR_SOURCE = _m(
    f1=_msg("fieldRef", _m(f1=_s("apiVersion"), f2=_s("fieldPath"))),
    f2=_msg("resourceFieldRef", _m(f1=_s("containerName"), f2=_s("resource"),
                                   f3=F("divisor", "quantity"))),
    f3=_msg("configMapKeyRef", KEY_SELECTOR),
    f4=_msg("secretKeyRef", KEY_SELECTOR),
)
ENV_VAR = _m(f1=_s("name"), f2=_s("value"), f3=_msg("valueFrom", ENV_VAR_SOURCE))
ENV_FROM_SOURCE = _m(
    f1=_s("prefix"),
    f2=_msg("configMapRef", _m(f1=_LOCAL_REF, f2=_b("optional", keep=True))),
    f3=_msg("secretRef", _m(f1=_LOCAL_REF, f2=_b("optional", keep=True))),
)
CONTAINER_PORT = _m(f1=_s("name"), f2=_i("hostPort"), f3=_i("containerPort"), f4=_s("protocol"),
                    f5=_s("hostIP"))
RESOURCE_REQUIREMENTS = _m(
    f1=F("limits", "map", value_kind="quantity"),
    f2=F("requests", "map", value_kind="quantity"),
    f3=_msg("claims", _m(f1=_s("name"), f2=_s("request")), repeated=True),
)
VOLUME_MOUNT = _m(f1=_s("name"), f2=_b("readOnly"), f7=_s("recursiveReadOnly", keep=True),
                  f3=_s("mountPath"), f4=_s("subPath"), f5=_s("mountPropagation", keep=True),
                  f6=_s("subPathExpr"))
HTTP_GET_ACTION = _m(f1=_s("path"), f2=_ios("port"), f3=_s("host"), f4=_s("scheme"),
                     f5=_msg("httpHeaders", _m(f1=_s("name"), f2=_s("value")), repeated=True))
TCP_SOCKET_ACTION = _m(f1=_ios("port"), f2=_s("host"))
EXEC_ACTION = _m(f1=_strings("command"))
PROBE_HANDLER = _m(f1=_msg("exec", EXEC_ACTION), f2=_msg("httpGet", HTTP_GET_ACTION),
                   f3=_msg("tcpSocket", TCP_SOCKET_ACTION))
PROBE = _m(f1=F("", "inline", PROBE_HANDLER), f2=_i("initialDelaySeconds"),
           f3=_i("timeoutSeconds"), f4=_i("periodSeconds"), f5=_i("successThreshold"),
           f6=_i("failureThreshold"), f7=_i("terminationGracePeriodSeconds", keep=True))
LIFECYCLE_HANDLER = _m(f1=_msg("exec", EXEC_ACTION), f2=_msg("httpGet", HTTP_GET_ACTION),
                       f3=_msg("tcpSocket", TCP_SOCKET_ACTION),
                       f4=_msg("sleep", _m(f1=_i("seconds"))))
LIFECYCLE = _m(f1=_msg("postStart", LIFECYCLE_HANDLER), f2=_msg("preStop", LIFECYCLE_HANDLER))
CAPABILITIES = _m(f1=_strings("add"), f2=_strings("drop"))
SECURITY_CONTEXT = _m(
    f1=_msg("capabilities", CAPABILITIES), f2=_b("privileged", keep=True),
    f4=_i("runAsUser", keep=True), f8=_i("runAsGroup", keep=True),
    f5=_b("runAsNonRoot", keep=True), f6=_b("readOnlyRootFilesystem", keep=True),
    f7=_b("allowPrivilegeEscalation", keep=True), f9=_s("procMount", keep=True),
)
CONTAINER = _m(
    f1=_s("name"), f2=_s("image"), f3=_strings("command"), f4=_strings("args"),
    f5=_s("workingDir"), f6=_msg("ports", CONTAINER_PORT, repeated=True),
    f19=_msg("envFrom", ENV_FROM_SOURCE, repeated=True), f7=_msg("env", ENV_VAR, repeated=True),
    f8=_msg("resources", RESOURCE_REQUIREMENTS), f24=_s("restartPolicy", keep=True),
    f9=_msg("volumeMounts", VOLUME_MOUNT, repeated=True),
    f10=_msg("livenessProbe", PROBE), f11=_msg("readinessProbe", PROBE),
    f22=_msg("startupProbe", PROBE), f12=_msg("lifecycle", LIFECYCLE),
    f13=_s("terminationMessagePath"), f20=_s("terminationMessagePolicy"),
    f14=_s("imagePullPolicy"), f15=_msg("securityContext", SECURITY_CONTEXT),
    f16=_b("stdin"), f17=_b("stdinOnce"), f18=_b("tty"),
)
KEY_TO_PATH = _m(f1=_s("key"), f2=_s("path"), f3=_i("mode", keep=True))
VOLUME_SOURCE = _m(
    f1=_msg("hostPath", _m(f1=_s("path"), f2=_s("type", keep=True))),
    f2=_msg("emptyDir", _m(f1=_s("medium"), f2=F("sizeLimit", "quantity"))),
    f6=_msg("secret", _m(f1=_s("secretName"), f2=_msg("items", KEY_TO_PATH, repeated=True),
                         f3=_i("defaultMode", keep=True), f4=_b("optional", keep=True))),
    f10=_msg("persistentVolumeClaim", _m(f1=_s("claimName"), f2=_b("readOnly"))),
    f19=_msg("configMap", _m(f1=_LOCAL_REF, f2=_msg("items", KEY_TO_PATH, repeated=True),
                             f3=_i("defaultMode", keep=True), f4=_b("optional", keep=True))),
)
VOLUME = _m(f1=_s("name"), f2=F("", "inline", VOLUME_SOURCE))
TOLERATION = _m(f1=_s("key"), f2=_s("operator"), f3=_s("value"), f4=_s("effect"),
                f5=_i("tolerationSeconds", keep=True))
POD_SECURITY_CONTEXT = _m(
    f2=_i("runAsUser", keep=True), f6=_i("runAsGroup", keep=True),
    f3=_b("runAsNonRoot", keep=True), f4=F("supplementalGroups", "int", repeated=True),
    f5=_i("fsGroup", keep=True),
)
POD_SPEC = _m(
    f1=_msg("volumes", VOLUME, repeated=True),
    f20=_msg("initContainers", CONTAINER, repeated=True),
    f2=_msg("containers", CONTAINER, repeated=True),
    f3=_s("restartPolicy"), f4=_i("terminationGracePeriodSeconds", keep=True),
    f5=_i("activeDeadlineSeconds", keep=True), f6=_s("dnsPolicy"), f7=_str_map("nodeSelector"),
    f8=_s("serviceAccountName"), f9=_s("serviceAccount"),
    f21=_b("automountServiceAccountToken", keep=True), f10=_s("nodeName"),
    f11=_b("hostNetwork"), f12=_b("hostPID"), f13=_b("hostIPC"),
    f27=_b("shareProcessNamespace", keep=True),
    f14=_msg("securityContext", POD_SECURITY_CONTEXT),
    f15=_msg("imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
    f16=_s("hostname"), f17=_s("subdomain"), f19=_s("schedulerName"),
    f22=_msg("tolerations", TOLERATION, repeated=True),
    f23=_msg("hostAliases", _m(f1=_s("ip"), f2=_strings("hostnames")), repeated=True),
    f24=_s("priorityClassName"), f25=_i("priority", keep=True),
    f29=_s("runtimeClassName", keep=True), f30=_b("enableServiceLinks", keep=True),
)
POD_TEMPLATE_SPEC = _m(f1=_msg("metadata", OBJECT_META), f2=_msg("spec", POD_SPEC))

# apps/v1
ROLLING_UPDATE_DEPLOYMENT = _m(f1=_ios("maxUnavailable"), f2=_ios("maxSurge"))
DEPLOYMENT_STRATEGY = _m(f1=_s("type"), f2=_msg("rollingUpdate", ROLLING_UPDATE_DEPLOYMENT))
DEPLOYMENT_CONDITION = _m(f1=_s("type"), f2=_s("status"), f6=F("lastUpdateTime", "time"),
                          f7=F("lastTransitionTime", "time"), f4=_s("reason"),
                          f5=_s("message"))
DEPLOYMENT_STATUS = _m(
    f1=_i("observedGeneration"), f2=_i("replicas"), f3=_i("updatedReplicas"),
    f7=_i("readyReplicas"), f4=_i("availableReplicas"), f5=_i("unavailableReplicas"),
    f9=_i("terminatingReplicas", keep=True),
    f6=_msg("conditions", DEPLOYMENT_CONDITION, repeated=True),
    f8=_i("collisionCount", keep=True),
)
DEPLOYMENT = _m(
    f1=_msg("metadata", OBJECT_META),
    f2=_msg("spec", _m(
        f1=_i("replicas", keep=True), f2=_msg("selector", LABEL_SELECTOR),
        f3=_msg("template", POD_TEMPLATE_SPEC), f4=_msg("strategy", DEPLOYMENT_STRATEGY),
        f5=_i("minReadySeconds"), f6=_i("revisionHistoryLimit", keep=True), f7=_b("paused"),
        f9=_i("progressDeadlineSeconds", keep=True),
    )),
    f3=_msg("status", DEPLOYMENT_STATUS),
)

CONDITION = _m(f1=_s("type"), f2=_s("status"), f3=_i("observedGeneration"),
               f4=F("lastTransitionTime", "time"), f5=_s("reason"), f6=_s("message"))

# core/v1 Service
SERVICE_PORT = _m(f1=_s("name"), f2=_s("protocol"), f6=_s("appProtocol", keep=True),
                  f3=_i("port"), f4=_ios("targetPort"), f5=_i("nodePort"))
SERVICE = _m(
    f1=_msg("metadata", OBJECT_META),
    f2=_msg("spec", _m(
        f1=_msg("ports", SERVICE_PORT, repeated=True), f2=_str_map("selector"),
        f3=_s("clusterIP"), f18=_strings("clusterIPs"), f4=_s("type"),
        f5=_strings("externalIPs"), f7=_s("sessionAffinity"), f8=_s("loadBalancerIP"),
        f9=_strings("loadBalancerSourceRanges"), f10=_s("externalName"),
        f11=_s("externalTrafficPolicy"), f12=_i("healthCheckNodePort"),
        f13=_b("publishNotReadyAddresses"),
        f14=_msg("sessionAffinityConfig", _m(f1=_msg("clientIP", _m(
            f1=_i("timeoutSeconds", keep=True))))),
        f19=_strings("ipFamilies"), f17=_s("ipFamilyPolicy", keep=True),
        f20=_b("allocateLoadBalancerNodePorts", keep=True),
        f21=_s("loadBalancerClass", keep=True), f22=_s("internalTrafficPolicy", keep=True),
        f23=_s("trafficDistribution", keep=True),
    )),
    f3=_msg("status", _m(
        f1=_msg("loadBalancer", _m(f1=_msg("ingress", _m(
            f1=_s("ip"), f2=_s("hostname"), f3=_s("ipMode", keep=True)), repeated=True))),
        f2=_msg("conditions", CONDITION, repeated=True),
    )),
)

# policy/v1, scheduling.k8s.io/v1, autoscaling/v1
POD_DISRUPTION_BUDGET = _m(
    f1=_msg("metadata", OBJECT_META),
    f2=_msg("spec", _m(f1=_ios("minAvailable"), f2=_msg("selector", LABEL_SELECTOR),
                       f3=_ios("maxUnavailable"),
                       f4=_s("unhealthyPodEvictionPolicy", keep=True))),
    f3=_msg("status", _m(
        f1=_i("observedGeneration"), f2=F("disruptedPods", "map", value_kind="time"),
        f3=_i("disruptionsAllowed"), f4=_i("currentHealthy"), f5=_i("desiredHealthy"),
        f6=_i("expectedPods"), f7=_msg("conditions", CONDITION, repeated=True),
    )),
)
PRIORITY_CLASS = _m(
    f1=_msg("metadata", OBJECT_META), f2=_i("value", keep=True), f3=_b("globalDefault"),
    f4=_s("description"), f5=_s("preemptionPolicy", keep=True),
)
HORIZONTAL_POD_AUTOSCALER_V1 = _m(
    f1=_msg("metadata", OBJECT_META),
    f2=_msg("spec", _m(
        f1=_msg("scaleTargetRef", _m(f1=_s("kind"), f2=_s("name"), f3=_s("apiVersion"))),
        f2=_i("minReplicas", keep=True), f3=_i("maxReplicas"),
        f4=_i("targetCPUUtilizationPercentage", keep=True),
    )),
    f3=_msg("status", _m(
        f1=_i("observedGeneration", keep=True), f2=F("lastScaleTime", "time"),
        f3=_i("currentReplicas"), f4=_i("desiredReplicas"),
        f5=_i("currentCPUUtilizationPercentage", keep=True),
    )),
)

KIND_SCHEMAS: dict[tuple[str, str], Schema] = {
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Secret"): SECRET,
    ("v1", "Service"): SERVICE,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("policy/v1", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
    ("scheduling.k8s.io/v1", "PriorityClass"): PRIORITY_CLASS,
    ("autoscaling/v1", "HorizontalPodAutoscaler"): HORIZONTAL_POD_AUTOSCALER_V1,
}
