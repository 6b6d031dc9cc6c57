"""Node lifecycle: notices dead nodes, taints them, and evicts their pods after tolerations.

A node's agent renews its Lease (``coordination.k8s.io/v1``, namespace ``kube-node-lease``, same
name as the node, ``spec.renewTime``) and posts the node's Ready condition. This controller
records, on its own monotonic clock, when it last saw either change (the heartbeat), so clock
skew between machines does not matter. Then, per node:

- heartbeat older than ``grace_period`` (``--node-monitor-grace-period``, default 40 s): set
  every condition to Unknown (Ready: reason NodeStatusUnknown), mark the node's pods not ready,
  record NodeNotReady events;
- taints follow the Ready condition: Unknown → ``node.kubernetes.io/unreachable``, False →
  ``node.kubernetes.io/not-ready`` (each NoExecute with timeAdded, plus NoSchedule), True → none;
  a cordoned node (spec.unschedulable) gets ``node.kubernetes.io/unschedulable:NoSchedule``;
- pods on a node with a NoExecute taint are deleted once their toleration runs out: at once if
  a taint is not tolerated, at ``timeAdded + tolerationSeconds`` if it is (never without
  tolerationSeconds). A dead node's agent cannot confirm a graceful delete, so evictions (and
  pods stuck terminating there) use gracePeriodSeconds=0, as Kubernetes' pod GC force-deletes
  them; their ReplicaSets then create replacements elsewhere.

Every toleration is honoured as the pod carries it. The cluster defaults
(``--default-not-ready-toleration-seconds``, ``--default-unreachable-toleration-seconds``) are
the api server's: its DefaultTolerationSeconds admission writes them into each new pod.

Invariants: timers are re-queues of the node key (``RequeueAfter``), so a restart loses nothing
(timeAdded lives in the taint); node and pod writes are compare-and-swap on copies.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass

from dockyard.client import (
    ApiClient,
    ConflictError,
    EventRecorder,
    Informer,
    NotFoundError,
    RequeueAfter,
)
from dockyard.client.informer import index_by_node_name
from dockyard.controllers.base import Controller, Obj, clone, is_deleting, meta
from dockyard.objects.meta import parse_time
from dockyard.objects.pod import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    is_pod_ready,
    is_terminal,
    tolerates,
)

log = logging.getLogger(__name__)

UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
OUR_TAINTS = (NOT_READY_TAINT, UNREACHABLE_TAINT, UNSCHEDULABLE_TAINT)
LEASE_NAMESPACE = "kube-node-lease"
NEVER = float("inf")


@dataclass
class _Heartbeat:
    marker: tuple[str, str]
    seen: float  # monotonic


# --- pure decisions ------------------------------------------------------------------------


def ready_status(node: Obj) -> str:
    """Return the node's Ready condition status: "True", "False" or "Unknown"."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            return str(cond.get("status") or "Unknown")
    return "Unknown"


def wanted_taints(ready: str, unschedulable: bool) -> set[tuple[str, str]]:
    """Return the (key, effect) taints this controller owns that the node should carry."""
    out: set[tuple[str, str]] = set()
    if ready == "False":
        out |= {(NOT_READY_TAINT, "NoExecute"), (NOT_READY_TAINT, "NoSchedule")}
    elif ready != "True":
        out |= {(UNREACHABLE_TAINT, "NoExecute"), (UNREACHABLE_TAINT, "NoSchedule")}
    if unschedulable:
        out.add((UNSCHEDULABLE_TAINT, "NoSchedule"))
    return out


def merged_taints(current: list[Obj], wanted: set[tuple[str, str]], now: float) -> list[Obj]:
    """Return the node's taints with ours replaced by ``wanted`` (others and timeAdded kept)."""
    kept = [t for t in current if t.get("key") not in OUR_TAINTS
            or (t.get("key"), t.get("effect")) in wanted]
    have = {(t.get("key"), t.get("effect")) for t in kept}
    for key, effect in sorted(wanted - have):
        taint: Obj = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = format_time_epoch(now)
        kept.append(taint)
    return kept


