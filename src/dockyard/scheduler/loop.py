"""The live scheduler: pending pods from the api server, placed by the framework, bound.

Informers keep the Snapshot (nodes and every bound pod) and the SchedulingQueue (pods with no
node whose schedulerName is one of our profiles) up to date. One cycle at a time pops a pod,
runs its profile over the snapshot, *assumes* the placement (so the next cycle sees the
resources taken) and binds through ``pods/binding`` in the background; the informer's update
with ``spec.nodeName`` confirms the assumption, a failed binding forgets it and requeues.
A pod that fits nowhere gets PodScheduled=False/Unschedulable with the counted message, a
FailedScheduling event, a chance to preempt lower-priority pods, and is retried after the
cluster changes (queue backoff 1 s doubling to 10 s), never in a hot loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import socket
import time
from typing import Any

from dockyard.client.api import ApiClient
from dockyard.client.errors import ApiError, ConflictError, NotFoundError
from dockyard.client.events import EventRecorder
from dockyard.client.informer import Informer
from dockyard.scheduler.podinfo import PodInfo, pod_info
from dockyard.scheduler.preemption import Preemptor
from dockyard.scheduler.queue import SchedulingQueue
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.greedy import GreedyScheduler, ScheduleResult

Obj = dict[str, Any]
log = logging.getLogger(__name__)
DEFAULT_PROFILE = "default-scheduler"
IDLE_WAIT_SECONDS = 5.0
CYCLES_PER_YIELD = 64


class SchedulerLoop:
    """Watches pods and nodes and binds each pending pod to a node."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api
        self.snapshot = Snapshot()
        self.scheduler = GreedyScheduler(self.snapshot)
        default = self.scheduler.frameworks[DEFAULT_PROFILE]
        self.queue = SchedulingQueue(default.sort_key)
        self.pods = api.resource("v1", "pods")
        self.pod_informer = Informer(self.pods, name="scheduler-pods")
        self.node_informer = Informer(api.resource("v1", "nodes"), name="scheduler-nodes")
        self.pdb_informer = Informer(
            api.resource("policy/v1", "poddisruptionbudgets"), name="scheduler-pdbs"
        )
        self.events = EventRecorder(api, DEFAULT_PROFILE, socket.gethostname())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._binds: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Sync the informers, then run scheduling cycles in the background."""
        self.node_informer.add_handler(self._node_changed, self._node_updated, self._node_deleted)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        for informer in (self.node_informer, self.pdb_informer, self.pod_informer):
            await informer.start()
            await informer.wait_for_sync()
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        """Stop cycling and the informers; bindings in flight finish or are cancelled."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._binds):
            task.cancel()
        await asyncio.gather(*self._binds, return_exceptions=True)
        for informer in (self.pod_informer, self.pdb_informer, self.node_informer):
            await informer.stop()
        await self.events.close()

    # --- informer handlers (run in the informer's task; they only touch memory) -----------

    def _node_changed(self, node: Obj) -> None:
        self.snapshot.update_node(node) if node["metadata"][
            "name"
        ] in self.snapshot.index else self.snapshot.add_node(node)
        self._cluster_changed()

    def _node_updated(self, old: Obj, new: Obj) -> None:
        self._node_changed(new)

    def _node_deleted(self, node: Obj) -> None:
        self.snapshot.remove_node(node["metadata"]["name"])

    def _pod_added(self, pod: Obj) -> None:
        key = _key(pod)
        spec = pod.get("spec") or {}
        if _finished(pod) or pod["metadata"].get("deletionTimestamp") and not spec.get("nodeName"):
            self.queue.delete(key)
            if key in self.snapshot.pods and _finished(pod):
                self.snapshot.remove_pod(key)
                self._cluster_changed()
            return
        if spec.get("nodeName"):
            self.queue.delete(key)
            self.snapshot.add_pod(pod)
            return
        if spec.get("schedulerName", DEFAULT_PROFILE) in self.scheduler.frameworks:
            self.queue.add(pod_info(pod), time.monotonic())
            self._wake.set()

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        self._pod_added(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = _key(pod)
        self.queue.delete(key)
        if key in self.snapshot.pods:
            self.snapshot.remove_pod(key)
            self._cluster_changed()

    def _cluster_changed(self) -> None:
        self.queue.move_all_to_active(time.monotonic())
        self._wake.set()

    # --- the cycle ------------------------------------------------------------------------

    async def _run(self) -> None:
        cycles = 0
        while True:
            pi = self.queue.pop(time.monotonic())
            if pi is None:
                await self._idle()
                continue
            try:
                await self._schedule(pi)
            except Exception:  # one pod's failure must not stop scheduling for the rest
                log.exception("scheduling %s failed; it will be retried", pi.key)
                self.queue.unschedulable(pi.key, time.monotonic())
            cycles += 1
            if cycles % CYCLES_PER_YIELD == 0:
                await asyncio.sleep(0)  # let informer updates and bindings run

    async def _idle(self) -> None:
        self._wake.clear()
        ready = self.queue.next_ready()
        timeout = IDLE_WAIT_SECONDS if ready is None else max(ready - time.monotonic(), 0.01)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _schedule(self, pi: PodInfo) -> None:
        current = self.pod_informer.get(pi.namespace, pi.name)
        if current is None or (current.get("spec") or {}).get("nodeName"):
            self.queue.delete(pi.key)  # deleted or bound meanwhile: nothing to do
            return
        result = self.scheduler.schedule_one(pi)
        if result.node is None:
            await self._unschedulable(pi, result)
            return
        self.snapshot.assume(pi, result.node)
        self.queue.done(pi.key)
        task = asyncio.create_task(self._bind(pi, result.node))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _bind(self, pi: PodInfo, node: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pi.name, "namespace": pi.namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        try:
            await self.pods.in_namespace(pi.namespace).create_subresource(
                pi.name, "binding", binding
            )
        except (ConflictError, NotFoundError):
            # Bound by someone else, or deleted: the informer's next event settles it.
            self._forget(pi)
            return
        except ApiError as error:
            log.warning("binding %s to %s failed: %s; retrying", pi.key, node, error)
            self._forget(pi)
            self.queue.add(pi, time.monotonic())
            self.queue.unschedulable(pi.key, time.monotonic())
            return
        self.events.event(
            pi.pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {pi.namespace}/{pi.name} to {node}",
        )

    def _forget(self, pi: PodInfo) -> None:
        if pi.key in self.snapshot.assumed:
            self.snapshot.forget(pi.key)

    async def _unschedulable(self, pi: PodInfo, result: ScheduleResult) -> None:
        message = result.message
        nominated = await self._preempt(pi, result)
        self.queue.unschedulable(pi.key, time.monotonic())
        self.events.event(pi.pod, "Warning", "FailedScheduling", message)
        await self._set_unschedulable_condition(pi, message, nominated)

    async def _preempt(self, pi: PodInfo, result: ScheduleResult) -> str | None:
        """Delete the lowest-cost victims on the best node; return the nominated node."""
        if pi.priority <= 0 or result.diagnosis is None:
            return None
        framework = self.scheduler.framework_for(pi)
        if framework is None:
            return None
        preemption = Preemptor(self.snapshot, framework, self.pdb_informer.list()).preempt(
            pi, result.diagnosis
        )
        if preemption.node is None:
            return None
        for victim in preemption.victims:
            self.events.event(
                victim.pod,
                "Normal",
                "Preempted",
                f"Preempted by pod {pi.namespace}/{pi.name} on node {preemption.node}",
            )
            with contextlib.suppress(NotFoundError):
                await self.pods.in_namespace(victim.namespace).delete(victim.name)
        return preemption.node

    async def _set_unschedulable_condition(
        self, pi: PodInfo, message: str, nominated: str | None
    ) -> None:
        current = self.pod_informer.get(pi.namespace, pi.name) or pi.pod
        status = current.get("status") or {}
        for condition in status.get("conditions") or []:
            if (
                condition.get("type") == "PodScheduled"
                and condition.get("message") == message
                and status.get("nominatedNodeName") == nominated
            ):
                return  # already says so: writing again would only churn watchers
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch: Obj = {
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastProbeTime": None,
                        "lastTransitionTime": now,
                    }
                ]
            }
        }
        if nominated:
            patch["status"]["nominatedNodeName"] = nominated
        with contextlib.suppress(NotFoundError):
            await self.pods.in_namespace(pi.namespace).patch(
                pi.name, patch, "strategic", subresource="status"
            )


def _key(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def _finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
