"""Pod: defaults, validation, and the helpers every loop uses (requests, readiness, status).

Defaults follow Kubernetes' defaulting functions plus the Priority admission plugin's
fallback (priority 0 and preemptionPolicy PreemptLowerPriority when no priorityClassName is
given; with a priorityClassName the api server must resolve the PriorityClass and set
spec.priority). The not-ready/unreachable tolerations come from the api server's admission
(DefaultTolerationSeconds), whose seconds are a server setting.

``validate_pod_spec`` and ``apply_pod_spec_defaults`` serve pod templates too (Deployments,
ReplicaSets) with a field path prefix such as "spec.template.spec".

Invariants: apply_defaults is idempotent; validators never raise on malformed input;
``pod_requests`` computes effective requests as the scheduler does:
max(sum(containers) + sum(sidecars), max over init containers of (init + sidecars started
before it)) + overhead, cpu in millicores and everything else in whole units; a container's
limit without a request counts as its request, as defaulting makes it (so pods that never went
through the api server, such as simulated ones, count the same).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

from dockyard.objects.affinity import validate_affinity, validate_topology_spread
from dockyard.objects.meta import parse_time, set_default
from dockyard.objects.quantity import QuantityError, cpu_millis, parse_quantity, to_int
from dockyard.objects.validation import (
    FieldError,
    as_dict,
    as_list,
    as_str_map,
    check,
    dict_of,
    dns1123_label,
    dns1123_subdomain,
    duplicate,
    env_var_name,
    forbidden,
    hashable,
    int_or_port_name,
    invalid,
    list_of,
    non_negative,
    not_found,
    not_supported,
    port_name,
    port_number,
    qualified_name,
    required,
    type_invalid,
    validate_labels,
    validate_metadata,
    validate_metadata_update,
)
from dockyard.objects.volumes import (
    ENV_FIELD_PATHS,
    key_reference,
    object_items,
    object_reference,
    relative_path,
    validate_volume_source,
)

Obj = dict[str, Any]

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TOLERATION_OPERATORS = ("Equal", "Exists")
TAINT_EFFECTS = ("NoExecute", "NoSchedule", "PreferNoSchedule")
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


# --- defaults ------------------------------------------------------------------------------


def apply_defaults(pod: Obj) -> None:
    """Fill the fields Kubernetes (and its default admission plugins) set on a Pod."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    apply_pod_spec_defaults(spec)
    if not spec.get("priorityClassName"):
        set_default(spec, "priority", 0)
    set_default(spec, "preemptionPolicy", "PreemptLowerPriority")


def apply_pod_spec_defaults(spec: Obj) -> None:
    """Fill the defaults of a pod spec (also used for pod templates)."""
    set_default(spec, "restartPolicy", "Always")
    set_default(spec, "dnsPolicy", "ClusterFirst")
    set_default(spec, "terminationGracePeriodSeconds", 30)
    set_default(spec, "securityContext", {})
    set_default(spec, "schedulerName", "default-scheduler")
    set_default(spec, "enableServiceLinks", True)
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers"):
        for container in _dicts(spec.get(key)):
            _container_defaults(container, host_network)
    for volume in _dicts(spec.get("volumes")):
        _volume_defaults(volume)


