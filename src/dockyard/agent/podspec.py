"""Pure translations from a Pod's spec to runtime requests, and Kubernetes' rules as functions.

Nothing here does I/O: references to ConfigMaps and Secrets are resolved through the dicts the
caller fetched, so every rule is unit-tested without a server.

Rules (as the kubelet applies them):
- env: `value` with `$(VAR)` expanded from variables defined earlier (`$$` escapes),
  `valueFrom` configMapKeyRef / secretKeyRef (a missing key or object is a
  CreateContainerConfigError unless `optional: true`), fieldRef metadata.name,
  metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'],
  spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP; `envFrom` first.
- back-off: the first restart is immediate; then 10 s doubling to 5 min; a container that ran
  10 min resets it (restart_delay).
- phase: the kubelet's getPhase, where a container waiting after a termination counts as
  stopped (so a crash-looping pod with restartPolicy Always is Running).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from dockyard.objects.quantity import cpu_millis, to_int
from dockyard.runtime import PortMapping, Resources

Obj = dict[str, Any]
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET_AFTER = 600.0  # a container that ran this long starts its back-off over
_VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(ValueError):
    """A container's config cannot be made (Kubernetes: CreateContainerConfigError)."""


@dataclass(frozen=True)
class PodContext:
    """What field references may read besides the pod itself."""

    pod_ip: str
    host_ip: str
    config_maps: dict[str, Obj | None]  # name -> object (None: not found)
    secrets: dict[str, Obj | None]


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """Return the names of ConfigMaps and Secrets the pod's env, envFrom and volumes use."""
    maps: set[str] = set()
    secrets: set[str] = set()
    spec = pod.get("spec") or {}
    for c in all_containers(pod):
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                maps.add(str(source["configMapKeyRef"].get("name", "")))
            if "secretKeyRef" in source:
                secrets.add(str(source["secretKeyRef"].get("name", "")))
        for env_from in c.get("envFrom") or []:
            if "configMapRef" in env_from:
                maps.add(str(env_from["configMapRef"].get("name", "")))
            if "secretRef" in env_from:
                secrets.add(str(env_from["secretRef"].get("name", "")))
    for volume in spec.get("volumes") or []:
        if "configMap" in volume:
            maps.add(str(volume["configMap"].get("name", "")))
        if "secret" in volume:
            secrets.add(str(volume["secret"].get("secretName", "")))
    return maps, secrets


def all_containers(pod: Obj) -> list[Obj]:
    """Return the pod's init containers then its containers."""
    spec = pod.get("spec") or {}
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def object_data(obj: Obj | None, secret: bool) -> dict[str, str]:
    """Return a ConfigMap's or Secret's data as text (Secret data is base64)."""
    if obj is None:
        return {}
    out: dict[str, str] = {}
    if secret:
        out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(str(v)).decode("utf-8", "replace")
    else:
        out.update({k: str(v) for k, v in (obj.get("data") or {}).items()})
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(str(v)).decode("utf-8", "replace")
    return out


