"""ReplicaSet controller: keeps exactly ``spec.replicas`` pods matching selector and template.

For each ReplicaSet key the reconcile claims pods (keeps its own that still match the selector,
adopts matching orphans, releases its pods that no longer match), then creates or deletes pods
to reach ``spec.replicas`` and writes ``status`` through /status.

Invariants:
- Pods are created from ``spec.template`` with ``generateName: <rs-name>-``, the template's
  labels and annotations, and an ownerReference with controller=true, blockOwnerDeletion=true.
- Creates and deletes are only sent when the previous ones were seen in the pod informer
  (``Expectations``), so a slow watch never causes double creates; creates go in slow-start
  batches (1, 2, 4, ...) that stop at the first failure, so a quota or a terminating namespace
  costs one failed request, not hundreds; at most ``BURST_REPLICAS`` per reconcile.
- Surplus pods are deleted in Kubernetes' order (``deletion_order``): unscheduled, pending,
  not ready, ready for the shortest time, most restarts, newest first.
- A pod that is terminal (Succeeded/Failed) or being deleted does not count as a replica.
- ``availableReplicas`` counts pods Ready for at least ``minReadySeconds``; the key is re-queued
  for the moment the next ready pod becomes available.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.client import (
    ApiClient,
    EventRecorder,
    Informer,
    NotFoundError,
    RequeueAfter,
    object_key,
)
from dockyard.client.informer import index_by_namespace
from dockyard.controllers.base import (
    Controller,
    Expectations,
    Obj,
    claim,
    clone,
    controller_ref,
    is_deleting,
    meta,
    owner_key,
    owner_reference,
    selector_of,
    write_status,
)
from dockyard.objects.doubling import doubling_sizes
from dockyard.objects.meta import parse_time
from dockyard.objects.pod import is_pod_ready, is_terminal, pod_phase

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # client-go's burstReplicas: most creates/deletes in one reconcile
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


# --- pure decisions ------------------------------------------------------------------------


def _stamp(value: Any) -> float:
    moment = parse_time(value)
    return moment.timestamp() if moment else 0.0


def ready_since(pod: Obj) -> float | None:
    """Return when the pod's Ready condition last became True (epoch seconds), or None."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == "Ready" and cond.get("status") == "True":
            return _stamp(cond.get("lastTransitionTime"))
    return None


def is_pod_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Tell whether a pod has been Ready for at least ``min_ready_seconds`` at ``now``."""
    since = ready_since(pod)
    if since is None or not is_pod_ready(pod):
        return False
    return min_ready_seconds <= 0 or since + min_ready_seconds <= now


def restart_count(pod: Obj) -> int:
    """Return the highest restartCount among the pod's containers."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses if isinstance(s, dict)),
               default=0)


def deletion_rank(pod: Obj) -> tuple[int, int, int, float, int, float]:
    """Return the sort key under which pods are deleted first (Kubernetes' ActivePods order).

    Smaller goes first: unscheduled before scheduled, Pending < Unknown < Running, not ready
    before ready, ready for a shorter time before longer, more restarts before fewer, newer
    before older.
    """
    scheduled = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    phase = _PHASE_RANK.get(pod_phase(pod), 0)
    ready = is_pod_ready(pod)
    since = ready_since(pod) or 0.0
    created = _stamp(meta(pod).get("creationTimestamp"))
    return (scheduled, phase, 1 if ready else 0, -since if ready else 0.0,
            -restart_count(pod), -created)


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """Return the ``count`` pods to delete first, in Kubernetes' order."""
    return sorted(pods, key=deletion_rank)[: max(count, 0)]