def default_pull_policy(image: str) -> str:
    """Return Kubernetes' default imagePullPolicy: Always for ":latest" or no tag."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _container_defaults(container: Obj, host_network: bool) -> None:
    image = container.get("image")
    if isinstance(image, str) and image:
        set_default(container, "imagePullPolicy", default_pull_policy(image))
    set_default(container, "terminationMessagePath", "/dev/termination-log")
    set_default(container, "terminationMessagePolicy", "File")
    resources = set_default(container, "resources", {})
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        requests = set_default(resources, "requests", {})
        if isinstance(requests, dict):
            for name, value in resources["limits"].items():
                set_default(requests, name, value)
    for port in _dicts(container.get("ports")):
        set_default(port, "protocol", "TCP")
        if host_network and "containerPort" in port:
            set_default(port, "hostPort", port["containerPort"])
    for probe_name in _PROBES:
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            _probe_defaults(probe)
    for env in _dicts(container.get("env")):
        field_ref = dict_of(env.get("valueFrom")).get("fieldRef")
        if isinstance(field_ref, dict):
            set_default(field_ref, "apiVersion", "v1")


def _probe_defaults(probe: Obj) -> None:
    set_default(probe, "timeoutSeconds", 1)
    set_default(probe, "periodSeconds", 10)
    set_default(probe, "successThreshold", 1)
    set_default(probe, "failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        set_default(http, "path", "/")
        set_default(http, "scheme", "HTTP")


def _volume_defaults(volume: Obj) -> None:
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        if isinstance(volume.get(source), dict):
            set_default(volume[source], "defaultMode", 0o644)
    if isinstance(volume.get("hostPath"), dict):
        set_default(volume["hostPath"], "type", "")


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Return True if a toleration tolerates a taint (key, value, effect), as Kubernetes."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


# --- validation ----------------------------------------------------------------------------


def validate(pod: Obj) -> list[FieldError]:
    """Return every problem with a Pod (its status included)."""
    errs = validate_metadata(pod, namespaced=True)
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [
            *errs,
            required("spec") if spec is None else type_invalid("spec", spec, "must be an object"),
        ]
    errs += validate_pod_spec(spec, "spec")
    status = pod.get("status")
    if status is not None:
        errs += _validate_status(status, spec)
    return errs


POD_PHASES = ("Failed", "Pending", "Running", "Succeeded", "Unknown")
CONDITION_STATUSES = ("False", "True", "Unknown")


def _validate_status(status: Any, spec: Obj) -> list[FieldError]:
    if not isinstance(status, dict):
        return [type_invalid("status", status, "must be an object")]
    errs: list[FieldError] = []
    phase = status.get("phase")
    if phase is not None and phase not in POD_PHASES:
        errs.append(not_supported("status.phase", phase, POD_PHASES))
    for i, condition in enumerate(as_list(status, "conditions", "status.conditions", errs)):
        field = f"status.conditions[{i}]"
        if not isinstance(condition, dict) or not condition.get("type"):
            errs.append(required(f"{field}.type"))
        elif condition.get("status") not in CONDITION_STATUSES:
            errs.append(
                not_supported(f"{field}.status", condition.get("status"), CONDITION_STATUSES)
            )
    errs += _validate_pod_ips(status)
    nominated = status.get("nominatedNodeName")
    if nominated:
        errs += check("status.nominatedNodeName", nominated, dns1123_subdomain)
    for key, spec_key in (
        ("containerStatuses", "containers"),
        ("initContainerStatuses", "initContainers"),
    ):
        names = {hashable(c.get("name")) for c in _dicts(spec.get(spec_key))}
        statuses = as_list(status, key, f"status.{key}", errs)
        for field, cs in object_items(statuses, f"status.{key}", errs):
            if hashable(cs.get("name")) not in names:
                errs.append(not_found(f"{field}.name", cs.get("name")))
            non_negative(f"{field}.restartCount", cs.get("restartCount"), errs)
    return errs


def _validate_pod_ips(status: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    ips = [
        p.get("ip") if isinstance(p, dict) else p
        for p in as_list(status, "podIPs", "status.podIPs", errs)
    ]
    for i, ip in enumerate(ips):
        if not _is_ip(ip):
            errs.append(invalid(f"status.podIPs[{i}].ip", ip, "must be a valid IP address"))
        elif ip in ips[:i]:
            errs.append(duplicate(f"status.podIPs[{i}].ip", ip))
    pod_ip = status.get("podIP")
    if pod_ip and not _is_ip(pod_ip):
        errs.append(invalid("status.podIP", pod_ip, "must be a valid IP address"))
    elif pod_ip and ips and ips[0] != pod_ip:
        errs.append(invalid("status.podIPs[0].ip", ips[0], "must be equal to status.podIP"))
    return errs


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_pod_spec(spec: Obj, path: str) -> list[FieldError]:
    """Return every problem with a pod spec found under a field path ("spec")."""
    errs: list[FieldError] = []
    volumes = _validate_volumes(as_list(spec, "volumes", f"{path}.volumes", errs), path)
    errs += volumes[1]
    containers = as_list(spec, "containers", f"{path}.containers", errs)
    inits = as_list(spec, "initContainers", f"{path}.initContainers", errs)
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key, items in (("initContainers", inits), ("containers", containers)):
        for field, container in object_items(items, f"{path}.{key}", errs):
            errs += _validate_container(container, field, volumes[0], key == "initContainers")
            name = container.get("name")
            if isinstance(name, str) and name:
                if name in seen:
                    errs.append(duplicate(f"{field}.name", name))
                seen.add(name)
    errs += _validate_spec_fields(spec, path)
    errs += _validate_host_ports(spec, path)
    errs += validate_affinity(spec.get("affinity"), f"{path}.affinity")
    constraints = as_list(
        spec, "topologySpreadConstraints", f"{path}.topologySpreadConstraints", errs
    )
    errs += validate_topology_spread(constraints, f"{path}.topologySpreadConstraints")
    errs += _validate_security_context(spec.get("securityContext"), f"{path}.securityContext")
    return errs


def _validate_spec_fields(spec: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, allowed in (("restartPolicy", RESTART_POLICIES), ("dnsPolicy", DNS_POLICIES)):
        value = spec.get(key)
        if value is None:
            errs.append(required(f"{path}.{key}"))
        elif value not in allowed:
            errs.append(not_supported(f"{path}.{key}", value, allowed))
    errs += validate_labels(
        as_str_map(spec, "nodeSelector", f"{path}.nodeSelector", errs), f"{path}.nodeSelector"
    )
    for key, rule in (
        ("nodeName", dns1123_subdomain),
        ("priorityClassName", dns1123_subdomain),
        ("hostname", dns1123_label),
        ("subdomain", dns1123_label),
    ):
        value = spec.get(key)
        if value is not None and not isinstance(value, str):
            errs.append(type_invalid(f"{path}.{key}", value, "must be a string"))
        elif value:
            errs += check(f"{path}.{key}", value, rule)
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or not 0 < deadline < 2**31):
        errs.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                "must be between 1 and 2147483647, inclusive",
            )
        )
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        errs.append(
            type_invalid(f"{path}.terminationGracePeriodSeconds", grace, "must be an integer")
        )
    tolerations = as_list(spec, "tolerations", f"{path}.tolerations", errs)
    for i, toleration in enumerate(tolerations):
        errs += _validate_toleration(toleration, f"{path}.tolerations[{i}]")
    return errs


def _validate_toleration(toleration: Any, field: str) -> list[FieldError]:
    if not isinstance(toleration, dict):
        return [type_invalid(field, toleration, "must be an object")]
    errs: list[FieldError] = []
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    effect = toleration.get("effect") or ""
    if key:
        errs += check(f"{field}.key", key, qualified_name)
    elif operator != "Exists":
        errs.append(
            invalid(
                f"{field}.operator",
                operator,
                "operator must be Exists when `key` is empty, which means "
                '"match all values and all keys"',
            )
        )
    if operator not in TOLERATION_OPERATORS:
        errs.append(not_supported(f"{field}.operator", operator, TOLERATION_OPERATORS))
    elif operator == "Exists" and toleration.get("value"):
        errs.append(
            invalid(
                f"{field}.operator",
                toleration["value"],
                "value must be empty when `operator` is 'Exists'",
            )
        )
    if effect and effect not in TAINT_EFFECTS:
        errs.append(not_supported(f"{field}.effect", effect, TAINT_EFFECTS))
    if toleration.get("tolerationSeconds") is not None and effect != "NoExecute":
        errs.append(
            invalid(
                f"{field}.effect",
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            )
        )
    return errs


def _label_name(name: Any, field: str) -> list[FieldError]:
    """Return the errors of a required name that must be a DNS-1123 label (volumes, containers)."""
    if not name:
        return [required(field)]
    if not isinstance(name, str):
        return [type_invalid(field, name, "must be a string")]
    return check(field, name, dns1123_label)


def _validate_volumes(volumes: list[Any], path: str) -> tuple[set[str], list[FieldError]]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for field, volume in object_items(volumes, f"{path}.volumes", errs):
        name = volume.get("name")
        errs += _label_name(name, f"{field}.name")
        if name and isinstance(name, str):
            if name in names:
                errs.append(duplicate(f"{field}.name", name))
            names.add(name)
        sources = [k for k in volume if k != "name"]
        if not sources:
            errs.append(required(field, "must specify a volume type"))
        elif len(sources) > 1:
            errs.append(
                forbidden(f"{field}.{sources[1]}", "may not specify more than 1 volume type")
            )
        else:
            errs += validate_volume_source(volume, field)
    return names, errs


def _validate_container(
    container: Obj, field: str, volumes: set[str], init: bool
) -> list[FieldError]:
    errs = _label_name(container.get("name"), f"{field}.name")
    image = container.get("image")
    if not image:
        errs.append(required(f"{field}.image"))
    elif not isinstance(image, str):
        errs.append(type_invalid(f"{field}.image", image, "must be a string"))
    elif image != image.strip():
        errs.append(
            invalid(f"{field}.image", image, "must not have leading or trailing whitespace")
        )
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        errs.append(not_supported(f"{field}.imagePullPolicy", policy, PULL_POLICIES))
    for key in ("command", "args"):
        for j, item in enumerate(as_list(container, key, f"{field}.{key}", errs)):
            if not isinstance(item, str):
                errs.append(type_invalid(f"{field}.{key}[{j}]", item, "must be a string"))
    errs += _validate_ports(as_list(container, "ports", f"{field}.ports", errs), f"{field}.ports")
    errs += _validate_env(as_list(container, "env", f"{field}.env", errs), f"{field}.env")
    errs += _validate_resources(
        as_dict(container, "resources", f"{field}.resources", errs), f"{field}.resources"
    )
    errs += _validate_mounts(
        as_list(container, "volumeMounts", f"{field}.volumeMounts", errs),
        f"{field}.volumeMounts",
        volumes,
    )
    errs += _validate_probes(container, field, init)
    errs += _validate_security_context(container.get("securityContext"), f"{field}.securityContext")
    errs += _validate_lifecycle(container.get("lifecycle"), f"{field}.lifecycle")
    return errs


def _validate_ports(ports: list[Any], field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for item, port in object_items(ports, field, errs):
        errs += port_number(f"{item}.containerPort", port.get("containerPort"))
        errs += port_number(f"{item}.hostPort", port.get("hostPort"), required_=False)
        protocol = port.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            errs.append(not_supported(f"{item}.protocol", protocol, PROTOCOLS))
        name = port.get("name")
        if name:
            errs += (
                check(f"{item}.name", name, port_name)
                if isinstance(name, str)
                else [type_invalid(f"{item}.name", name, "must be a string")]
            )
            if hashable(name) in names:
                errs.append(duplicate(f"{item}.name", name))
            names.add(hashable(name))
    return errs


_VALUE_FROM = ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")


def _validate_env(env: list[Any], field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for item, var in object_items(env, field, errs):
        name = var.get("name")
        if not name:
            errs.append(required(f"{item}.name"))
        elif isinstance(name, str):
            errs += check(f"{item}.name", name, env_var_name)
        value_from = var.get("valueFrom")
        if value_from is None:
            continue
        if var.get("value"):
            errs.append(
                invalid(f"{item}.valueFrom", "", "may not be specified when `value` is not empty")
            )
        sources = [k for k in _VALUE_FROM if isinstance(value_from, dict) and k in value_from]
        if not sources:
            errs.append(
                invalid(
                    f"{item}.valueFrom",
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, "
                    "`configMapKeyRef` or `secretKeyRef`",
                )
            )
        elif len(sources) > 1:
            errs.append(
                invalid(
                    f"{item}.valueFrom", "", "may not have more than one field specified at a time"
                )
            )
        else:
            errs += _validate_value_from(value_from, sources[0], f"{item}.valueFrom")
    return errs


def _validate_value_from(value_from: Obj, source: str, field: str) -> list[FieldError]:
    if source in ("configMapKeyRef", "secretKeyRef"):
        return key_reference(value_from[source], f"{field}.{source}")
    return object_reference(value_from, field, ENV_FIELD_PATHS)


def _resource_name_ok(name: str) -> bool:
    return (
        name in _STANDARD_RESOURCES
        or name.startswith("hugepages-")
        or ("/" in name and not qualified_name(name))
    )


def _validate_resources(resources: Obj, field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Fraction]] = {}
    for kind in ("limits", "requests"):
        parsed[kind] = {}
        for name, value in as_dict(resources, kind, f"{field}.{kind}", errs).items():
            item = f"{field}.{kind}[{name}]"
            if not _resource_name_ok(name):
                errs.append(
                    invalid(item, name, "must be a standard resource type or fully qualified")
                )
                continue
            try:
                amount = parse_quantity(value)
            except QuantityError as exc:
                errs.append(invalid(item, value, str(exc)))
                continue
            if amount < 0:
                errs.append(invalid(item, value, "must be greater than or equal to 0"))
            parsed[kind][name] = amount
    for name, request in parsed["requests"].items():
        limit = parsed["limits"].get(name)
        if limit is not None and request > limit:
            raw_limit = resources["limits"][name]
            errs.append(
                invalid(
                    f"{field}.requests",
                    str(resources["requests"][name]),
                    f"must be less than or equal to {name} limit of {raw_limit}",
                )
            )
    return errs


def _validate_mounts(mounts: list[Any], field: str, volumes: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    paths: set[str] = set()
    for item, mount in object_items(mounts, field, errs):
        name = mount.get("name")
        if not name:
            errs.append(required(f"{item}.name"))
        elif hashable(name) not in volumes:
            errs.append(not_found(f"{item}.name", name))
        path = mount.get("mountPath")
        if not path:
            errs.append(required(f"{item}.mountPath"))
        elif hashable(path) in paths:
            errs.append(invalid(f"{item}.mountPath", path, "must be unique"))
        else:
            paths.add(hashable(path))
        if mount.get("subPath"):
            errs += relative_path(f"{item}.subPath", mount["subPath"])
    return errs


def _validate_probes(container: Obj, field: str, init: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    sidecar = container.get("restartPolicy") == "Always"
    if init and container.get("restartPolicy") not in (None, "Always"):
        errs.append(not_supported(f"{field}.restartPolicy", container["restartPolicy"], ["Always"]))
    if not init and container.get("restartPolicy") is not None:
        errs.append(forbidden(f"{field}.restartPolicy", "may not be set for non-init containers"))
    for probe_name in _PROBES:
        probe = container.get(probe_name)
        if probe is None:
            continue
        item = f"{field}.{probe_name}"
        if init and not sidecar:
            errs.append(
                forbidden(item, "may not be set for init containers without restartPolicy=Always")
            )
            continue
        if not isinstance(probe, dict):
            errs.append(type_invalid(item, probe, "must be an object"))
            continue
        errs += _validate_probe(probe, item, probe_name)
    return errs


def _validate_probe(probe: Obj, field: str, probe_name: str) -> list[FieldError]:
    errs: list[FieldError] = []
    handlers = [h for h in _HANDLERS if h in probe]
    if not handlers:
        errs.append(required(field, "must specify a handler type"))
    for extra in handlers[1:]:
        errs.append(forbidden(f"{field}.{extra}", "may not specify more than 1 handler type"))
    for key in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    ):
        non_negative(f"{field}.{key}", probe.get(key), errs)
    success = probe.get("successThreshold")
    if probe_name != "readinessProbe" and isinstance(success, int) and success != 1:
        errs.append(invalid(f"{field}.successThreshold", success, "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        errs += int_or_port_name(f"{field}.httpGet.port", http.get("port"))
        scheme = http.get("scheme")
        if scheme is not None and scheme not in ("HTTP", "HTTPS"):
            errs.append(not_supported(f"{field}.httpGet.scheme", scheme, ("HTTP", "HTTPS")))
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += int_or_port_name(f"{field}.tcpSocket.port", tcp.get("port"))
    exec_ = probe.get("exec")
    if isinstance(exec_, dict) and not exec_.get("command"):
        errs.append(required(f"{field}.exec.command"))
    return errs


# --- update --------------------------------------------------------------------------------

_UPDATE_FORBIDDEN = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Pod: only images, deadline, tolerations may change."""
    errs = validate_metadata_update(new, old)
    if is_terminal(old) and pod_phase(new) != pod_phase(old):
        errs.append(
            forbidden(
                "status.phase",
                f"a {pod_phase(old)} pod may not become "
                f"{pod_phase(new)}: terminal phases are final",
            )
        )
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return errs
    changed = sorted(
        k for k in set(new_spec) | set(old_spec) if _spec_key_changed(k, new_spec, old_spec)
    )
    if changed:
        errs.append(forbidden("spec", f"{_UPDATE_FORBIDDEN} (changed: {', '.join(changed)})"))
    return errs