def format_time_epoch(now: float) -> str:
    """Format epoch seconds as metav1.Time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def toleration_seconds(toleration: Obj) -> float:
    """Return how long a toleration tolerates a taint (inf without tolerationSeconds).

    Zero and negative values mean evict at once, as Kubernetes reads them.
    """
    seconds = toleration.get("tolerationSeconds")
    if seconds is None:
        return NEVER
    return max(float(seconds), 0.0)


def eviction_time(pod: Obj, taints: list[Obj], now: float) -> float:
    """Return when a pod must leave a node with these taints (epoch seconds; inf = never)."""
    tolerations = [t for t in (pod.get("spec") or {}).get("tolerations") or []
                   if isinstance(t, dict)]
    when = NEVER
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return now  # an untolerated NoExecute taint evicts at once
        added = parse_time(taint.get("timeAdded"))
        start = added.timestamp() if added else now
        seconds = min(toleration_seconds(t) for t in matching)
        when = min(when, start + seconds)
    return when


def unknown_conditions(node: Obj, now: float) -> list[Obj]:
    """Return the node's conditions with every one set to Unknown (Ready added if missing)."""
    stamp = format_time_epoch(now)
    conditions = [clone(c) for c in (node.get("status") or {}).get("conditions") or []
                  if isinstance(c, dict)]
    if not any(c.get("type") == "Ready" for c in conditions):
        conditions.append({"type": "Ready", "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                           "message": "Kubelet never posted node status.",
                           "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
        return conditions
    for cond in conditions:
        if cond.get("status") != "Unknown":
            cond["status"] = "Unknown"
            cond["reason"] = "NodeStatusUnknown"
            cond["message"] = "Kubelet stopped posting node status."
            cond["lastTransitionTime"] = stamp
    return conditions


def _heartbeat_marker(node: Obj, lease: Obj | None) -> tuple[str, str]:
    renew = str(((lease or {}).get("spec") or {}).get("renewTime") or "")
    beat = ""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready":
            beat = str(cond.get("lastHeartbeatTime") or "")
    return renew, beat


# --- the controller ------------------------------------------------------------------------


class NodeLifecycleController(Controller):
    """Watches node heartbeats, keeps the not-ready/unreachable taints, evicts pods."""

    name = "nodelifecycle"

    def __init__(self, api: ApiClient, recorder: EventRecorder, nodes: Informer,
                 leases: Informer, pods: Informer, grace_period: float = 40.0,
                 workers: int = 4) -> None:
        super().__init__(api, recorder, workers)
        self.nodes = nodes
        self.leases = leases
        self.pods = pods
        self.grace_period = grace_period
        self._heartbeats: dict[str, _Heartbeat] = {}
        pods.add_index("node", index_by_node_name)
        nodes.add_handler(self._node_changed, lambda old, new: self._node_changed(new),
                          self._node_changed)
        leases.add_handler(self._lease_changed, lambda old, new: self._lease_changed(new), None)
        pods.add_handler(self._pod_changed, lambda old, new: self._pod_changed(new), None)

    def _observe(self, name: str) -> None:
        node = self.nodes.get(None, name)
        if node is None:
            return
        marker = _heartbeat_marker(node, self.leases.get(LEASE_NAMESPACE, name))
        seen = self._heartbeats.get(name)
        if seen is None or seen.marker != marker:
            self._heartbeats[name] = _Heartbeat(marker, time.monotonic())

    def _node_changed(self, node: Obj) -> None:
        name = str(meta(node).get("name"))
        self._observe(name)
        self.queue.add(name)

    def _lease_changed(self, lease: Obj) -> None:
        if meta(lease).get("namespace") != LEASE_NAMESPACE:
            return
        name = str(meta(lease).get("name"))
        self._observe(name)
        self.queue.add(name)

    def _pod_changed(self, pod: Obj) -> None:
        # A pod bound to a tainted node needs its own eviction timer.
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            return
        node = self.nodes.get(None, str(node_name))
        if node is None or any(t.get("key") in (NOT_READY_TAINT, UNREACHABLE_TAINT)
                               for t in (node.get("spec") or {}).get("taints") or []):
            self.queue.add(str(node_name))

    # ---- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        """Update one node's health, taints and evictions; re-queue for the next deadline."""
        cached = self.nodes.get(None, key)
        if cached is None:
            self._heartbeats.pop(key, None)
            await self._collect_orphans(key)
            return
        self._observe(key)
        age = time.monotonic() - self._heartbeats[key].seen
        node = clone(cached)
        now = time.time()
        if age > self.grace_period and ready_status(node) != "Unknown":
            node = await self._mark_unknown(node, now)
        ready = ready_status(node)
        if ready == "Unknown" and age <= self.grace_period and not _has_ready(node):
            # A node that registered but has not posted its first status yet: give its agent
            # the grace period before calling it unreachable.
            ready = "True"
        node = await self._sync_taints(node, wanted_taints(ready, bool(
            (node.get("spec") or {}).get("unschedulable"))), now)
        waits = [self.grace_period - age + 0.5] if age <= self.grace_period else []
        next_eviction = await self._evict(node, now)
        if next_eviction is not None:
            waits.append(next_eviction)
        if waits:
            # Nothing in the informers changes when a grace period or toleration runs out.
            raise RequeueAfter(max(min(waits), 0.1), "node heartbeat or eviction deadline")

    async def _mark_unknown(self, node: Obj, now: float) -> Obj:
        name = meta(node).get("name")
        was_ready = ready_status(node) == "True"
        node.setdefault("status", {})["conditions"] = unknown_conditions(node, now)
        updated: Obj = await self.api.resource("v1", "nodes").update_status(node)
        log.info("node %s: no heartbeat for %.0fs; Ready=Unknown", name, self.grace_period)
        if was_ready:
            self.recorder.event(_typed_node(node), "Normal", "NodeNotReady",
                                f"Node {name} status is now: NodeNotReady")
        await self._mark_pods_not_ready(str(name), now)
        return updated

    async def _mark_pods_not_ready(self, node_name: str, now: float) -> None:
        pods = self.api.resource("v1", "pods")
        for cached in self.pods.by_index("node", node_name):
            if not is_pod_ready(cached) or is_terminal(cached):
                continue
            pod = clone(cached)
            for cond in pod["status"].get("conditions") or []:
                if cond.get("type") == "Ready":
                    cond["status"] = "False"
                    cond["lastTransitionTime"] = format_time_epoch(now)
            # A pod that changed or went meanwhile is left to the next pass: the agent is
            # gone, so nothing else will mark it, and the eviction removes it anyway.
            with contextlib.suppress(NotFoundError, ConflictError):
                await pods.update_status(pod)
                self.recorder.event(_typed_pod(pod), "Warning", "NodeNotReady",
                                    "Node is not ready")

    async def _sync_taints(self, node: Obj, wanted: set[tuple[str, str]], now: float) -> Obj:
        current = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
        taints = merged_taints(current, wanted, now)
        if taints == current:
            return node
        node.setdefault("spec", {})["taints"] = taints
        if not taints:
            del node["spec"]["taints"]
        updated: Obj = await self.api.resource("v1", "nodes").update(node)
        return updated

    async def _evict(self, node: Obj, now: float) -> float | None:
        """Delete the pods whose toleration ran out; return seconds to the next eviction."""
        name = str(meta(node).get("name"))
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if isinstance(t, dict) and t.get("effect") == "NoExecute"]
        if not taints:
            return None
        soonest = NEVER
        for pod in self.pods.by_index("node", name):
            if is_terminal(pod):
                continue
            when = self._pod_deadline(pod, taints, now)
            if when <= now:
                await self._force_delete(pod, evicted=not is_deleting(pod))
            else:
                soonest = min(soonest, when)
        return None if soonest == NEVER else soonest - now + 0.1

    def _pod_deadline(self, pod: Obj, taints: list[Obj], now: float) -> float:
        if is_deleting(pod):
            # Its agent would have confirmed the kill by now; on a dead node it never will.
            started = parse_time(meta(pod).get("deletionTimestamp"))
            grace = int(meta(pod).get("deletionGracePeriodSeconds") or 0)
            return (started.timestamp() if started else now) + grace
        return eviction_time(pod, taints, now)

    async def _force_delete(self, pod: Obj, evicted: bool) -> None:
        namespace, name = meta(pod).get("namespace"), str(meta(pod).get("name"))
        if evicted:
            self.recorder.event(_typed_pod(pod), "Normal", "TaintManagerEviction",
                                f"Marking for deletion Pod {namespace}/{name}")
        with contextlib.suppress(NotFoundError):  # gone already is what we wanted
            await self.api.resource("v1", "pods", namespace).delete(
                name, grace_period_seconds=0, preconditions={"uid": str(meta(pod).get("uid"))})

    async def _collect_orphans(self, node_name: str) -> None:
        """Force-delete pods bound to a node that no longer exists (Kubernetes' pod GC)."""
        orphans = [p for p in self.pods.by_index("node", node_name)]
        if not orphans:
            return
        try:
            await self.api.resource("v1", "nodes").get(node_name)
            return  # the node exists; our cache is behind
        except NotFoundError:
            pass  # confirmed gone: its pods can never be confirmed dead by an agent
        for pod in orphans:
            await self._force_delete(pod, evicted=False)


def _has_ready(node: Obj) -> bool:
    return any(isinstance(c, dict) and c.get("type") == "Ready"
               for c in (node.get("status") or {}).get("conditions") or [])


def _typed_node(node: Obj) -> Obj:
    return {**node, "apiVersion": "v1", "kind": "Node"}


def _typed_pod(pod: Obj) -> Obj:
    return {**pod, "apiVersion": "v1", "kind": "Pod"}
