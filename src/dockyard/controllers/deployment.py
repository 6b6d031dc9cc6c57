"""Deployment controller: one ReplicaSet per pod template, rolled out and rolled back.

For each Deployment key the reconcile claims its ReplicaSets (adopting matching orphans,
releasing ones whose labels no longer match), finds the "new" ReplicaSet (the one whose
normalised template equals the Deployment's, see ``rollout.normalize_template``) and then, as
Kubernetes' deployment controller does:

- paused, or a change of replicas only (a scaling event): scale the active ReplicaSets
  proportionally, create nothing new;
- RollingUpdate: create the new ReplicaSet ``<name>-<pod-template-hash>`` if missing, grow it
  within maxSurge, shrink old ones while at least ``replicas - maxUnavailable`` pods stay
  available;
- Recreate: scale all old ReplicaSets to 0, wait until their pods are gone, then scale up the
  new one.

Invariants:
- Revisions: the new ReplicaSet carries ``deployment.kubernetes.io/revision`` = 1 + the highest
  old revision, so re-applying an old template (``kubectl rollout undo``) reuses that
  ReplicaSet and moves it to the newest revision; the Deployment carries the same annotation.
- The Deployment's annotations (``kubernetes.io/change-cause`` among them) are copied to its new
  ReplicaSet, except kubectl's last-applied configuration and the controller's own.
- Defaults (replicas 1, RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds
  600) are applied to a private copy of the spec and never written back, so the controller
  never bumps ``metadata.generation``.
- Status (replicas, updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
  observedGeneration, conditions Available and Progressing) is written through /status only when
  it changed; a rollout in progress is re-queued for its progress deadline.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime

from dockyard.client import (
    AlreadyExistsError,
    ApiClient,
    ConflictError,
    EventRecorder,
    Informer,
    NotFoundError,
    RequeueAfter,
    ResourceClient,
    object_key,
)
from dockyard.client.informer import index_by_namespace
from dockyard.controllers import rollout as ro
from dockyard.controllers.base import (
    Controller,
    Obj,
    claim,
    clone,
    controller_ref,
    index_by_controller_uid,
    is_deleting,
    meta,
    owner_key,
    owner_reference,
    selector_of,
    uid_of,
    write_status,
)
from dockyard.objects.pod import is_terminal

log = logging.getLogger(__name__)


def _typed(obj: Obj, api_version: str, kind: str) -> Obj:
    # Watch events may omit apiVersion/kind; events and ownerReferences need both.
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    return obj


class DeploymentController(Controller):
    """Reconciles Deployments into ReplicaSets."""

    name = "deployment"

    def __init__(self, api: ApiClient, recorder: EventRecorder, deployments: Informer,
                 replicasets: Informer, pods: Informer, workers: int = 4) -> None:
        super().__init__(api, recorder, workers)
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        for informer in (deployments, replicasets, pods):
            informer.add_index("namespace", index_by_namespace)
        pods.add_index("controller-uid", index_by_controller_uid)
        deployments.add_handler(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        replicasets.add_handler(self._rs_changed, self._rs_updated, self._rs_changed)
        pods.add_handler(None, None, self._pod_deleted)

    # ---- event handlers --------------------------------------------------------------------

    def _owner_key(self, rs: Obj) -> str | None:
        return owner_key(rs, "Deployment", self.deployments)

    def _rs_changed(self, rs: Obj) -> None:
        key = self._owner_key(rs)
        if key is not None:
            self.queue.add(key)
        elif controller_ref(rs) is None:
            labels = meta(rs).get("labels") or {}
            for d in self.deployments.by_index("namespace", str(meta(rs).get("namespace"))):
                if selector_of(d).matches(labels):
                    self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        old_key = self._owner_key(old)
        if old_key is not None and old_key != self._owner_key(new):
            self.queue.add(old_key)
        self._rs_changed(new)

    def _pod_deleted(self, pod: Obj) -> None:
        # Only Recreate waits for pods to be gone; other changes reach us via RS status.
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(meta(pod).get("namespace"), str(ref.get("name")))
        key = self._owner_key(rs) if rs is not None else None
        d = self.deployments.get_by_key(key) if key else None
        if d is not None and ((d.get("spec") or {}).get("strategy") or {}).get("type") == \
                "Recreate":
            self.queue.add(object_key(d))

    # ---- reconcile ------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        """Bring a Deployment's ReplicaSets and status to what its spec declares."""
        cached = self.deployments.get_by_key(key)
        if cached is None:
            return  # deleted: the garbage collector removes its ReplicaSets
        d = _typed(clone(cached), "apps/v1", "Deployment")
        d.setdefault("status", {})
        spec = ro.defaulted_spec(d)
        now = ro.utc_now()
        if self.selects_all(d, "deployment"):
            return
        namespace = str(meta(d).get("namespace"))
        rss = await claim(d, self.replicasets.by_index("namespace", namespace), self._rs_client())
        if is_deleting(d):
            new_rs, old_rss = await self._get_all(d, spec, rss, now, create=False)
            await self._write_status(d, cached, ro.calculate_status(
                d, spec, _all(new_rs, old_rss), new_rs, now))
            return
        self._paused_conditions(d, spec, now)
        if spec.get("paused") or self._is_scaling_event(spec, rss):
            await self._sync(d, cached, spec, rss, now)
        elif (spec.get("strategy") or {}).get("type") == "Recreate":
            await self._rollout_recreate(d, cached, spec, rss, now)
        else:
            await self._rollout_rolling(d, cached, spec, rss, now)

    def _rs_client(self, namespace: str | None = None) -> ResourceClient:
        return self.api.resource("apps/v1", "replicasets", namespace)

    def _is_scaling_event(self, spec: Obj, rss: list[Obj]) -> bool:
        replicas = int(spec.get("replicas") or 0)
        for rs in rss:
            if ro.rs_replicas(rs) <= 0:
                continue
            desired = (meta(rs).get("annotations") or {}).get(ro.DESIRED_REPLICAS)
            if desired is None:
                continue
            with contextlib.suppress(ValueError):  # a hand-edited annotation: not ours to judge
                if int(desired) != replicas:
                    return True
        return False

    def _paused_conditions(self, d: Obj, spec: Obj, now: datetime) -> None:
        status = d["status"]
        cond = ro.get_condition(status, "Progressing")
        if cond is not None and cond.get("reason") == ro.TIMED_OUT:
            return
        paused_cond = cond is not None and cond.get("reason") == ro.PAUSED
        if spec.get("paused") and not paused_cond:
            ro.set_condition(status, ro.condition("Progressing", "Unknown", ro.PAUSED,
                                                  "Deployment is paused", now))
        elif not spec.get("paused") and paused_cond:
            ro.set_condition(status, ro.condition("Progressing", "Unknown", ro.RESUMED,
                                                  "Deployment is resumed", now))

    # ---- the new and old ReplicaSets ------------------------------------------------------

    async def _get_all(self, d: Obj, spec: Obj, rss: list[Obj], now: datetime,
                       create: bool) -> tuple[Obj | None, list[Obj]]:
        """Return (new ReplicaSet or None, old ReplicaSets), syncing revisions."""
        found = ro.find_new_replica_set(spec.get("template"), rss)
        old_rss = [rs for rs in rss if found is None or uid_of(rs) != uid_of(found)]
        new_revision = ro.max_revision(old_rss) + 1
        if found is not None:
            new_rs = await self._sync_new_rs(d, spec, found, new_revision)
            await self._set_deployment_revision(d, ro.revision_of(new_rs))
            if ro.get_condition(d["status"], "Progressing") is None:
                ro.set_condition(d["status"], ro.condition(
                    "Progressing", "True", ro.FOUND_NEW_RS,
                    f'Found new replica set "{meta(new_rs).get("name")}"', now))
            return new_rs, old_rss
        if not create:
            return None, old_rss
        new_rs = await self._create_new_rs(d, spec, old_rss, new_revision, now)
        return new_rs, old_rss

    def _set_rs_annotations(self, d: Obj, spec: Obj, rs: Obj, revision: int,
                            exists: bool) -> bool:
        annotations = rs["metadata"].setdefault("annotations", {})
        changed = False
        for k, v in (meta(d).get("annotations") or {}).items():
            if k not in ro.ANNOTATIONS_TO_SKIP and annotations.get(k) != v:
                annotations[k] = v
                changed = True
        if ro.revision_of(rs) < revision:
            annotations[ro.REVISION] = str(revision)
            changed = True
        if not exists:
            annotations[ro.DESIRED_REPLICAS] = str(spec.get("replicas"))
            annotations[ro.MAX_REPLICAS] = str(int(spec.get("replicas") or 0) + ro.max_surge(spec))
            changed = True
        return changed

    async def _sync_new_rs(self, d: Obj, spec: Obj, found: Obj, revision: int) -> Obj:
        rs = clone(found)
        changed = self._set_rs_annotations(d, spec, rs, revision, exists=True)
        min_ready = int(spec.get("minReadySeconds") or 0)
        if int((rs.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            changed = True
        if not changed:
            return found
        updated: Obj = await self._rs_client().update(rs)
        return updated

    async def _set_deployment_revision(self, d: Obj, revision: int) -> None:
        annotations = meta(d).get("annotations") or {}
        if annotations.get(ro.REVISION) == str(revision):
            return
        cached = self.deployments.get_by_key(object_key(d))
        if cached is None:
            return
        body = clone(cached)
        body["metadata"].setdefault("annotations", {})[ro.REVISION] = str(revision)
        body["metadata"]["resourceVersion"] = meta(d).get("resourceVersion")
        try:
            updated = await self.api.resource("apps/v1", "deployments").update(body)
        except ConflictError:
            # The Deployment changed since this reconcile read it; its watch event brings the
            # fresh object and another reconcile.
            raise RequeueAfter(0.2, "deployment changed while setting its revision") from None
        d["metadata"]["annotations"] = updated["metadata"].get("annotations") or {}
        d["metadata"]["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def _create_new_rs(self, d: Obj, spec: Obj, old_rss: list[Obj], revision: int,
                             now: datetime) -> Obj:
        collisions = int(d["status"].get("collisionCount") or 0)
        pod_hash = ro.template_hash(spec.get("template"), collisions)
        template = clone(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[ro.POD_TEMPLATE_HASH] = \
            pod_hash
        selector = clone(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[ro.POD_TEMPLATE_HASH] = pod_hash
        name = f"{meta(d).get('name')}-{pod_hash}"
        replicas = ro.new_rs_replicas(spec, old_rss, None)
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": meta(d).get("namespace"),
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_reference(d)]},
            "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }
        self._set_rs_annotations(d, spec, rs, revision, exists=False)
        try:
            created: Obj = await self._rs_client(meta(d).get("namespace")).create(rs)
        except AlreadyExistsError:
            return await self._existing_or_collision(d, name, spec)
        if replicas > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {name} to {replicas} from 0")
        ro.set_condition(d["status"], ro.condition(
            "Progressing", "True", ro.NEW_RS_CREATED, f'Created new replica set "{name}"', now))
        await self._set_deployment_revision(d, revision)
        return created

    async def _existing_or_collision(self, d: Obj, name: str, spec: Obj) -> Obj:
        try:
            existing = await self._rs_client(meta(d).get("namespace")).get(name)
        except NotFoundError:
            raise RequeueAfter(0.5, "ReplicaSet name taken, then freed") from None
        ref = controller_ref(existing)
        if ref is not None and ref.get("uid") == uid_of(d) and ro.templates_equal(
                (existing.get("spec") or {}).get("template"), spec.get("template")):
            return existing  # ours, created by a previous reconcile the cache has not seen
        # A different template hashed to the same name: bump collisionCount so the next hash
        # differs (Kubernetes does the same).
        d["status"]["collisionCount"] = int(d["status"].get("collisionCount") or 0) + 1
        await self.api.resource("apps/v1", "deployments").update_status(d)
        raise RequeueAfter(0.1, f"hash collision on ReplicaSet {name}")

    async def _scale_rs(self, d: Obj, spec: Obj, rs: Obj, new_scale: int) -> bool:
        """Set a ReplicaSet's replicas (and replica annotations); return whether size changed."""
        old_scale = ro.rs_replicas(rs)
        replicas = int(spec.get("replicas") or 0)
        want = {ro.DESIRED_REPLICAS: str(replicas),
                ro.MAX_REPLICAS: str(replicas + ro.max_surge(spec))}
        annotations = meta(rs).get("annotations") or {}
        ann_change = any(annotations.get(k) != v for k, v in want.items())
        if old_scale == new_scale and not ann_change:
            return False
        body = clone(rs)
        body["spec"]["replicas"] = new_scale
        body["metadata"].setdefault("annotations", {}).update(want)
        await self._rs_client().update(body)
        if old_scale != new_scale:
            direction = "up" if new_scale > old_scale else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {direction} replica set {meta(rs).get('name')} "
                                f"to {new_scale} from {old_scale}")
        return old_scale != new_scale

    # ---- strategies ------------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, cached: Obj, spec: Obj, rss: list[Obj],
                               now: datetime) -> None:
        new_rs, old_rss = await self._get_all(d, spec, rss, now, create=True)
        assert new_rs is not None
        all_rss = _all(new_rs, old_rss)
        replicas = int(spec.get("replicas") or 0)
        if ro.rs_replicas(new_rs) != replicas:
            target = replicas if ro.rs_replicas(new_rs) > replicas else \
                ro.new_rs_replicas(spec, all_rss, new_rs)
            if await self._scale_rs(d, spec, new_rs, target):
                await self._sync_rollout_status(d, cached, spec, all_rss, new_rs, now)
                return
        active_old = [rs for rs in old_rss if ro.rs_replicas(rs) > 0]
        targets = ro.old_rs_targets(spec, active_old, new_rs)
        scaled = False
        for rs in active_old:
            name = str(meta(rs).get("name"))
            if name in targets:
                scaled = await self._scale_rs(d, spec, rs, targets[name]) or scaled
        if scaled:
            await self._sync_rollout_status(d, cached, spec, all_rss, new_rs, now)
            return
        if ro.deployment_complete(spec, meta(d).get("generation") or 1, cached.get("status") or {}):
            await self._cleanup(d, spec, old_rss)
        await self._sync_rollout_status(d, cached, spec, all_rss, new_rs, now)

    async def _rollout_recreate(self, d: Obj, cached: Obj, spec: Obj, rss: list[Obj],
                                now: datetime) -> None:
        new_rs, old_rss = await self._get_all(d, spec, rss, now, create=False)
        scaled = False
        for rs in old_rss:
            if ro.rs_replicas(rs) > 0:
                scaled = await self._scale_rs(d, spec, rs, 0) or scaled
        if scaled or self._old_pods_running(new_rs, old_rss):
            # Recreate never runs old and new pods together: wait for the old ones to go
            # (their deletion re-queues this Deployment).
            await self._sync_rollout_status(d, cached, spec, _all(new_rs, old_rss), new_rs, now)
            return
        if new_rs is None:
            new_rs, old_rss = await self._get_all(d, spec, rss, now, create=True)
            assert new_rs is not None
        await self._scale_rs(d, spec, new_rs, int(spec.get("replicas") or 0))
        if ro.deployment_complete(spec, meta(d).get("generation") or 1, cached.get("status") or {}):
            await self._cleanup(d, spec, old_rss)
        await self._sync_rollout_status(d, cached, spec, _all(new_rs, old_rss), new_rs, now)

    def _old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        if sum(ro.rs_status(rs, "replicas") for rs in old_rss) > 0:
            return True
        for rs in old_rss:
            if any(not is_terminal(p) for p in self.pods.by_index("controller-uid", uid_of(rs))):
                return True
        return False

    async def _sync(self, d: Obj, cached: Obj, spec: Obj, rss: list[Obj],
                    now: datetime) -> None:
        """Scale only (paused, or replicas changed): no new ReplicaSet, no rollout step."""
        new_rs, old_rss = await self._get_all(d, spec, rss, now, create=False)
        await self._scale(d, spec, new_rs, old_rss)
        if spec.get("paused"):
            await self._cleanup(d, spec, old_rss)
        await self._write_status(d, cached, ro.calculate_status(
            d, spec, _all(new_rs, old_rss), new_rs, now))

    async def _scale(self, d: Obj, spec: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        replicas = int(spec.get("replicas") or 0)
        only = ro.find_active_or_latest(new_rs, old_rss)
        if only is not None:
            if ro.rs_replicas(only) != replicas:
                await self._scale_rs(d, spec, only, replicas)
            return
        if _saturated(spec, new_rs):
            for rs in old_rss:
                if ro.rs_replicas(rs) > 0:
                    await self._scale_rs(d, spec, rs, 0)
            return
        if (spec.get("strategy") or {}).get("type") != "RollingUpdate":
            return
        active = [rs for rs in _all(new_rs, old_rss) if ro.rs_replicas(rs) > 0]
        sizes = ro.proportional_targets(spec, int(d["status"].get("replicas") or 0), active)
        for rs in active:
            await self._scale_rs(d, spec, rs, sizes[str(meta(rs).get("name"))])

    async def _cleanup(self, d: Obj, spec: Obj, old_rss: list[Obj]) -> None:
        """Delete the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit."""
        limit = spec.get("revisionHistoryLimit")
        if limit is None:
            return
        cleanable = [rs for rs in old_rss if not is_deleting(rs) and ro.rs_replicas(rs) == 0
                     and ro.rs_status(rs, "replicas") == 0
                     and ro.rs_status(rs, "observedGeneration")
                     >= (meta(rs).get("generation") or 1)]
        extra = len(cleanable) - int(limit)
        if extra <= 0:
            return
        cleanable.sort(key=lambda rs: (ro.revision_of(rs), str(meta(rs).get("creationTimestamp"))))
        for rs in cleanable[:extra]:
            with contextlib.suppress(NotFoundError):  # already gone is what we wanted
                await self._rs_client(meta(rs).get("namespace")).delete(str(meta(rs)["name"]))

    # ---- status ---------------------------------------------------------------------------

    async def _sync_rollout_status(self, d: Obj, cached: Obj, spec: Obj, all_rss: list[Obj],
                                   new_rs: Obj | None, now: datetime) -> None:
        status = ro.calculate_status(d, spec, all_rss, new_rs, now)
        old_status = cached.get("status") or {}
        cond = ro.get_condition(status, "Progressing")
        complete = (status.get("replicas") == status.get("updatedReplicas") and cond is not None
                    and cond.get("reason") == ro.NEW_RS_AVAILABLE)
        rs_name = meta(new_rs).get("name") if new_rs is not None else None
        generation = meta(d).get("generation") or 1
        if not complete:
            if ro.deployment_complete(spec, generation, status):
                message = (f'ReplicaSet "{rs_name}" has successfully progressed.' if rs_name
                           else "Deployment has successfully progressed.")
                ro.set_condition(status, ro.condition("Progressing", "True", ro.NEW_RS_AVAILABLE,
                                                      message, now))
            elif ro.deployment_progressing(old_status, status):
                message = (f'ReplicaSet "{rs_name}" is progressing.' if rs_name
                           else "Deployment is progressing.")
                new = ro.condition("Progressing", "True", ro.RS_UPDATED, message, now)
                if cond is not None and cond.get("status") == "True":
                    new["lastTransitionTime"] = cond.get("lastTransitionTime")
                ro.remove_condition(status, "Progressing")
                status.setdefault("conditions", []).append(new)
            elif ro.deployment_timed_out(spec, status, now):
                message = (f'ReplicaSet "{rs_name}" has timed out progressing.' if rs_name
                           else "Deployment has timed out progressing.")
                ro.set_condition(status, ro.condition("Progressing", "False", ro.TIMED_OUT,
                                                      message, now))
        await self._write_status(d, cached, status)
        if not ro.deployment_complete(spec, generation, status):
            wait = ro.seconds_to_deadline(spec, status, now)
            if wait is not None:
                # Nothing in the informers changes when the deadline passes: look again then.
                raise RequeueAfter(wait, "progress deadline check")

    async def _write_status(self, d: Obj, cached: Obj, status: Obj) -> None:
        await write_status(self.api.resource("apps/v1", "deployments"), d,
                           cached.get("status") or {}, status)


def _all(new_rs: Obj | None, old_rss: list[Obj]) -> list[Obj]:
    return ([new_rs] if new_rs is not None else []) + old_rss


def _saturated(spec: Obj, rs: Obj | None) -> bool:
    """Tell whether the new ReplicaSet runs all the replicas, all available."""
    if rs is None:
        return False
    replicas = int(spec.get("replicas") or 0)
    desired = (meta(rs).get("annotations") or {}).get(ro.DESIRED_REPLICAS)
    return (desired == str(replicas) and ro.rs_replicas(rs) == replicas
            and ro.rs_status(rs, "availableReplicas") == replicas)