def _spec_key_changed(key: str, new_spec: Obj, old_spec: Obj) -> bool:
    """Tell whether an update changes a spec field in a way Kubernetes forbids."""
    new, old = new_spec.get(key), old_spec.get(key)
    if new == old or key == "activeDeadlineSeconds":
        return False
    if key == "tolerations":
        return not isinstance(new, list) or any(t not in new for t in list_of(old))
    if key in ("containers", "initContainers"):
        if not isinstance(new, list) or not isinstance(old, list) or len(new) != len(old):
            return True
        return any(_without_image(n) != _without_image(o) for n, o in zip(new, old, strict=True))
    return True


def _without_image(container: Any) -> Any:
    if not isinstance(container, dict):
        return container
    return {k: v for k, v in container.items() if k != "image"}


# --- status and helpers --------------------------------------------------------------------


def initial_status(pod: Obj) -> Obj | None:
    """Return the status a new Pod starts with: Pending, with its QoS class."""
    return {"phase": "Pending", "qosClass": qos_class(pod)}


def _containers(pod: Obj, key: str) -> list[Obj]:
    spec = pod.get("spec")
    return _dicts(spec.get(key)) if isinstance(spec, dict) else []


def _resource_map(container: Obj, kind: str) -> dict[str, Any]:
    resources = container.get("resources")
    value = resources.get(kind) if isinstance(resources, dict) else None
    return value if isinstance(value, dict) else {}


