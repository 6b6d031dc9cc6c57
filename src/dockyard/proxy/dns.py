"""Cluster DNS: answers for the cluster domain from Services and Endpoints (like CoreDNS's
kubernetes plugin), over UDP and TCP.

Packets are parsed and built with dnspython (well kept, complete wire format, EDNS and
truncation handled), never by hand. Records, with ``<d>`` the cluster domain:

- ``<svc>.<ns>.svc.<d>`` A: the clusterIP; for a headless service, the ready endpoints' IPs;
  an ExternalName service answers with a CNAME to its externalName.
- ``_<port>._<proto>.<svc>.<ns>.svc.<d>`` SRV for each named port: the service name (or, when
  headless, one record per ready endpoint, named ``<a-b-c-d>.<svc>.<ns>.svc.<d>``, which
  resolves too).
- ``<a-b-c-d>.<ns>.pod.<d>`` A: the address spelled in the name, as Kubernetes' pod records.

Any other name in the cluster domain is NXDOMAIN (with the zone's SOA, so resolvers cache the
miss); a name outside it is REFUSED: nothing is ever forwarded, so pods in tests cannot reach
the internet through us.

The server binds with IP_FREEBIND, so it can listen on the pod bridge's gateway address before
the first pod has created the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from dockyard.client import Informer

log = logging.getLogger(__name__)
Obj = dict
TTL = 5  # seconds: short, so clients follow pods coming and going
IP_FREEBIND = 15  # linux/in.h; not in Python's socket module


@dataclass(frozen=True)
class Answer:
    """What a name resolves to: an rcode and (type, text) records."""

    rcode: dns.rcode.Rcode
    records: tuple[tuple[dns.rdatatype.RdataType, str], ...] = ()


class Resolver:
    """Answers names of the cluster domain from the Service and Endpoints caches."""

    def __init__(self, domain: str, services: Informer, endpoints: Informer) -> None:
        self.domain = domain.strip(".").lower()
        self.services = services
        self.endpoints = endpoints

    def resolve(self, name: str, rdtype: int) -> Answer:
        """Return the answer for one question."""
        labels = name.strip(".").lower().split(".")
        zone = self.domain.split(".")
        if labels[-len(zone):] != zone:
            return Answer(dns.rcode.REFUSED)
        inner = labels[: -len(zone)]
        if len(inner) >= 2 and inner[-1] == "pod":
            return self._pod(inner[:-1], rdtype)
        if len(inner) >= 3 and inner[-1] == "svc":
            return self._service(inner[:-1], rdtype)
        return Answer(dns.rcode.NOERROR if _is_parent(inner) else dns.rcode.NXDOMAIN)

    def _pod(self, inner: list[str], rdtype: int) -> Answer:
        if len(inner) != 2:
            return Answer(dns.rcode.NXDOMAIN)
        try:
            ip = str(ipaddress.IPv4Address(inner[0].replace("-", ".")))
        except ValueError:
            return Answer(dns.rcode.NXDOMAIN)
        return Answer(dns.rcode.NOERROR, ((dns.rdatatype.A, ip),) if rdtype in (
            dns.rdatatype.A, dns.rdatatype.ANY) else ())

    def _service(self, inner: list[str], rdtype: int) -> Answer:
        ns, svc_name, rest = inner[-1], inner[-2], inner[:-2]
        service = self.services.get(ns, svc_name)
        if service is None:
            return Answer(dns.rcode.NXDOMAIN)
        spec = service.get("spec") or {}
        fqdn = f"{svc_name}.{ns}.svc.{self.domain}."
        if not rest:
            return Answer(dns.rcode.NOERROR, self._service_records(service, rdtype, fqdn))
        if len(rest) == 2 and rest[0].startswith("_") and rest[1].startswith("_"):
            return self._srv(service, rest[0][1:], rest[1][1:], rdtype, fqdn)
        if len(rest) == 1 and spec.get("clusterIP") == "None":
            ips = [ip for ip, _host in self._ready(ns, svc_name)
                   if _host_label(ip, _host) == rest[0]]
            if ips:
                return Answer(dns.rcode.NOERROR, tuple(
                    (dns.rdatatype.A, ip) for ip in ips if rdtype in (
                        dns.rdatatype.A, dns.rdatatype.ANY)))
        return Answer(dns.rcode.NXDOMAIN)

    def _service_records(self, service: Obj, rdtype: int, fqdn: str
                         ) -> tuple[tuple[dns.rdatatype.RdataType, str], ...]:  # fmt: skip
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName":
            return ((dns.rdatatype.CNAME, str(spec.get("externalName", "")).rstrip(".") + "."),)
        if rdtype not in (dns.rdatatype.A, dns.rdatatype.ANY):
            return ()
        if spec.get("clusterIP") == "None":
            meta = service["metadata"]
            ips = sorted({ip for ip, _ in self._ready(meta.get("namespace", "default"),
                                                       meta["name"])})
            return tuple((dns.rdatatype.A, ip) for ip in ips)
        return ((dns.rdatatype.A, str(spec.get("clusterIP"))),)

    def _srv(self, service: Obj, port_name: str, proto: str, rdtype: int, fqdn: str) -> Answer:
        spec, meta = service.get("spec") or {}, service["metadata"]
        port = next((p for p in spec.get("ports") or []
                     if p.get("name") == port_name
                     and str(p.get("protocol", "TCP")).lower() == proto), None)
        if port is None:
            return Answer(dns.rcode.NXDOMAIN)
        if rdtype not in (dns.rdatatype.SRV, dns.rdatatype.ANY):
            return Answer(dns.rcode.NOERROR)
        if spec.get("clusterIP") != "None":
            return Answer(dns.rcode.NOERROR, ((dns.rdatatype.SRV,
                                               f"0 100 {port['port']} {fqdn}"),))
        records = []
        for ip, host in self._ready(meta.get("namespace", "default"), meta["name"]):
            target_port = self._endpoint_port(meta, port_name) or port["port"]
            records.append((dns.rdatatype.SRV,
                            f"0 100 {target_port} {_host_label(ip, host)}.{fqdn}"))
        return Answer(dns.rcode.NOERROR, tuple(sorted(set(records))))

    def _endpoint_port(self, meta: Obj, port_name: str) -> int | None:
        eps = self.endpoints.get(meta.get("namespace", "default"), meta["name"]) or {}
        for subset in eps.get("subsets") or []:
            for port in subset.get("ports") or []:
                if port.get("name") == port_name:
                    return int(port["port"])
        return None

    def _ready(self, namespace: str, name: str) -> list[tuple[str, str]]:
        eps = self.endpoints.get(namespace, name) or {}
        return [(a["ip"], str(a.get("hostname") or ""))
                for subset in eps.get("subsets") or [] for a in subset.get("addresses") or []]

    def soa(self) -> str:
        """Return the zone's SOA record text."""
        return f"ns.dns.{self.domain}. hostmaster.{self.domain}. 1 7200 1800 86400 {TTL}"


