"""ControllerManager: shared informers once, then every controller's workers (like
kube-controller-manager).

``ControllerManager(api, ControllerOptions(...))``; ``await start()`` builds the controllers
(each registers handlers on the shared informers), starts the informers, and starts each
controller's workers once every informer has listed; ``await stop()`` shuts the queues, stops
the informers and flushes pending Events.

Invariants: no reconcile runs before all informer caches have synced (a half-filled pod cache
would make the ReplicaSet controller create pods that exist); one informer per resource is
shared by all controllers; each controller records Events under Kubernetes' component name
(``deployment-controller``, ``replicaset-controller``, ``node-controller``,
``horizontal-pod-autoscaler``), so ``kubectl describe`` shows the familiar "From".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from dockyard.client import ApiClient, EventRecorder, InformerFactory
from dockyard.controllers.base import Controller
from dockyard.controllers.deployment import DeploymentController
from dockyard.controllers.endpoints import EndpointsController
from dockyard.controllers.garbage_collector import DEFAULT_RESOURCES, GarbageCollector
from dockyard.controllers.hpa import TOLERANCE, HorizontalPodAutoscalerController
from dockyard.controllers.node_lifecycle import LEASE_NAMESPACE, NodeLifecycleController
from dockyard.controllers.replicaset import ReplicaSetController

log = logging.getLogger(__name__)

ALL_CONTROLLERS = ("replicaset", "deployment", "garbagecollector", "nodelifecycle",
                   "horizontalpodautoscaling", "endpoints")


@dataclass
class ControllerOptions:
    """What the controllers are asked for (server flags map onto these fields)."""

    node_monitor_grace_period: float = 40.0
    workers: int = 4
    hpa_sync_period: float = 15.0
    hpa_tolerance: float = TOLERANCE
    hpa_downscale_stabilization: float = 300.0
    controllers: tuple[str, ...] = ALL_CONTROLLERS
    gc_resources: tuple[tuple[str, str], ...] = DEFAULT_RESOURCES
    resync_period: float | None = None
    sync_timeout: float = 60.0
    event_flush_timeout: float = 2.0

    def __post_init__(self) -> None:
        unknown = set(self.controllers) - set(ALL_CONTROLLERS)
        if unknown:
            raise ValueError(f"unknown controllers {sorted(unknown)}; "
                             f"choose from {', '.join(ALL_CONTROLLERS)}")
        if self.node_monitor_grace_period <= 0:
            raise ValueError("node_monitor_grace_period must be positive")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")


class ControllerManager:
    """Runs the enabled controllers over one set of shared informers."""

    def __init__(self, api: ApiClient, options: ControllerOptions) -> None:
        self.api = api
        self.options = options
        self.factory = InformerFactory(api, resync_period=options.resync_period)
        self.controllers: dict[str, Controller] = {}
        self.recorders: list[EventRecorder] = []
        self._task: asyncio.Task[None] | None = None

    def _recorder(self, component: str) -> EventRecorder:
        recorder = EventRecorder(self.api, component)
        self.recorders.append(recorder)
        return recorder

    def _build(self) -> None:
        opts, f, enabled = self.options, self.factory, set(self.options.controllers)
        pods = f.informer("v1", "pods")
        replicasets = f.informer("apps/v1", "replicasets")
        if "replicaset" in enabled:
            self.controllers["replicaset"] = ReplicaSetController(
                self.api, self._recorder("replicaset-controller"), replicasets, pods,
                opts.workers)
        if "deployment" in enabled:
            self.controllers["deployment"] = DeploymentController(
                self.api, self._recorder("deployment-controller"),
                f.informer("apps/v1", "deployments"), replicasets, pods, opts.workers)
        if "garbagecollector" in enabled:
            self.controllers["garbagecollector"] = GarbageCollector(
                self.api, self._recorder("garbage-collector"), f, opts.gc_resources,
                opts.workers)
        if "nodelifecycle" in enabled:
            self.controllers["nodelifecycle"] = NodeLifecycleController(
                self.api, self._recorder("node-controller"), f.informer("v1", "nodes"),
                f.informer("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE), pods,
                opts.node_monitor_grace_period, opts.workers)
        if "horizontalpodautoscaling" in enabled:
            self.controllers["horizontalpodautoscaling"] = HorizontalPodAutoscalerController(
                self.api, self._recorder("horizontal-pod-autoscaler"),
                f.informer("autoscaling/v2", "horizontalpodautoscalers"), pods,
                opts.hpa_sync_period, opts.hpa_tolerance, opts.hpa_downscale_stabilization,
                opts.workers)
        if "endpoints" in enabled:
            self.controllers["endpoints"] = EndpointsController(
                self.api, self._recorder("endpoint-controller"), f.informer("v1", "services"),
                f.informer("v1", "endpoints"), pods, opts.workers)

    async def start(self) -> None:
        """Start informers and controllers; wait (up to sync_timeout) for the caches."""
        if self._task is not None:
            return
        self._build()
        await self.factory.start()
        self._task = asyncio.create_task(self._run(), name="controller-manager")
        if not await self.factory.wait_for_sync(self.options.sync_timeout):
            # The workers still start once the caches fill; the server may just be slow.
            log.warning("controller informers not synced after %.0fs; controllers wait",
                        self.options.sync_timeout)

    async def _run(self) -> None:
        await self.factory.wait_for_sync()
        log.info("controllers running: %s", ", ".join(self.controllers))
        await asyncio.gather(*(c.run() for c in self.controllers.values()))

    async def stop(self) -> None:
        """Stop the controllers and informers and write the Events still queued."""
        for controller in self.controllers.values():
            controller.shut_down()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            # Stopping: a controller's last error has been logged by its worker already.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.factory.stop()
        await self._close_recorders(self.options.event_flush_timeout)

    async def _close_recorders(self, timeout: float) -> None:
        """Write queued Events for up to ``timeout`` seconds in all, then drop the rest."""
        closing = [asyncio.create_task(r.close()) for r in self.recorders]
        if not closing:
            return
        _, pending = await asyncio.wait(closing, timeout=timeout)
        for task in pending:
            task.cancel()
        # A shutdown must not wait on a long Event backlog (a server's SIGTERM would hang);
        # EventRecorder has no abort, so its writer task is cancelled here directly.
        for recorder in self.recorders:
            worker = getattr(recorder, "_worker", None)
            if isinstance(worker, asyncio.Task):
                worker.cancel()
        await asyncio.gather(*closing, return_exceptions=True)
