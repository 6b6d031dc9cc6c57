"""ClusterIP and NodePort allocation for Services (admission on create).

Each allocated address or node port is a claim key in the store
(``/dockyard/allocations/serviceips/<ip>``, ``/dockyard/allocations/nodeports/<port>``) whose
value names the service that holds it. Claims are made with the store's create, which is
atomic, so two concurrent creates never get the same address, with one api server or many
over etcd.

A claim is released lazily, the way Kubernetes' repair loop does it: a claim older than
``CLAIM_GRACE_SECONDS`` whose service no longer exists (deleted directly, or with its
namespace) or no longer holds that address is stale. Allocation sweeps stale claims away (at
most every ``SWEEP_SECONDS``, with one list of the services), and a create that asks for a
stale address takes it over with a compare-and-swap. Young claims are always honoured, because
their create may still be in flight. Updates keep what was allocated
(``objects.service.carry_over``).

``configure(storage, cidr, node_ports)`` sets the ranges of one api server; without it the
Kubernetes defaults (10.96.0.0/16, 30000-32767) apply.

Invariants: an address handed out lies inside the service CIDR and is neither its network
address nor its first host (reserved for the ``kubernetes`` service); no two live services
share an address or a node port.
"""

from __future__ import annotations

import ipaddress
import socket
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from dockyard.api import status
from dockyard.objects import service as svc
from dockyard.objects.resources import ResourceInfo, lookup
from dockyard.objects.validation import list_of
from dockyard.store.base import AlreadyExistsError, ConflictError, NotFoundError

if TYPE_CHECKING:
    from dockyard.api.storage import ResourceStorage

DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
CLAIM_GRACE_SECONDS = 60.0
SWEEP_SECONDS = 10.0  # at most one sweep of stale claims per this many seconds
IP_PREFIX = "/dockyard/allocations/serviceips/"
PORT_PREFIX = "/dockyard/allocations/nodeports/"
_SERVICES = lookup("", "v1", "services")
Obj = dict[str, Any]


@dataclass(frozen=True)
class ServiceRanges:
    """The service CIDR and node port range one api server allocates from."""

    cidr: str = DEFAULT_SERVICE_CIDR
    node_ports: tuple[int, int] = svc.NODE_PORT_RANGE


_RANGES: weakref.WeakKeyDictionary[Any, ServiceRanges] = weakref.WeakKeyDictionary()
_SWEPT: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def configure(storage: ResourceStorage, cidr: str, node_ports: tuple[int, int] | None = None
              ) -> None:  # fmt: skip
    """Set the ranges the storage's api server allocates from (checked here)."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.num_addresses < 4:
        raise ValueError(f"service CIDR {cidr} is too small: it needs at least 4 addresses")
    _RANGES[storage] = ServiceRanges(str(network), node_ports or svc.NODE_PORT_RANGE)


def ranges_of(storage: ResourceStorage) -> ServiceRanges:
    """Return the ranges configured for a storage (the defaults when none were set)."""
    return _RANGES.get(storage, ServiceRanges())


async def admit_service(storage: ResourceStorage, info: ResourceInfo, obj: Obj) -> None:
    """Allocate a new Service's clusterIP and nodePorts (or claim the ones it asks for)."""
    if info.kind != "Service" or info.group:
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    ranges = ranges_of(storage)
    owner = _owner(obj)
    asked = spec.get("clusterIP")
    if asked and asked != "None":
        await _claim_asked_ip(storage, ranges, str(asked), owner)
    elif svc.needs_cluster_ip(obj):
        svc.assign_cluster_ip(obj, await _allocate_ip(storage, ranges, owner))
    for port in list_of(spec.get("ports")):
        if isinstance(port, dict) and isinstance(port.get("nodePort"), int) and port["nodePort"]:
            await _claim_asked_port(storage, ranges, port["nodePort"], owner)
    for port in svc.ports_needing_node_ports(obj):
        port["nodePort"] = await _allocate_port(storage, ranges, owner)