def _amount(name: str, value: Any, strict: bool = False) -> int:
    try:
        return cpu_millis(value) if name == "cpu" else to_int(value)
    except QuantityError as err:
        if strict:
            raise QuantityError(f"{name}: {err}") from None
        return 0


def _add(total: dict[str, int], amounts: dict[str, int]) -> None:
    for name, value in amounts.items():
        total[name] = total.get(name, 0) + value


def _max_into(total: dict[str, int], amounts: dict[str, int]) -> None:
    for name, value in amounts.items():
        total[name] = max(total.get(name, 0), value)


def container_requests(container: Obj) -> dict[str, int]:
    """Return one container's requests (cpu in millicores, others in whole units)."""
    return _container_amounts(container, "requests")


def _container_amounts(container: Obj, kind: str, strict: bool = False) -> dict[str, int]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        return {}
    values = resources.get(kind)
    values = values if isinstance(values, dict) else {}
    limits = resources.get("limits") if kind == "requests" else None
    if isinstance(limits, dict) and limits:
        values = {**limits, **values}
    return {n: _amount(n, v, strict) for n, v in values.items()}


def pod_requests(pod: Obj, *, strict: bool = False) -> dict[str, int]:
    """Return a pod's effective requests as the scheduler counts them (cpu in millicores).

    A malformed quantity counts 0, or with strict raises QuantityError naming the resource.
    """
    return _effective(pod, "requests", strict)


