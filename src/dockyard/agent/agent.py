"""The agent: dockyard's kubelet for one node, wiring the runtime, images, workers and server.

`Agent.start()` joins (node token), registers the Node, starts the heartbeat, the HTTPS
endpoint (logs, exec, stats for the api server), the pod informer (fieldSelector
spec.nodeName=NODE) that feeds one `PodWorker` per pod uid, and the relist loop (the kubelet's
PLEG): every second it lists the runtime's containers and wakes the workers whose containers
changed state, so a dead container is noticed within a second.

Invariants:
- Containers outlive the agent: `stop()` stops workers and loops but never a container; a new
  agent on the same run dir adopts them (the runtime's records are on disk).
- Sandboxes whose pod is no longer bound to this node (deleted while the agent was away) are
  torn down once the informer has synced.
- With no sandbox left at stop, the bridge, its iptables rules and cgroup parents are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dockyard.agent import identity
from dockyard.agent.image_pulls import ImagePuller
from dockyard.agent.node import NodeReporter, detect_node_ip
from dockyard.agent.options import AgentOptions
from dockyard.agent.stats import StatsCollector
from dockyard.agent.volumes import remove_pod_volumes
from dockyard.agent.worker import PodWorker
from dockyard.client import (
    ApiClient,
    ClientConfig,
    EventRecorder,
    Informer,
    NotFoundError,
)
from dockyard.images.store import ImageStore
from dockyard.runtime import ContainerStatus, Runtime, Sandbox

log = logging.getLogger(__name__)
Obj = dict[str, Any]
CACHE_SECONDS = 1.0


class Agent:
    """One node's agent."""

    def __init__(self, options: AgentOptions, server: str, token: str,
                 ca_data: bytes | None = None) -> None:  # fmt: skip
        self.options = options
        self.server_url = server
        self.join_token = token
        self.ca_data = ca_data if ca_data is not None else (
            options.ca_file.read_bytes() if options.ca_file else None)
        self.node_ip = options.node_ip or detect_node_ip()
        self.runtime = Runtime(
            run_dir=options.run_dir, data_dir=options.data_dir, bridge=options.bridge,
            pod_cidr=options.pod_cidr, allowed_mount_roots=options.allowed_host_paths,
        )  # fmt: skip
        self.images = ImageStore(options.data_dir)
        self.workers: dict[str, PodWorker] = {}
        # Starting sandboxes and containers is CPU-bound (CNI plugins, runc): a few at a time
        # finish in creation order, so most pods start sooner than if all ran at once; a pod
        # whose sandbox is made does not queue behind other pods' sandboxes for its containers.
        slots = max(2, 2 * (os.cpu_count() or 1))
        self.sandbox_slots = asyncio.Semaphore(slots)
        self.container_slots = asyncio.Semaphore(slots)
        self.sandboxes: dict[str, Sandbox] = {s.pod_uid: s for s in self.runtime.list_sandboxes()}
        self.stats = StatsCollector(self.runtime, lambda: self.containers(None))
        self.api: ApiClient
        self.events: EventRecorder
        self.informer: Informer
        self.reporter: NodeReporter
        self._tasks: list[asyncio.Task[None]] = []
        self._http: Any = None
        self._last_seen: dict[str, tuple[Any, ...]] = {}
        self._listing: list[ContainerStatus] | None = None
        self._listed_at = 0.0
        self._generation = self._listed_gen = 0
        self._list_lock = asyncio.Lock()

    async def start(self) -> None:
        """Join, register the Node, and start every loop."""
        directory = identity.identity_dir(self.options.data_dir, self.options.node_name)
        base = ClientConfig(server=self.server_url, token=self.join_token, ca_data=self.ca_data)
        token = await identity.node_token(base, self.options.node_name, directory)
        config = ClientConfig(server=self.server_url, token=token, ca_data=self.ca_data)
        self.puller = ImagePuller(self.images, self.server_url, token,
                                  self._cluster_ca_file(directory), directory)
        self.api = ApiClient(config, user_agent=f"dockyard-agent/{self.options.node_name}")
        self.events = EventRecorder(self.api, "kubelet", self.options.node_name)
        cert, key = identity.serving_certificate(directory, self.node_ip, self.options.node_name)
        from dockyard.agent.server import AgentServer

        self._http = AgentServer(self, cert, key, self.ca_data)
        port = await self._http.start(self.node_ip, self.options.port)
        self.reporter = NodeReporter(self.api, self.options, self.node_ip, port,
                                     cert.read_text())  # fmt: skip
        await self.reporter.register()
        self.reporter.start()
        self.informer = Informer(self.api.resource("v1", "pods"),
                                 field_selector=f"spec.nodeName={self.options.node_name}",
                                 name=f"agent-pods-{self.options.node_name}")  # fmt: skip
        self.informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        await self.informer.start()
        await self.informer.wait_for_sync()
        self._adopt_orphans()
        self._tasks.append(asyncio.create_task(self._relist(), name="agent-relist"))
        self._tasks.append(asyncio.create_task(self.stats.run(), name="agent-stats"))
        self._tasks.append(asyncio.create_task(self._rotate_logs(), name="agent-logs"))
        log.info("agent for node %s ready (%s:%d)", self.options.node_name, self.node_ip, port)

    async def stop(self) -> None:
        """Stop loops and workers; containers keep running for the next agent to adopt."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.informer.stop()
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.reporter.stop()
        if self._http is not None:
            await self._http.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.events.close(), 5)
        with contextlib.suppress(Exception):
            await self.api.close()
        if not self.runtime.list_sandboxes():
            with contextlib.suppress(Exception):
                await self.runtime.destroy_network()
        await self.runtime.close()

    # -- pods ---------------------------------------------------------------------------

    def _pod_added(self, pod: Obj) -> None:
        uid = str(pod["metadata"].get("uid"))
        worker = self.workers.get(uid)
        if worker is None:
            self._spawn(uid, pod)
        else:
            worker.update(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_added(new)

    def _pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.get(str(pod["metadata"].get("uid")))
        if worker is not None:
            worker.update(None)

    def _spawn(self, uid: str, pod: Obj | None) -> None:
        worker = PodWorker(self, uid, pod)
        self.workers[uid] = worker

        def finished(_task: object) -> None:
            if self.workers.get(uid) is worker:
                del self.workers[uid]

        worker.task.add_done_callback(finished)

    def _adopt_orphans(self) -> None:
        known = {str(p["metadata"].get("uid")) for p in self.informer.list()}
        for uid, sandbox in list(self.sandboxes.items()):
            if uid not in known and uid not in self.workers:
                log.info("removing sandbox of pod %s/%s (no longer bound here)",
                         sandbox.namespace, sandbox.name)
                self._spawn(uid, None)

    def sandbox_of(self, uid: str) -> Sandbox | None:
        """Return the sandbox of a pod uid, if it has one."""
        return self.sandboxes.get(uid)

    def sandbox_created(self, sandbox: Sandbox) -> None:
        """Remember a new sandbox."""
        self.sandboxes[sandbox.pod_uid] = sandbox

    def sandbox_removed(self, sandbox: Sandbox) -> None:
        """Forget a removed sandbox."""
        self.sandboxes.pop(sandbox.pod_uid, None)

    def pod_by_name(self, namespace: str, name: str) -> Obj | None:
        """Return the bound pod namespace/name from the informer's cache."""
        return self.informer.get(namespace, name)

    async def container_of(self, namespace: str, name: str, container: str | None
                           ) -> tuple[Obj, ContainerStatus]:  # fmt: skip
        """Return (pod, latest attempt of container) or raise LookupError saying why."""
        pod = self.pod_by_name(namespace, name)
        if pod is None:
            raise LookupError(f'pod "{name}" is not on node {self.options.node_name}')
        names = [c["name"] for c in pod["spec"].get("containers") or []]
        every = names + [c["name"] for c in pod["spec"].get("initContainers") or []]
        if container is None:
            if len(names) != 1:
                raise ValueError(f"a container name must be specified for pod {name}, choose "
                                 f"one of: [{' '.join(names)}]")  # fmt: skip
            container = names[0]
        if container not in every:
            raise LookupError(f'container {container} is not valid for pod {name}')
        sandbox = self.sandbox_of(str(pod["metadata"]["uid"]))
        attempts = [c for c in (await self.runtime.list_containers(sandbox.id) if sandbox else [])
                    if c.name == container]  # fmt: skip
        if not attempts:
            raise LookupError(f'container "{container}" in pod "{name}" is waiting to start')
        return pod, max(attempts, key=lambda c: c.attempt)

    async def fetch(self, plural: str, namespace: str, name: str) -> Obj | None:
        """Return a ConfigMap or Secret of the pod's namespace, None when it does not exist."""
        try:
            obj: Obj = await self.api.resource("v1", plural, namespace).get(name)
            return obj
        except NotFoundError:
            return None

    def remove_pod_files(self, uid: str) -> None:
        """Remove a pod's volumes."""
        remove_pod_volumes(self.options.data_dir, uid)

    # -- relist -------------------------------------------------------------------------

    async def _relist(self) -> None:
        while True:
            await asyncio.sleep(self.options.relist_seconds)
            try:
                await self.relist_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("relist failed")

    async def containers(self, sandbox_id: str | None) -> list[ContainerStatus]:
        """Return a sandbox's containers from a listing at most CACHE_SECONDS old.

        Listing reads every container's record, so N workers listing on their own would cost
        N² reads; they share one listing, dropped whenever a worker changes a container.
        """
        async with self._list_lock:
            fresh = time.monotonic() - self._listed_at <= CACHE_SECONDS
            if self._listing is None or not fresh or self._listed_gen != self._generation:
                generation = self._generation  # a change during the listing makes it stale
                self._listing = await self.runtime.list_containers()
                self._listed_at, self._listed_gen = time.monotonic(), generation
            listing = self._listing
        return [c for c in listing if sandbox_id in (None, c.sandbox_id)]

    def _cluster_ca_file(self, directory: Path) -> Path | None:
        """Write the cluster CA where the registry client can read it (None: system trust)."""
        if self.ca_data is None:
            return None
        path = directory / "cluster-ca.crt"
        path.write_bytes(self.ca_data)
        return path

    def invalidate(self) -> None:
        """Forget the shared container listing (a container was made, started or removed)."""
        self._generation += 1

    async def relist_once(self) -> None:
        """Wake the worker of every pod whose containers changed state since the last look."""
        by_sandbox: dict[str, list[tuple[Any, ...]]] = {}
        self.invalidate()
        await self.containers("")
        for c in self._listing or []:
            by_sandbox.setdefault(c.sandbox_id, []).append((c.id, c.state, c.exit_code))
        seen: dict[str, tuple[Any, ...]] = {}
        for uid, sandbox in self.sandboxes.items():
            signature = tuple(sorted(by_sandbox.get(sandbox.id, [])))
            seen[uid] = signature
            if self._last_seen.get(uid, signature) != signature:
                worker = self.workers.get(uid)
                if worker is not None:
                    worker.wake.set()
        self._last_seen = seen

    async def _rotate_logs(self) -> None:
        while True:
            await asyncio.sleep(10)
            with contextlib.suppress(Exception):
                await self.runtime.rotate_logs()


async def run_agent(options: AgentOptions, server: str, token: str, stop: asyncio.Event,
                    ready: Callable[[], None] | None = None) -> None:  # fmt: skip
    """Run an agent until `stop` is set."""
    agent = Agent(options, server, token)
    await agent.start()
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        await agent.stop()