async def admit_service_update(storage: ResourceStorage, info: ResourceInfo, new: Obj,
                               old: Obj) -> None:  # fmt: skip
    """Allocate what an updated Service newly needs; drop nodePorts its type no longer has.

    Kubernetes does both on update (a ClusterIP service patched to NodePort gets node ports;
    one patched back drops them). To be called with the proposed object before validation,
    after ``carry_over``; the dropped ports' claims are swept once stale.
    """
    if info.kind != "Service" or info.group:
        return
    spec = new.get("spec")
    if not isinstance(spec, dict) or spec.get("type") == "ExternalName":
        return
    if spec.get("type") not in ("NodePort", "LoadBalancer"):
        for port in list_of(spec.get("ports")):
            if isinstance(port, dict):
                port.pop("nodePort", None)
        return
    ranges, owner = ranges_of(storage), _owner(new)
    old_ports = {p.get("nodePort") for p in list_of((old.get("spec") or {}).get("ports"))
                 if isinstance(p, dict)}
    for port in list_of(spec.get("ports")):
        asked = port.get("nodePort") if isinstance(port, dict) else None
        if isinstance(asked, int) and asked and asked not in old_ports:
            await _claim_asked_port(storage, ranges, asked, owner)
    for port in svc.ports_needing_node_ports(new):
        port["nodePort"] = await _allocate_port(storage, ranges, owner)