def pod_limits(pod: Obj) -> dict[str, int]:
    """Return a pod's effective limits, computed like its requests (only resources limited)."""
    return _effective(pod, "limits")


def _effective(pod: Obj, kind: str, strict: bool = False) -> dict[str, int]:
    # Worked example: containers 100m + 200m, sidecar 50m, then an init container of 1 cpu:
    # apps + sidecars = 350m, init step = 50m + 1000m = 1050m, so the pod needs 1050m.
    total: dict[str, int] = {}
    for container in _containers(pod, "containers"):
        _add(total, _container_amounts(container, kind, strict))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in _containers(pod, "initContainers"):
        amounts = _container_amounts(container, kind, strict)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, amounts)
            _max_into(init_peak, sidecars)
        else:
            step = dict(sidecars)
            _add(step, amounts)
            _max_into(init_peak, step)
    _add(total, sidecars)
    _max_into(total, init_peak)
    overhead = dict_of(pod.get("spec")).get("overhead")
    if isinstance(overhead, dict):
        _add(total, {n: _amount(n, v, strict) for n, v in overhead.items()})
    return total


def qos_class(pod: Obj) -> str:
    """Return the pod's QoS class: Guaranteed, Burstable or BestEffort."""
    requests: dict[str, Fraction] = {}
    limits: dict[str, Fraction] = {}
    guaranteed = True
    for container in _containers(pod, "initContainers") + _containers(pod, "containers"):
        # A missing request defaults to the limit, so a pod not yet defaulted classifies the same.
        container_limits = _resource_map(container, "limits")
        container_requests = {**container_limits, **_resource_map(container, "requests")}
        for values, into in ((container_requests, requests), (container_limits, limits)):
            for name, value in values.items():
                if name not in ("cpu", "memory"):
                    continue
                amount = _safe_quantity(value)
                if amount > 0:
                    into[name] = into.get(name, Fraction(0)) + amount
        found = {
            n
            for n, v in _resource_map(container, "limits").items()
            if n in ("cpu", "memory") and _safe_quantity(v) > 0
        }
        guaranteed = guaranteed and found == {"cpu", "memory"}
    if not requests and not limits:
        return "BestEffort"
    same = requests.keys() == limits.keys() and all(requests[n] == limits[n] for n in requests)
    return "Guaranteed" if guaranteed and same else "Burstable"