def is_active(pod: Obj) -> bool:
    """Tell whether a pod counts as a replica (not terminal, not being deleted)."""
    return not is_terminal(pod) and not is_deleting(pod)


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Return batch sizes 1, 2, 4, ... adding up to ``count`` (client-go's slowStartBatch)."""
    return doubling_sizes(count, initial)


def pod_from_template(rs: Obj) -> Obj:
    """Return a new Pod for a ReplicaSet from its template (generateName, labels, owner)."""
    template = clone((rs.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{meta(rs).get('name')}-",
        "namespace": meta(rs).get("namespace"),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [owner_reference(_with_type(rs))],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": template.get("spec") or {}}


def _with_type(rs: Obj) -> Obj:
    # Watch events may omit apiVersion/kind; the ownerReference needs both.
    return {**rs, "apiVersion": "apps/v1", "kind": "ReplicaSet"}


def fully_labeled(pod: Obj, template_labels: dict[str, str]) -> bool:
    """Tell whether a pod carries every label of the template with the same value."""
    labels = meta(pod).get("labels") or {}
    return all(labels.get(k) == v for k, v in template_labels.items())


def calculate_status(rs: Obj, pods: list[Obj], now: float, failure: str | None) -> Obj:
    """Return the ReplicaSet status for its active pods (``failure``: a create error)."""
    spec = rs.get("spec") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    status: Obj = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if fully_labeled(p, template_labels)),
        "readyReplicas": sum(1 for p in pods if is_pod_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_pod_available(p, min_ready, now)),
        "observedGeneration": meta(rs).get("generation") or 1,
    }
    conditions = [c for c in (rs.get("status") or {}).get("conditions") or []
                  if isinstance(c, dict) and c.get("type") != "ReplicaFailure"]
    if failure:
        old = next((c for c in (rs.get("status") or {}).get("conditions") or []
                    if isinstance(c, dict) and c.get("type") == "ReplicaFailure"), None)
        conditions.append({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": failure,
            "lastTransitionTime": (old or {}).get("lastTransitionTime") or _now_time(now),
        })
    if conditions:
        status["conditions"] = conditions
    return status


def _now_time(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def next_available_in(rs: Obj, pods: list[Obj], now: float) -> float | None:
    """Return seconds until the next ready-but-not-yet-available pod becomes available."""
    min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
    if min_ready <= 0:
        return None
    waits = [since + min_ready - now for p in pods
             if is_pod_ready(p) and (since := ready_since(p)) is not None
             and since + min_ready > now]
    return max(min(waits), 0.5) if waits else None


# --- the controller ------------------------------------------------------------------------


class ReplicaSetController(Controller):
    """Reconciles ReplicaSets against the pods they own."""

    name = "replicaset"

    def __init__(self, api: ApiClient, recorder: EventRecorder, replicasets: Informer,
                 pods: Informer, workers: int = 4) -> None:
        super().__init__(api, recorder, workers)
        self.replicasets = replicasets
        self.pods = pods
        self.expectations = Expectations()
        pods.add_index("namespace", index_by_namespace)
        replicasets.add_index("namespace", index_by_namespace)
        replicasets.add_handler(self.enqueue, self._rs_updated, self._rs_deleted)
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # ---- event handlers: only bookkeeping and keys ---------------------------------------

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        self.enqueue(new)

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(object_key(rs))
        self.enqueue(rs)

    def _owner_key(self, pod: Obj) -> str | None:
        return owner_key(pod, "ReplicaSet", self.replicasets)

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = meta(pod).get("labels") or {}
        for rs in self.replicasets.by_index("namespace", str(meta(pod).get("namespace"))):
            if selector_of(rs).matches(labels):
                self.enqueue(rs)

    def _pod_added(self, pod: Obj) -> None:
        if is_deleting(pod):
            # Seen for the first time already deleting (e.g. after a re-list): count it as
            # a delete so expectations do not wait for an event that will not come.
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if meta(old).get("resourceVersion") == meta(new).get("resourceVersion"):
            return  # a resync: the ReplicaSets get their own
        key = self._owner_key(new)
        if key is not None and is_deleting(new) and not is_deleting(old):
            # A graceful delete shows up as an update long before the pod is gone; that is
            # when the deletion we asked for has been observed.
            self.expectations.deletion_observed(key, object_key(new))
        old_key = self._owner_key(old)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
            rs = self.replicasets.get_by_key(key)
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and is_pod_ready(new) and not is_pod_ready(old):
                self.queue.add_after(key, min_ready + 0.5)
        elif controller_ref(new) is None and (
            meta(old).get("labels") != meta(new).get("labels") or controller_ref(old) is not None
        ):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # ---- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        """Claim pods, create or delete pods to reach spec.replicas, write status."""
        cached = self.replicasets.get_by_key(key)
        if cached is None:
            self.expectations.forget(key)  # deleted: the garbage collector removes its pods
            return
        rs = {**clone(cached), "apiVersion": "apps/v1", "kind": "ReplicaSet"}
        if self.selects_all(rs, "ReplicaSet"):
            return
        namespace = str(meta(rs).get("namespace"))
        pods = await claim(rs, self.pods.by_index("namespace", namespace),
                           self.api.resource("v1", "pods"))
        active = [p for p in pods if is_active(p)]
        failure: str | None = None
        if self.expectations.satisfied(key) and not is_deleting(rs):
            failure = await self._manage_replicas(key, rs, active)
        now = time.time()
        await write_status(self.api.resource("apps/v1", "replicasets"), rs,
                           cached.get("status") or {}, calculate_status(rs, active, now, failure))
        wait = next_available_in(rs, active, now)
        if wait is not None:
            # Nothing will change in the informer when minReadySeconds elapses: look again then.
            raise RequeueAfter(wait, "a ready pod becomes available")

    async def _manage_replicas(self, key: str, rs: Obj, active: list[Obj]) -> str | None:
        """Create or delete pods toward spec.replicas; return a create error message, if any."""
        wanted = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(active) - wanted
        if diff < 0:
            return await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            await self._delete_pods(key, rs, pods_to_delete(active, min(diff, BURST_REPLICAS)))
        return None

    async def _create_pods(self, key: str, rs: Obj, count: int) -> str | None:
        self.expectations.expect_creations(key, count)
        pods = self.api.resource("v1", "pods", meta(rs).get("namespace"))
        created = 0
        for batch in slow_start_batches(count):
            results = await asyncio.gather(
                *(self._create_one(pods.create, rs) for _ in range(batch)),
                return_exceptions=True,
            )
            errors = [r for r in results if isinstance(r, BaseException)]
            created += batch - len(errors)
            for _ in errors:
                self.expectations.creation_observed(key)  # no add event will come for it
            if errors:
                for _ in range(count - created - len(errors)):
                    self.expectations.creation_observed(key)  # skipped: never sent
                message = f"Error creating: {errors[0]}"
                self.recorder.event(rs, "Warning", "FailedCreate", message)
                return message
        return None

    async def _create_one(self, create: Callable[[Obj], Awaitable[Obj]], rs: Obj) -> Obj:
        pod = await create(pod_from_template(rs))
        self.recorder.event(rs, "Normal", "SuccessfulCreate",
                            f"Created pod: {meta(pod).get('name')}")
        return pod

    async def _delete_pods(self, key: str, rs: Obj, victims: list[Obj]) -> None:
        self.expectations.expect_deletions(key, [object_key(p) for p in victims])
        pods = self.api.resource("v1", "pods", meta(rs).get("namespace"))
        results = await asyncio.gather(
            *(pods.delete(str(meta(p).get("name"))) for p in victims), return_exceptions=True
        )
        first_error: BaseException | None = None
        for pod, result in zip(victims, results, strict=True):
            name = meta(pod).get("name")
            if isinstance(result, NotFoundError):
                self.expectations.deletion_observed(key, object_key(pod))  # already gone
            elif isinstance(result, BaseException):
                self.expectations.deletion_observed(key, object_key(pod))  # no event will come
                first_error = first_error or result
            else:
                self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        if first_error is not None:
            raise first_error  # retried with backoff