def _host_label(ip: str, hostname: str) -> str:
    return hostname or ip.replace(".", "-")


def _is_parent(inner: list[str]) -> bool:
    """Tell whether a name is the zone itself or one of its structural parents (svc, ns.svc)."""
    return inner in ([], ["svc"], ["pod"]) or (len(inner) == 2 and inner[1] in ("svc", "pod"))


def answer(resolver: Resolver, wire: bytes) -> bytes | None:
    """Return the response to one query message (None: not a query we can parse)."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # noqa: BLE001 - garbage in: no answer, as a real server does
        return None
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    response.flags &= ~dns.flags.RA
    if len(query.question) != 1:
        response.set_rcode(dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    result = resolver.resolve(question.name.to_text(), question.rdtype)
    response.set_rcode(result.rcode)
    if result.rcode == dns.rcode.REFUSED:
        response.flags &= ~dns.flags.AA
    for rdtype, text in result.records:
        response.answer.append(dns.rrset.from_text(question.name, TTL, dns.rdataclass.IN,
                                                   rdtype, text))
    if result.rcode == dns.rcode.NXDOMAIN or (result.rcode == dns.rcode.NOERROR
                                              and not result.records):
        zone = dns.name.from_text(resolver.domain)
        response.authority.append(dns.rrset.from_text(zone, TTL, dns.rdataclass.IN,
                                                      dns.rdatatype.SOA, resolver.soa()))
    return response.to_wire(max_size=65535)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = answer(self.resolver, data)
        if reply is not None and self.transport is not None:
            if len(reply) > 512:
                reply = _truncated(data) or reply
            self.transport.sendto(reply, addr)


def _truncated(wire: bytes) -> bytes | None:
    with contextlib.suppress(Exception):
        response = dns.message.make_response(dns.message.from_wire(wire))
        response.flags |= dns.flags.TC
        return response.to_wire()
    return None


class ClusterDNS:
    """Serves the resolver on address:port, UDP and TCP."""

    def __init__(self, resolver: Resolver, address: str, port: int = 53) -> None:
        self.resolver = resolver
        self.address = address
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind UDP and TCP (the TCP port follows UDP's when port 0 picked one)."""
        loop = asyncio.get_running_loop()
        udp = _socket(socket.SOCK_DGRAM, self.address, self.port)
        self.port = udp.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self.resolver), sock=udp)
        self._udp = transport
        tcp = _socket(socket.SOCK_STREAM, self.address, self.port)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp)
        log.info("cluster DNS for %s on %s:%d", self.resolver.domain, self.address, self.port)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                reply = answer(self.resolver, await reader.readexactly(size))
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up
        finally:
            writer.close()

    async def stop(self) -> None:
        """Stop serving and release both sockets."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()
            self._tcp = None


def _socket(kind: int, address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
