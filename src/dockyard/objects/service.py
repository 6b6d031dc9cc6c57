"""Service (v1): defaults, validation, update rules and pure allocation helpers.

Defaults as Kubernetes: type ClusterIP, sessionAffinity None, ports protocol TCP and targetPort
= port, internalTrafficPolicy Cluster, externalTrafficPolicy Cluster for NodePort and
LoadBalancer, allocateLoadBalancerNodePorts true for LoadBalancer, ipFamilyPolicy SingleStack
and ipFamilies ["IPv4"], clusterIPs mirroring clusterIP.

The cluster IP and node ports are allocated by the api server (it alone sees the other
services); ``needs_cluster_ip``/``assign_cluster_ip``, ``ports_needing_node_ports`` and
``next_free_ip``/``next_free_node_port`` are the pure halves of that.
``carry_over`` keeps an allocated clusterIP and nodePorts when an update omits them, as
Kubernetes does.

Invariants: service names are DNS-1035 labels; clusterIP never changes once set (except by
becoming ExternalName); nodePorts lie in 30000-32767.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    as_list,
    as_str_map,
    check,
    dict_of,
    dns1035_label,
    dns1123_label,
    dns1123_subdomain,
    duplicate,
    forbidden,
    hashable,
    int_or_port_name,
    invalid,
    list_of,
    not_supported,
    port_number,
    required,
    type_invalid,
    validate_labels,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
SESSION_AFFINITIES = ("ClientIP", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
TRAFFIC_POLICIES = ("Cluster", "Local")
NODE_PORT_RANGE = (30000, 32767)


def apply_defaults(service: Obj) -> None:
    """Fill the fields Kubernetes defaults on a Service."""
    spec = service.get("spec")
    if not isinstance(spec, dict):
        return
    kind = set_default(spec, "type", "ClusterIP")
    set_default(spec, "sessionAffinity", "None")
    for port in list_of(spec.get("ports")):
        if isinstance(port, dict):
            set_default(port, "protocol", "TCP")
            if "port" in port:
                set_default(port, "targetPort", port["port"])
    if kind == "ExternalName":
        return
    set_default(spec, "internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        set_default(spec, "externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        set_default(spec, "allocateLoadBalancerNodePorts", True)
    set_default(spec, "ipFamilyPolicy", "SingleStack")
    set_default(spec, "ipFamilies", ["IPv4"])
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and "clusterIPs" not in spec:
        spec["clusterIPs"] = [cluster_ip]


def validate(service: Obj) -> list[FieldError]:
    """Return every problem with a Service."""
    errs = validate_metadata(service, namespaced=True, name_rule=dns1035_label)
    spec = service.get("spec")
    if not isinstance(spec, dict):
        return [
            *errs,
            required("spec") if spec is None else type_invalid("spec", spec, "must be an object"),
        ]
    kind = spec.get("type")
    if kind not in SERVICE_TYPES:
        errs.append(not_supported("spec.type", kind, SERVICE_TYPES))
    affinity = spec.get("sessionAffinity")
    if affinity is not None and affinity not in SESSION_AFFINITIES:
        errs.append(not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES))
    for key in ("internalTrafficPolicy", "externalTrafficPolicy"):
        value = spec.get(key)
        if value is not None and value not in TRAFFIC_POLICIES:
            errs.append(not_supported(f"spec.{key}", value, TRAFFIC_POLICIES))
    selector = as_str_map(spec, "selector", "spec.selector", errs)
    errs += validate_labels(selector, "spec.selector")
    errs += _validate_cluster_ip(spec)
    if kind == "ExternalName":
        name = spec.get("externalName")
        errs += (
            check("spec.externalName", name, dns1123_subdomain)
            if name
            else [required("spec.externalName")]
        )
    headless = spec.get("clusterIP") == "None"
    ports = as_list(spec, "ports", "spec.ports", errs)
    if not ports and kind != "ExternalName" and not headless:
        errs.append(required("spec.ports"))
    return errs + _validate_ports(ports, str(kind))


def _validate_cluster_ip(spec: Obj) -> list[FieldError]:
    value = spec.get("clusterIP")
    kind = spec.get("type")
    if value and kind == "ExternalName":
        return [forbidden("spec.clusterIP", "may not be set for ExternalName services")]
    if value == "None" and kind in ("NodePort", "LoadBalancer"):
        return [invalid("spec.clusterIP", value, f"may not be set to 'None' for {kind} services")]
    if value in (None, "", "None"):
        return []
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [
            invalid(
                "spec.clusterIP",
                value,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )
        ]
    return []


def _validate_ports(ports: list[Any], kind: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    node_ports: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        field = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            errs.append(type_invalid(field, port, "must be an object"))
            continue
        name = port.get("name")
        if not name:
            if len(ports) > 1:
                errs.append(required(f"{field}.name"))
        else:
            errs += check(f"{field}.name", name, dns1123_label)
            if hashable(name) in names:
                errs.append(duplicate(f"{field}.name", name))
            names.add(hashable(name))
        errs += port_number(f"{field}.port", port.get("port"))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            errs.append(not_supported(f"{field}.protocol", protocol, PROTOCOLS))
        if "targetPort" in port:
            errs += int_or_port_name(f"{field}.targetPort", port["targetPort"])
        key = (port.get("port"), protocol)
        if hashable(key) in seen:
            errs.append(duplicate(field, port))
        seen.add(hashable(key))
        errs += _validate_node_port(port, field, kind, node_ports)
    return errs


def _validate_node_port(
    port: Obj, field: str, kind: str, used: set[tuple[Any, Any]]
) -> list[FieldError]:
    node_port = port.get("nodePort")
    if not node_port:
        return []
    if kind not in ("NodePort", "LoadBalancer"):
        return [forbidden(f"{field}.nodePort", f"may not be used when `type` is '{kind}'")]
    low, high = NODE_PORT_RANGE
    if not isinstance(node_port, int) or not low <= node_port <= high:
        return [
            invalid(
                f"{field}.nodePort",
                node_port,
                "provided port is not in the valid range. "
                f"The range of valid ports is {low}-{high}",
            )
        ]
    key = (node_port, port.get("protocol"))
    if hashable(key) in used:
        return [duplicate(f"{field}.nodePort", node_port)]
    used.add(hashable(key))
    return []


def carry_over(new: Obj, old: Obj) -> None:
    """Keep the allocated clusterIP(s) and nodePorts when an update leaves them out."""
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return
    if new_spec.get("type", "ClusterIP") == "ExternalName":
        return
    if not new_spec.get("clusterIP") and old_spec.get("clusterIP"):
        new_spec["clusterIP"] = old_spec["clusterIP"]
        new_spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
    if new_spec.get("type") not in ("NodePort", "LoadBalancer"):
        return
    old_ports = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
        for p in list_of(old_spec.get("ports"))
        if isinstance(p, dict)
    }
    for port in list_of(new_spec.get("ports")):
        if isinstance(port, dict) and not port.get("nodePort"):
            previous = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
            if previous:
                port["nodePort"] = previous


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to a Service (an allocated clusterIP never changes)."""
    errs = validate_metadata_update(new, old)
    new_spec = new.get("spec") if isinstance(new.get("spec"), dict) else {}
    old_spec = old.get("spec") if isinstance(old.get("spec"), dict) else {}
    assert isinstance(new_spec, dict) and isinstance(old_spec, dict)
    old_ip = old_spec.get("clusterIP")
    if old_ip and new_spec.get("type") != "ExternalName" and new_spec.get("clusterIP") != old_ip:
        errs.append(
            invalid("spec.clusterIPs[0]", new_spec.get("clusterIP"), "may not change once set")
        )
    return errs