def container_env(pod: Obj, container: Obj, ctx: PodContext) -> dict[str, str]:
    """Return the container's environment, or raise ConfigError naming what is missing."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        if "configMapRef" in source:
            env.update(_env_from(source["configMapRef"], ctx.config_maps, "configmap", prefix))
        if "secretRef" in source:
            env.update(_env_from(source["secretRef"], ctx.secrets, "secret", prefix))
    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        if "valueFrom" in var:
            value = _value_from(pod, var["valueFrom"], ctx)
            if value is None:
                continue
            env[name] = value
        else:
            env[name] = expand(str(var.get("value", "")), env)
    return env


def _env_from(ref: Obj, objects: dict[str, Obj | None], kind: str,
              prefix: str) -> dict[str, str]:  # fmt: skip
    name = str(ref.get("name", ""))
    obj = objects.get(name)
    if obj is None:
        if ref.get("optional"):
            return {}
        raise ConfigError(f'{kind} "{name}" not found')
    return {prefix + k: v for k, v in object_data(obj, kind == "secret").items()}


def _value_from(pod: Obj, source: Obj, ctx: PodContext) -> str | None:
    for key, objects, kind in (("configMapKeyRef", ctx.config_maps, "configmap"),
                               ("secretKeyRef", ctx.secrets, "secret")):  # fmt: skip
        if key in source:
            ref = source[key]
            name, item = str(ref.get("name", "")), str(ref.get("key", ""))
            obj = objects.get(name)
            data = object_data(obj, kind == "secret")
            if item in data:
                return data[item]
            if ref.get("optional"):
                return None
            if obj is None:
                raise ConfigError(f'{kind} "{name}" not found')
            raise ConfigError(f"couldn't find key {item} in {kind.capitalize()} "
                              f"{(pod.get('metadata') or {}).get('namespace')}/{name}")
    if "fieldRef" in source:
        return field_value(pod, str(source["fieldRef"].get("fieldPath", "")), ctx)
    if "resourceFieldRef" in source:
        return _resource_field(pod, source["resourceFieldRef"])
    raise ConfigError("env valueFrom: no supported source")


def field_value(pod: Obj, path: str, ctx: PodContext) -> str:
    """Return the value of a downward API field path."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": ctx.pod_ip, "status.hostIP": ctx.host_ip,
        "status.podIPs": ctx.pod_ip, "status.hostIPs": ctx.host_ip,
    }  # fmt: skip
    if path in simple:
        return str(simple[path] or "")
    match = _FIELD_LABEL.match(path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_field(pod: Obj, ref: Obj) -> str:
    name = str(ref.get("containerName", ""))
    resource = str(ref.get("resource", ""))
    for c in all_containers(pod):
        if c.get("name") == name or not name:
            kind, _, what = resource.partition(".")
            value = ((c.get("resources") or {}).get(kind) or {}).get(what)
            if value is None:
                return "0"
            return str(cpu_millis(value) // 1000 or 1) if what == "cpu" else str(to_int(value))
    raise ConfigError(f"resourceFieldRef: no container {name!r}")


def expand(value: str, env: dict[str, str]) -> str:
    """Expand $(VAR) from env as Kubernetes does; unknown references stay as written."""
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR_REF.sub(sub, value)


def expanded_args(values: list[Any], env: dict[str, str]) -> list[str]:
    """Return command or args with $(VAR) expanded."""
    return [expand(str(v), env) for v in values]


def port_mappings(pod: Obj) -> list[PortMapping]:
    """Return the hostPort mappings of the pod's containers."""
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                out.append(PortMapping(host_port=int(port["hostPort"]),
                                       container_port=int(port["containerPort"]),
                                       protocol=str(port.get("protocol", "TCP")).lower(),
                                       host_ip=str(port.get("hostIP", ""))))  # fmt: skip
    return out


def resources(container: Obj) -> Resources:
    """Return the runtime's resources from the container's requests and limits."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    return Resources(
        cpu_request_millis=cpu_millis(requests["cpu"]) if "cpu" in requests else None,
        cpu_limit_millis=cpu_millis(limits["cpu"]) if "cpu" in limits else None,
        memory_limit_bytes=to_int(limits["memory"]) if "memory" in limits else None,
    )


def restart_delay(restarts_in_streak: int) -> float:
    """Return the back-off before restart number n+1 (0 → immediate, then 10 s doubling)."""
    if restarts_in_streak <= 0:
        return 0.0
    return min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (restarts_in_streak - 1))


def should_restart(policy: str, exit_code: int | None) -> bool:
    """Tell whether a terminated container is restarted under the pod's restartPolicy."""
    if policy == "Always":
        return True
    if policy == "OnFailure":
        return exit_code != 0
    return False


def pod_phase(pod: Obj, init_statuses: list[Obj], statuses: list[Obj]) -> str:
    """Return the pod's phase from its container statuses (the kubelet's getPhase)."""
    policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    for status in init_statuses:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated and terminated.get("exitCode") == 0:
            continue
        failed = terminated or (status.get("lastState") or {}).get("terminated")
        if failed and policy == "Never":
            return "Failed"
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for status in statuses:
        state = status.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif (status.get("lastState") or {}).get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if succeeded == stopped:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"
    return "Pending"


def set_condition(conditions: list[Obj], kind: str, value: bool, now: str,
                  reason: str = "", message: str = "") -> None:  # fmt: skip
    """Set a pod condition in place, keeping lastTransitionTime when the status stays."""
    status = "True" if value else "False"
    for cond in conditions:
        if cond.get("type") == kind:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now
            cond["status"] = status
            _reason(cond, reason, message)
            return
    cond = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
    _reason(cond, reason, message)
    conditions.append(cond)


def _reason(cond: Obj, reason: str, message: str) -> None:
    cond.pop("reason", None)
    cond.pop("message", None)
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
