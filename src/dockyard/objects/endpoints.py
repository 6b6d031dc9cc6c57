"""Endpoints (v1): defaults (ports protocol TCP) and validation of subsets.

Invariants: every address is a valid IP; every port is 1-65535 with a supported protocol;
port names are unique within a subset and required when a subset has several ports.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from dockyard.objects.meta import set_default
from dockyard.objects.validation import (
    FieldError,
    as_list,
    check,
    dns1123_label,
    duplicate,
    hashable,
    invalid,
    list_of,
    not_supported,
    port_number,
    required,
    type_invalid,
    validate_metadata,
    validate_metadata_update,
)

Obj = dict[str, Any]

PROTOCOLS = ("SCTP", "TCP", "UDP")


def apply_defaults(endpoints: Obj) -> None:
    """Default every subset port's protocol to TCP."""
    for subset in list_of(endpoints.get("subsets")):
        if isinstance(subset, dict):
            for port in list_of(subset.get("ports")):
                if isinstance(port, dict):
                    set_default(port, "protocol", "TCP")


def validate(endpoints: Obj) -> list[FieldError]:
    """Return every problem with an Endpoints object."""
    errs = validate_metadata(endpoints, namespaced=True)
    for i, subset in enumerate(as_list(endpoints, "subsets", "subsets", errs)):
        field = f"subsets[{i}]"
        if not isinstance(subset, dict):
            errs.append(type_invalid(field, subset, "must be an object"))
            continue
        for key in ("addresses", "notReadyAddresses"):
            for j, address in enumerate(as_list(subset, key, f"{field}.{key}", errs)):
                errs += _validate_address(address, f"{field}.{key}[{j}]")
        errs += _validate_ports(as_list(subset, "ports", f"{field}.ports", errs), f"{field}.ports")
    return errs


def _validate_address(address: Any, field: str) -> list[FieldError]:
    if not isinstance(address, dict):
        return [type_invalid(field, address, "must be an object")]
    ip = address.get("ip")
    if not ip:
        return [required(f"{field}.ip")]
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return [
            invalid(
                f"{field}.ip", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            )
        ]
    return []


def _validate_ports(ports: list[Any], field: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        item = f"{field}[{i}]"
        if not isinstance(port, dict):
            errs.append(type_invalid(item, port, "must be an object"))
            continue
        name = port.get("name")
        if name:
            errs += check(f"{item}.name", name, dns1123_label)
            if hashable(name) in names:
                errs.append(duplicate(f"{item}.name", name))
            names.add(hashable(name))
        elif len(ports) > 1:
            errs.append(required(f"{item}.name"))
        errs += port_number(f"{item}.port", port.get("port"))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            errs.append(not_supported(f"{item}.protocol", protocol, PROTOCOLS))
    return errs


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Return what an update may not do to an Endpoints."""
    return validate_metadata_update(new, old)
