"""ServiceProxy: one node's proxy, turning Services and Endpoints into kernel NAT rules.

It runs in-process beside the node's agent (``dockyard server`` starts both). Two informers
(services, endpoints, all namespaces) feed a single sync loop: every change sets a flag, and
the loop renders the full rule set (``rules.render``) and writes it with one
``iptables-restore``, so bursts of changes coalesce into one write and a change is in the
kernel well within a second. The kernel path (iptables' nat table with the statistic and
recent modules, as kube-proxy's iptables mode) is used rather than a userspace proxy because
it balances each new connection with no copy through our process and keeps working while this
process is busy; iptables rather than nftables because it is what kube-proxy has proven over
years and what the runtime's CNI plugins already use on this machine.

Invariants:
- Every chain is ``DY-<tag>-...``; the tag comes from the options (by default derived from the
  bridge name), so two proxies on one machine never touch each other's rules.
- ``stop()`` removes the jump rules and every chain of ours, and restores route_localnet:
  nothing of the proxy is left in the kernel afterwards.
- A failed sync is retried (after 1 s), never given up; after a failure the next sync
  rewrites every chain (the kernel's state is then unknown), otherwise only changed chains.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

from dockyard.client import ApiClient, Informer
from dockyard.proxy import iptables
from dockyard.proxy.rules import Chains, RuleSet, render, service_ports

log = logging.getLogger(__name__)


@dataclass
class ProxyOptions:
    """What one node's proxy is asked for."""

    node_name: str
    pod_cidr: str = "10.88.0.0/16"
    bridge: str = "dockyard0"
    tag: str = ""  # empty: derived from the bridge name

    @property
    def instance_tag(self) -> str:
        """Return the short tag that names this instance's chains."""
        return self.tag or hashlib.sha256(self.bridge.encode()).hexdigest()[:6].upper()


@dataclass
class SyncStats:
    """What the last syncs cost (for the bench and for logs)."""

    syncs: int = 0
    last_seconds: float = 0.0
    last_rules: int = 0
    last_synced_at: float = 0.0


class ServiceProxy:
    """Keeps this node's service rules equal to the cluster's Services and ready Endpoints."""

    def __init__(self, api: ApiClient, options: ProxyOptions) -> None:
        self.api = api
        self.options = options
        self.chains = Chains(options.instance_tag)
        self.services = Informer(api.resource("v1", "services"), name="proxy-services")
        self.endpoints = Informer(api.resource("v1", "endpoints"), name="proxy-endpoints")
        self.localnet = iptables.RouteLocalnet(options.bridge)
        self.stats = SyncStats()
        self._dirty = asyncio.Event()
        self._last: RuleSet | None = None  # what the kernel holds; None: unknown, write all
        self._task: asyncio.Task[None] | None = None
        for informer in (self.services, self.endpoints):
            informer.add_handler(self._changed, self._changed, self._changed)

    def _changed(self, *_objs: object) -> None:
        self._dirty.set()

    async def start(self) -> None:
        """Clear leftovers of an earlier run with our tag, then start watching and syncing."""
        await iptables.remove_all(self.chains.prefix, self.options.instance_tag)
        await self.services.start()
        await self.endpoints.start()
        self._task = asyncio.create_task(self._run(), name="service-proxy")

    async def _run(self) -> None:
        await self.services.wait_for_sync()
        await self.endpoints.wait_for_sync()
        self._dirty.set()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.sync()
            except Exception as e:  # noqa: BLE001 - a failed write is retried, never fatal
                log.warning("proxy sync failed (retrying in 1s): %s", e)
                await asyncio.sleep(1.0)
                self._dirty.set()

    async def sync(self) -> None:
        """Render the rules for the cached Services and Endpoints and write them."""
        started = time.perf_counter()
        ports = service_ports(self.services.list(), self.endpoints.list())
        ruleset = render(ports, self.chains, self.options.node_name, self.options.pod_cidr)
        existing = None if self._last else await iptables.our_chains(self.chains.prefix)
        previous, self._last = self._last, None  # a failed write leaves the kernel unknown
        await iptables.restore(ruleset.restore_text(previous, existing))
        self._last = ruleset
        first = not self.stats.syncs
        if first:
            await iptables.ensure_jumps(self.chains.prefix, self.options.instance_tag)
        self.localnet.ensure()
        self.stats.syncs += 1
        self.stats.last_seconds = time.perf_counter() - started
        self.stats.last_rules = len(ruleset.nat) + len(ruleset.filter)
        self.stats.last_synced_at = time.time()
        log.debug("proxy synced %d service ports, %d rules in %.3fs", len(ports),
                  self.stats.last_rules, self.stats.last_seconds)

    async def stop(self) -> None:
        """Stop syncing and remove every rule and chain of ours."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.services.stop()
        await self.endpoints.stop()
        await iptables.remove_all(self.chains.prefix, self.options.instance_tag)
        self.localnet.restore()