def _safe_quantity(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except QuantityError:
        return Fraction(0)


def pod_phase(pod: Obj) -> str:
    """Return status.phase, "Pending" when not yet reported."""
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    return phase if isinstance(phase, str) and phase else "Pending"


def _condition_true(pod: Obj, kind: str) -> bool:
    status = pod.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return any(c.get("type") == kind and c.get("status") == "True" for c in _dicts(conditions))


def is_pod_ready(pod: Obj) -> bool:
    """Return True if the pod's Ready condition is True."""
    return _condition_true(pod, "Ready")


def is_terminal(pod: Obj) -> bool:
    """Return True if the pod has Succeeded or Failed."""
    return pod_phase(pod) in ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodSummary:
    """What `kubectl get pods` shows: READY x/y, STATUS reason, RESTARTS and when last."""

    ready: int
    total: int
    reason: str
    restarts: int
    last_restart: datetime | None


def _later(current: datetime | None, state: Any) -> datetime | None:
    terminated = state.get("terminated") if isinstance(state, dict) else None
    if not isinstance(terminated, dict):
        return current
    finished = parse_time(terminated.get("finishedAt"))
    if finished is None or (current is not None and current >= finished):
        return current
    return finished


def _terminated_reason(terminated: Obj, prefix: str) -> str:
    if terminated.get("reason"):
        return prefix + str(terminated["reason"])
    if terminated.get("signal"):
        return f"{prefix}Signal:{terminated['signal']}"
    return f"{prefix}ExitCode:{terminated.get('exitCode', 0)}"


@dataclass
class _Tally:
    """Running totals while walking container statuses, as kubectl's printer keeps them."""

    reason: str
    ready: int = 0
    restarts: int = 0
    last: datetime | None = None
    sidecar_restarts: int = 0
    last_sidecar: datetime | None = None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _state(status: Obj, key: str) -> Obj | None:
    state = dict_of(status.get("state")).get(key)
    return state if isinstance(state, dict) else None


def pod_summary(pod: Obj) -> PodSummary:
    """Compute kubectl's pod STATUS, READY and RESTARTS the way its printer does."""
    status = dict_of(pod.get("status"))
    inits = _containers(pod, "initContainers")
    sidecars = {hashable(c.get("name")) for c in inits if c.get("restartPolicy") == "Always"}
    total = len(_containers(pod, "containers")) + len(sidecars)
    tally = _Tally(str(status.get("reason") or status.get("phase") or ""))
    for condition in _dicts(status.get("conditions")):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            tally.reason = "SchedulingGated"
    initializing = _walk_init_statuses(status, sidecars, len(inits), tally)
    if not initializing or _condition_true(pod, "Initialized"):
        _walk_container_statuses(pod, status, tally)
    deleting = dict_of(pod.get("metadata")).get("deletionTimestamp")
    if deleting and status.get("reason") == "NodeLost":
        tally.reason = "Unknown"
    elif deleting and not is_terminal(pod):
        tally.reason = "Terminating"
    return PodSummary(tally.ready, total, tally.reason, tally.restarts, tally.last)


def _walk_init_statuses(status: Obj, sidecars: set[Any], count: int, tally: _Tally) -> bool:
    """Fold init container statuses into the tally; return True while the pod initialises."""
    for i, cs in enumerate(_dicts(status.get("initContainerStatuses"))):
        tally.restarts += _count(cs.get("restartCount"))
        tally.last = _later(tally.last, cs.get("lastState"))
        is_sidecar = hashable(cs.get("name")) in sidecars
        if is_sidecar:
            tally.sidecar_restarts += _count(cs.get("restartCount"))
            tally.last_sidecar = _later(tally.last_sidecar, cs.get("lastState"))
        terminated, waiting = _state(cs, "terminated"), _state(cs, "waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if is_sidecar and cs.get("started") is True:
            tally.ready += cs.get("ready") is True
            continue
        if terminated is not None:
            tally.reason = _terminated_reason(terminated, "Init:")
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            tally.reason = f"Init:{waiting['reason']}"
        else:
            tally.reason = f"Init:{i}/{count}"
        return True
    return False


def _walk_container_statuses(pod: Obj, status: Obj, tally: _Tally) -> None:
    """Fold app container statuses (last first, as kubectl) into the tally."""
    tally.restarts, tally.last = tally.sidecar_restarts, tally.last_sidecar
    has_running = False
    for cs in reversed(_dicts(status.get("containerStatuses"))):
        tally.restarts += _count(cs.get("restartCount"))
        tally.last = _later(tally.last, cs.get("lastState"))
        waiting, terminated = _state(cs, "waiting"), _state(cs, "terminated")
        if waiting is not None and waiting.get("reason"):
            tally.reason = str(waiting["reason"])
        elif terminated is not None:
            tally.reason = _terminated_reason(terminated, "")
        elif cs.get("ready") is True and _state(cs, "running") is not None:
            has_running = True
            tally.ready += 1
    if tally.reason == "Completed" and has_running:
        tally.reason = "Running" if is_pod_ready(pod) else "NotReady"


# --- security context, lifecycle, host ports -----------------------------------------------

_ID_FIELDS = ("runAsUser", "runAsGroup", "fsGroup")
_BOOL_FIELDS = ("privileged", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "runAsNonRoot")


def _optional_object(value: Any, field: str) -> list[FieldError] | None:
    """Return the errors that end an optional object's checks early, or None to go on.

    Absent (None) has no errors; anything but an object is one type error.
    """
    if value is None:
        return []
    if not isinstance(value, dict):
        return [type_invalid(field, value, "must be an object")]
    return None


def _validate_security_context(context: Any, field: str) -> list[FieldError]:
    if (early := _optional_object(context, field)) is not None:
        return early
    errs: list[FieldError] = []
    for key in _ID_FIELDS:
        non_negative(f"{field}.{key}", context.get(key), errs)
    for i, group in enumerate(
        as_list(context, "supplementalGroups", f"{field}.supplementalGroups", errs)
    ):
        non_negative(f"{field}.supplementalGroups[{i}]", group, errs)
    for key in _BOOL_FIELDS:
        value = context.get(key)
        if value is not None and not isinstance(value, bool):
            errs.append(type_invalid(f"{field}.{key}", value, "must be a boolean"))
    if context.get("privileged") is True and context.get("allowPrivilegeEscalation") is False:
        errs.append(
            invalid(
                f"{field}.allowPrivilegeEscalation",
                False,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            )
        )
    capabilities = context.get("capabilities")
    if isinstance(capabilities, dict):
        for key in ("add", "drop"):
            for i, cap in enumerate(
                as_list(capabilities, key, f"{field}.capabilities.{key}", errs)
            ):
                if not isinstance(cap, str) or not cap:
                    errs.append(
                        invalid(
                            f"{field}.capabilities.{key}[{i}]", cap, "must be a capability name"
                        )
                    )
    return errs


_LIFECYCLE_HANDLERS = ("exec", "httpGet", "tcpSocket", "sleep")


def _validate_lifecycle(lifecycle: Any, field: str) -> list[FieldError]:
    if (early := _optional_object(lifecycle, field)) is not None:
        return early
    errs: list[FieldError] = []
    for hook in ("postStart", "preStop"):
        handler = lifecycle.get(hook)
        if handler is None:
            continue
        item = f"{field}.{hook}"
        kinds = [k for k in _LIFECYCLE_HANDLERS if isinstance(handler, dict) and k in handler]
        if not kinds:
            errs.append(required(item, "must specify a handler type"))
            continue
        for extra in kinds[1:]:
            errs.append(forbidden(f"{item}.{extra}", "may not specify more than 1 handler type"))
        sleep = handler.get("sleep")
        if isinstance(sleep, dict):
            seconds = sleep.get("seconds")
            if not isinstance(seconds, int) or seconds <= 0:
                errs.append(invalid(f"{item}.sleep.seconds", seconds, "must be greater than 0"))
    return errs


def _validate_host_ports(spec: Obj, path: str) -> list[FieldError]:
    """Refuse two containers asking for the same hostPort and protocol (on the same hostIP)."""
    errs: list[FieldError] = []
    seen: set[tuple[Any, Any, Any]] = set()
    for key in ("initContainers", "containers"):
        for i, container in enumerate(_dicts(spec.get(key))):
            for j, port in enumerate(_dicts(container.get("ports"))):
                host_port = port.get("hostPort")
                if not host_port:
                    continue
                protocol = port.get("protocol", "TCP")
                ident = (host_port, protocol, port.get("hostIP", ""))
                if hashable(ident) in seen:
                    errs.append(
                        duplicate(
                            f"{path}.{key}[{i}].ports[{j}].hostPort", f"{host_port}/{protocol}"
                        )
                    )
                seen.add(hashable(ident))
    return errs
