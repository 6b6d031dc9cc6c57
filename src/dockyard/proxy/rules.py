"""The proxy's iptables rules, as one `iptables-restore` text built from Services and Endpoints.

Pure: nothing here runs a command. The shape is kube-proxy's iptables mode, with every chain
named ``DY-<tag>-...`` so several proxies (one per test server) never touch each other's rules:

nat table
- ``DY-<tag>-SERVICES`` (jumped to from PREROUTING and OUTPUT): one rule per service port
  matching ``clusterIP:port`` → ``DY-<tag>-SVC-<hash>``; last, local destinations go to
  ``DY-<tag>-NODEPORTS``, where ``nodePort`` → ``DY-<tag>-EXT-<hash>``.
- ``SVC`` chains pick an endpoint chain with ``-m statistic --mode random --probability
  1/(n-i)`` (so each of n endpoints gets 1/n of new connections); with ``sessionAffinity:
  ClientIP`` a ``-m recent --rcheck`` rule per endpoint first sends a client back where it went
  before. ``SVL`` chains do the same over this node's endpoints only (traffic policy Local).
- ``SEP`` chains DNAT to ``podIP:port`` (and mark hairpin traffic, a pod reaching itself, for
  masquerade). ``EXT`` chains mark node port traffic for masquerade (policy Cluster) and jump
  to ``SVC``; with ``externalTrafficPolicy: Local`` they jump to ``SVL`` without masquerade so
  pods see the client's address (traffic from the node itself is still masqueraded).
- ``DY-<tag>-POSTRTG`` (from POSTROUTING) masquerades packets carrying the proxy's mark.

filter table
- ``DY-<tag>-SERVICES`` (from INPUT, FORWARD and OUTPUT, new connections only) rejects
  connections to service ports that have no ready endpoint (as kube-proxy does), so clients get
  "connection refused" at once instead of a timeout.

Only ``addresses`` of Endpoints are used: ``notReadyAddresses`` never receive traffic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

MASQ_MARK = "0x4000"  # kube-proxy's masquerade bit
AFFINITY_SECONDS = 10800  # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds


@dataclass(frozen=True)
class Endpoint:
    """One ready endpoint of a service port."""

    ip: str
    port: int
    node_name: str = ""


@dataclass
class ServicePort:
    """One port of one service, with its ready endpoints (the proxy's unit of rules)."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    cluster_ip: str
    port: int
    node_port: int = 0
    affinity_seconds: int = 0  # 0: no session affinity
    external_local: bool = False
    internal_local: bool = False
    endpoints: list[Endpoint] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Return "namespace/name:port" (the comment on its rules)."""
        return f"{self.namespace}/{self.name}:{self.port_name}"


def service_ports(services: list[Obj], endpoints: list[Obj]) -> list[ServicePort]:
    """Return every proxied service port with its ready endpoints, sorted by key."""
    by_name = {(e["metadata"].get("namespace", "default"), e["metadata"]["name"]): e
               for e in endpoints}
    out: list[ServicePort] = []
    for service in services:
        meta, spec = service.get("metadata") or {}, service.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip or cluster_ip == "None" or spec.get("type") == "ExternalName":
            continue
        namespace = meta.get("namespace", "default")
        eps = by_name.get((namespace, meta.get("name")))
        for port in spec.get("ports") or []:
            protocol = str(port.get("protocol", "TCP"))
            if protocol not in ("TCP", "UDP"):
                continue  # SCTP needs a kernel module we do not load
            out.append(ServicePort(
                namespace=namespace, name=meta["name"], port_name=str(port.get("name") or ""),
                protocol=protocol, cluster_ip=cluster_ip, port=int(port["port"]),
                node_port=int(port.get("nodePort") or 0)
                if spec.get("type") in ("NodePort", "LoadBalancer") else 0,
                affinity_seconds=_affinity(spec),
                external_local=spec.get("externalTrafficPolicy") == "Local",
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                endpoints=ready_endpoints(eps, str(port.get("name") or ""), protocol),
            ))  # fmt: skip
    return sorted(out, key=lambda p: (p.key, p.protocol))


def _affinity(spec: Obj) -> int:
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    return int(config.get("timeoutSeconds") or AFFINITY_SECONDS)


def ready_endpoints(endpoints: Obj | None, port_name: str, protocol: str) -> list[Endpoint]:
    """Return the ready endpoints of the Endpoints port with this name and protocol."""
    found: set[Endpoint] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        for port in subset.get("ports") or []:
            if str(port.get("name") or "") != port_name or port.get("protocol",
                                                                    "TCP") != protocol:
                continue
            for address in subset.get("addresses") or []:
                found.add(Endpoint(address["ip"], int(port["port"]),
                                   str(address.get("nodeName") or "")))
    return sorted(found, key=lambda e: (e.ip, e.port))


# --- rendering -----------------------------------------------------------------------------


@dataclass
class Chains:
    """The names of one proxy instance's chains (prefix ``DY-<tag>-``, at most 28 chars)."""

    tag: str

    @property
    def prefix(self) -> str:
        """Return the prefix every chain of this instance starts with."""
        return f"DY-{self.tag}-"

    def top(self, name: str) -> str:
        """Return a top-level chain name (SERVICES, NODEPORTS, POSTRTG, MARK-MASQ)."""
        return self.prefix + name

    def per(self, kind: str, *parts: object) -> str:
        """Return the chain of one service port or endpoint (SVC, SVL, EXT, SEP)."""
        digest = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
        return f"{self.prefix}{kind}-{digest[:12].upper()}"


@dataclass
class RuleSet:
    """The rendered rules: restore text per table and the chains it defines."""

    nat: list[str]
    filter: list[str]
    nat_chains: set[str]
    filter_chains: set[str]

    def by_chain(self, table: str) -> dict[str, list[str]]:
        """Return a table's rules grouped by chain (every chain of ours, empty ones too)."""
        rules, chains = (self.nat, self.nat_chains) if table == "nat" else (
            self.filter, self.filter_chains)
        grouped: dict[str, list[str]] = {c: [] for c in chains}
        for rule in rules:
            grouped.setdefault(rule.split(" ", 2)[1], []).append(rule)
        return grouped

    def restore_text(self, previous: RuleSet | None = None,
                     existing: dict[str, set[str]] | None = None) -> str:
        """Return iptables-restore input that moves the kernel from previous to these rules.

        Only chains whose rules changed are flushed and rewritten (kube-proxy's partial sync),
        so one endpoint change at 1,000 services rewrites a few chains, not 5,000. Chains in
        previous (or, without it, in existing: what the kernel holds) that are gone here are
        deleted; they can only be referenced from chains that changed, which are rewritten first.
        """
        out: list[str] = []
        for table in ("filter", "nat"):
            now = self.by_chain(table)
            before = previous.by_chain(table) if previous is not None else {}
            old = set(before) if previous is not None else set((existing or {}).get(table, ()))
            changed = [c for c in sorted(now) if previous is None or before.get(c) != now[c]]
            stale = sorted(old - set(now))
            out += [f"*{table}", *(f":{c} - [0:0]" for c in changed + stale)]
            out += [rule for c in changed for rule in now[c]]
            out += [*(f"-X {c}" for c in stale), "COMMIT"]
        return "\n".join(out) + "\n"


def render(ports: list[ServicePort], chains: Chains, node_name: str, pod_cidr: str) -> RuleSet:
    """Return the rules for these service ports on node ``node_name``."""
    services, nodeports = chains.top("SERVICES"), chains.top("NODEPORTS")
    masq, post = chains.top("MARK-MASQ"), chains.top("POSTRTG")
    nat = [
        f"-A {post} -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A {post} -j MARK --xor-mark {MASQ_MARK}",
        f'-A {post} -m comment --comment "dockyard service traffic" -j MASQUERADE',
        f"-A {masq} -j MARK --or-mark {MASQ_MARK}",
    ]
    filt: list[str] = []
    nat_chains = {services, nodeports, masq, post}
    for sp in ports:
        nat_chains |= _render_port(sp, chains, node_name, pod_cidr, nat, filt)
    nat.append(f"-A {services} -m addrtype --dst-type LOCAL -j {nodeports}")
    return RuleSet(nat, filt, nat_chains, {chains.top("SERVICES")})


def _render_port(sp: ServicePort, chains: Chains, node_name: str, pod_cidr: str,
                 nat: list[str], filt: list[str]) -> set[str]:  # fmt: skip
    proto = sp.protocol.lower()
    match = f"-p {proto} -m {proto}"
    comment = f'-m comment --comment "{sp.key}"'
    local = [e for e in sp.endpoints if e.node_name == node_name]
    internal = local if sp.internal_local else sp.endpoints
    external = local if sp.external_local else sp.endpoints
    made: set[str] = set()
    ident = (sp.namespace, sp.name, sp.port_name, sp.protocol)
    svc = chains.per("SVC", *ident)
    svl = chains.per("SVL", *ident)
    ext = chains.per("EXT", *ident)
    reject = chains.top("SERVICES")
    if internal:
        target = svl if sp.internal_local else svc
        nat.append(f"-A {chains.top('SERVICES')} -d {sp.cluster_ip}/32 {match} "
                   f"--dport {sp.port} {comment} -j {target}")
        nat.append(f"-A {target} ! -s {pod_cidr} -d {sp.cluster_ip}/32 {match} "
                   f"--dport {sp.port} -j {chains.top('MARK-MASQ')}")
    else:
        filt.append(f"-A {reject} -d {sp.cluster_ip}/32 {match} --dport {sp.port} {comment} "
                    "-j REJECT --reject-with icmp-port-unreachable")
    if sp.node_port:
        if external:
            nat.append(f"-A {chains.top('NODEPORTS')} {match} --dport {sp.node_port} "
                       f"{comment} -j {ext}")
            made.add(ext)
            if sp.external_local:
                # Pods and the node itself keep the cluster-wide behaviour, as kube-proxy.
                nat.append(f"-A {ext} -s {pod_cidr} -j {svc}")
                nat.append(f"-A {ext} -m addrtype --src-type LOCAL -j {chains.top('MARK-MASQ')}")
                nat.append(f"-A {ext} -m addrtype --src-type LOCAL -j {svc}")
                nat.append(f"-A {ext} -j {svl}")
            else:
                nat.append(f"-A {ext} -j {chains.top('MARK-MASQ')}")
                nat.append(f"-A {ext} -j {svc}")
        else:
            filt.append(f"-A {reject} -m addrtype --dst-type LOCAL {match} "
                        f"--dport {sp.node_port} {comment} "
                        "-j REJECT --reject-with icmp-port-unreachable")
    needs_svc = (internal and not sp.internal_local) or (external and sp.node_port) or (
        sp.node_port and sp.external_local and sp.endpoints)
    needs_svl = (internal and sp.internal_local) or (external and sp.node_port
                                                     and sp.external_local)
    if needs_svc:
        made |= _balance(svc, sp, sp.endpoints, chains, nat)
    if needs_svl:
        made |= _balance(svl, sp, local, chains, nat)
    return made


def _balance(chain: str, sp: ServicePort, endpoints: list[Endpoint], chains: Chains,
             nat: list[str]) -> set[str]:  # fmt: skip
    """Spread new connections in chain over endpoints (1/n each); return the chains used."""
    made = {chain}
    proto = sp.protocol.lower()
    seps = [(chains.per("SEP", sp.namespace, sp.name, sp.port_name, sp.protocol, e.ip, e.port), e)
            for e in endpoints]
    if sp.affinity_seconds:
        for sep, _ in seps:
            nat.append(f"-A {chain} -m recent --name {sep} --rcheck --seconds "
                       f"{sp.affinity_seconds} --reap -j {sep}")
    for i, (sep, _) in enumerate(seps):
        left = len(seps) - i
        odds = "" if left == 1 else (
            f"-m statistic --mode random --probability {1 / left:.10f} ")
        nat.append(f"-A {chain} {odds}-j {sep}")
    for sep, e in seps:
        made.add(sep)
        nat.append(f"-A {sep} -s {e.ip}/32 -j {chains.top('MARK-MASQ')}")
        recent = f"-m recent --name {sep} --set " if sp.affinity_seconds else ""
        nat.append(f"-A {sep} -p {proto} {recent}-m {proto} -j DNAT "
                   f"--to-destination {e.ip}:{e.port}")
    return made
