"""NodeProxy: what runs beside each node's agent for Services: the proxy and cluster DNS.

Both read the same two informers (services, endpoints), so a node watches them once. DNS
listens on ``dns_address:53`` (by default the pod bridge's gateway, which every pod on the node
routes to); the agent writes that address into pods' resolv.conf.

Invariants: ``stop()`` stops DNS first (its sockets are released), then the proxy, which
removes all of its rules; a DNS address that cannot be bound is logged and the proxy still runs,
since services by address matter more than names.
"""

from __future__ import annotations

import contextlib
import logging

from dockyard.client import ApiClient
from dockyard.proxy.dns import ClusterDNS, Resolver
from dockyard.proxy.proxy import ProxyOptions, ServiceProxy

log = logging.getLogger(__name__)


class NodeProxy:
    """A node's service proxy plus its cluster DNS server."""

    def __init__(self, api: ApiClient, *, node_name: str, pod_cidr: str, bridge: str,
                 cluster_domain: str = "cluster.local", dns_address: str = "",
                 dns_port: int = 53, tag: str = "") -> None:  # fmt: skip
        self.proxy = ServiceProxy(api, ProxyOptions(node_name, pod_cidr, bridge, tag))
        resolver = Resolver(cluster_domain, self.proxy.services, self.proxy.endpoints)
        self.dns = ClusterDNS(resolver, dns_address, dns_port) if dns_address else None

    async def start(self) -> None:
        """Start the proxy, then DNS."""
        await self.proxy.start()
        if self.dns is not None:
            try:
                await self.dns.start()
            except Exception as e:  # noqa: BLE001 - the proxy runs on without names
                log.error("cluster DNS cannot listen on %s:%d: %s", self.dns.address,
                          self.dns.port, e)
                self.dns = None

    async def stop(self) -> None:
        """Stop DNS and the proxy and remove the proxy's rules."""
        if self.dns is not None:
            with contextlib.suppress(Exception):
                await self.dns.stop()
        await self.proxy.stop()