def _owner(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name') or meta.get('generateName')}"


async def _claim_asked_ip(storage: ResourceStorage, ranges: ServiceRanges, ip: str,
                          owner: str) -> None:  # fmt: skip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return  # validation names the bad field
    if address not in ipaddress.ip_network(ranges.cidr):
        raise _invalid(owner, "spec.clusterIPs", ip,
                       f"failed to allocate IP {ip}: provided IP is not in the valid range. "
                       f"The range of valid IPs is {ranges.cidr}")
    if not await _claim(storage, IP_PREFIX + ip, owner):
        raise _invalid(owner, "spec.clusterIPs", ip,
                       f"failed to allocate IP {ip}: provided IP is already allocated")


async def _claim_asked_port(storage: ResourceStorage, ranges: ServiceRanges, port: int,
                            owner: str) -> None:  # fmt: skip
    low, high = ranges.node_ports
    if not low <= port <= high:
        return  # validation rejects ports outside the range
    if not await _claim(storage, f"{PORT_PREFIX}{port}", owner):
        raise _invalid(owner, "spec.ports[].nodePort", str(port),
                       f"provided port is already allocated: {port}")


async def _allocate_ip(storage: ResourceStorage, ranges: ServiceRanges, owner: str) -> str:
    taken = await _live_claims(storage, IP_PREFIX)
    for _ in range(64):
        ip = lowest_free_ip(ranges.cidr, taken)
        if ip is None:
            break
        if await _claim(storage, IP_PREFIX + ip, owner):
            return ip
        taken.add(ip)  # lost a race for it: try the next one
    raise status.StatusError(500, "InternalError",
                             f"failed to allocate a clusterIP: range {ranges.cidr} is full")


def lowest_free_ip(cidr: str, taken: set[str]) -> str | None:
    """Return the lowest free host address of cidr after its first host (integer arithmetic:
    objects.service.next_free_ip's answer without building an address object per host)."""
    network = ipaddress.ip_network(cidr, strict=False)
    base, size = int(network.network_address), network.num_addresses
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    used = {int.from_bytes(socket.inet_pton(family, ip), "big") - base for ip in taken}
    # offset 0 is the network, 1 is kept for the kubernetes service, the last is broadcast
    offset = next((o for o in range(2, size - 1) if o not in used), None)
    return None if offset is None else str(ipaddress.ip_address(base + offset))


async def _allocate_port(storage: ResourceStorage, ranges: ServiceRanges, owner: str) -> int:
    taken = {int(p) for p in await _live_claims(storage, PORT_PREFIX)}
    for _ in range(64):
        port = svc.next_free_node_port(taken, ranges.node_ports)
        if port is None:
            break
        if await _claim(storage, f"{PORT_PREFIX}{port}", owner):
            return port
        taken.add(port)
    raise status.StatusError(500, "InternalError",
                             f"failed to allocate a nodePort: range {ranges.node_ports} is full")


async def _live_claims(storage: ResourceStorage, prefix: str) -> set[str]:
    """Return the addresses (or ports) claimed under prefix, stale claims swept first."""
    if time.monotonic() - _SWEPT.get(storage, -SWEEP_SECONDS) >= SWEEP_SECONDS:
        _SWEPT[storage] = time.monotonic()
        await sweep(storage)
    kvs, _rev, _more = await storage.store.list(prefix)
    return {kv.key.removeprefix(prefix) for kv in kvs}


async def sweep(storage: ResourceStorage) -> int:
    """Delete the claims whose service is gone or holds other values; return how many.

    One list of the services (not one read per claim), so a create at 1,000 services stays
    cheap; a claim rewritten meanwhile fails the compare-and-swap and is kept.
    """
    if _SERVICES is None:
        return 0
    held: set[str] = set()
    for service in (await storage.list(_SERVICES, None)).items:
        spec = service.get("spec") or {}
        held.update(IP_PREFIX + ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                    if ip)
        held.update(f"{PORT_PREFIX}{p['nodePort']}" for p in spec.get("ports") or []
                    if isinstance(p, dict) and p.get("nodePort"))
    removed = 0
    for prefix in (IP_PREFIX, PORT_PREFIX):
        kvs, _rev, _more = await storage.store.list(prefix)
        for kv in kvs:
            claim = orjson.loads(kv.value)
            young = time.time() - float(claim.get("at") or 0) < CLAIM_GRACE_SECONDS
            if kv.key in held or young:
                continue
            try:
                await storage.store.delete(kv.key, kv.mod_revision)
                removed += 1
            except (ConflictError, NotFoundError):
                pass  # re-claimed or removed meanwhile: leave it to its new owner
    return removed


async def _claim(storage: ResourceStorage, key: str, owner: str) -> bool:
    """Claim key for owner; take over a stale claim; tell whether the key is now ours."""
    value = orjson.dumps({"owner": owner, "at": time.time()})
    try:
        await storage.store.create(key, value)
        return True
    except AlreadyExistsError:
        pass
    kv = await storage.store.get(key)
    if kv is None:
        return await _claim_again(storage, key, value)
    held = orjson.loads(kv.value)
    if held.get("owner") != owner and not await _is_stale(storage, key, held):
        return False
    try:
        await storage.store.update(key, value, kv.mod_revision)
        return True
    except (ConflictError, NotFoundError):
        return False  # someone else took it over first


async def _claim_again(storage: ResourceStorage, key: str, value: bytes) -> bool:
    try:
        await storage.store.create(key, value)
        return True
    except AlreadyExistsError:
        return False


async def _is_stale(storage: ResourceStorage, key: str, held: Obj) -> bool:
    """Tell whether a claim's service is gone or no longer holds what the key names."""
    if time.time() - float(held.get("at") or 0) < CLAIM_GRACE_SECONDS or _SERVICES is None:
        return False
    namespace, _, name = str(held.get("owner", "")).partition("/")
    try:
        current = await storage.get(_SERVICES, namespace, name)
    except status.StatusError:
        return True
    return not holds(current, key)


def holds(service: Obj, key: str) -> bool:
    """Tell whether a service holds the address or node port a claim key names."""
    spec = service.get("spec") or {}
    if key.startswith(IP_PREFIX):
        return key.removeprefix(IP_PREFIX) in (spec.get("clusterIPs") or [spec.get("clusterIP")])
    port = key.removeprefix(PORT_PREFIX)
    return any(isinstance(p, dict) and str(p.get("nodePort")) == port
               for p in spec.get("ports") or [])


def _invalid(owner: str, field: str, value: str, message: str) -> status.StatusError:
    name = owner.partition("/")[2]
    return status.invalid("Service", name, [{"reason": "FieldValueInvalid", "field": field,
                                             "message": f"Invalid value: {value!r}: {message}"}])
