"""Cluster DNS answers, through dnspython's wire format both ways (no sockets)."""

from __future__ import annotations

from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from dockyard.proxy.dns import Resolver, answer

pytestmark = pytest.mark.unit


class FakeCache:
    """Stands in for an informer's cache: get(namespace, name)."""

    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objs}

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objs.get((namespace, name))


def svc(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


WEB = svc("web", clusterIP="10.96.0.12", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
DB = svc("db", clusterIP="None", ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}])
EXT = svc("ext", type="ExternalName", externalName="db.example.org")
DB_EPS = {"metadata": {"name": "db", "namespace": "default"}, "subsets": [{
    "addresses": [{"ip": "10.88.0.5"}, {"ip": "10.88.0.6", "hostname": "db-0"}],
    "notReadyAddresses": [{"ip": "10.88.0.7"}],
    "ports": [{"name": "pg", "port": 5433, "protocol": "TCP"}]}]}


def ask(name: str, rdtype: str = "A") -> dns.message.Message:
    resolver = Resolver("cluster.local", FakeCache(WEB, DB, EXT), FakeCache(DB_EPS))  # type: ignore[arg-type]
    wire = answer(resolver, dns.message.make_query(name, rdtype).to_wire())
    assert wire is not None
    return dns.message.from_wire(wire)


def texts(msg: dns.message.Message) -> list[str]:
    return sorted(r.to_text() for rrset in msg.answer for r in rrset)


def test_service_a_record() -> None:
    msg = ask("web.default.svc.cluster.local")
    assert msg.rcode() == dns.rcode.NOERROR and texts(msg) == ["10.96.0.12"]


def test_headless_returns_ready_pod_ips_only() -> None:
    assert texts(ask("db.default.svc.cluster.local")) == ["10.88.0.5", "10.88.0.6"]
    assert texts(ask("db-0.db.default.svc.cluster.local")) == ["10.88.0.6"]
    assert texts(ask("10-88-0-5.db.default.svc.cluster.local")) == ["10.88.0.5"]


def test_srv_for_named_ports() -> None:
    assert texts(ask("_http._tcp.web.default.svc.cluster.local", "SRV")) == [
        "0 100 80 web.default.svc.cluster.local."]
    assert texts(ask("_pg._tcp.db.default.svc.cluster.local", "SRV")) == [
        "0 100 5433 10-88-0-5.db.default.svc.cluster.local.",
        "0 100 5433 db-0.db.default.svc.cluster.local."]


def test_external_name_is_a_cname() -> None:
    assert texts(ask("ext.default.svc.cluster.local")) == ["db.example.org."]


def test_unknown_names_nxdomain_outside_refused() -> None:
    missing = ask("nope.default.svc.cluster.local")
    assert missing.rcode() == dns.rcode.NXDOMAIN and missing.authority
    assert ask("example.com").rcode() == dns.rcode.REFUSED
    assert ask("web.default.svc.cluster.local.example.com").rcode() == dns.rcode.REFUSED
    assert ask("web.default.svc.cluster.local", "AAAA").rcode() == dns.rcode.NOERROR
    assert texts(ask("web.default.svc.cluster.local", "AAAA")) == []


def test_pod_records() -> None:
    assert texts(ask("10-88-0-9.default.pod.cluster.local")) == ["10.88.0.9"]
    assert ask("x-y.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