def needs_cluster_ip(service: Obj) -> bool:
    """Tell whether the server must allocate a clusterIP (not headless, not ExternalName)."""
    spec = dict_of(service.get("spec"))
    return spec.get("type", "ClusterIP") != "ExternalName" and not spec.get("clusterIP")


def assign_cluster_ip(service: Obj, ip: str) -> None:
    """Record an allocated clusterIP in spec.clusterIP and spec.clusterIPs."""
    spec = service.setdefault("spec", {})
    spec["clusterIP"] = ip
    spec["clusterIPs"] = [ip]


def ports_needing_node_ports(service: Obj) -> list[Obj]:
    """Return the ports of a NodePort/LoadBalancer service that still need a nodePort."""
    spec = dict_of(service.get("spec"))
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        return []
    if spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False:
        return []
    return [p for p in list_of(spec.get("ports")) if isinstance(p, dict) and not p.get("nodePort")]


def next_free_ip(cidr: str, used: Iterable[str]) -> str | None:
    """Return the lowest free host address of a CIDR (skipping the network's first address)."""
    network = ipaddress.ip_network(cidr, strict=False)
    taken = set(used)
    for index, address in enumerate(network.hosts()):
        if index == 0:
            continue  # reserved for the "kubernetes" service, as Kubernetes reserves it
        if str(address) not in taken:
            return str(address)
    return None


def next_free_node_port(
    used: Iterable[int], port_range: tuple[int, int] = NODE_PORT_RANGE
) -> int | None:
    """Return the lowest free node port in the range, or None when all are taken."""
    taken = set(used)
    return next((p for p in range(port_range[0], port_range[1] + 1) if p not in taken), None)
