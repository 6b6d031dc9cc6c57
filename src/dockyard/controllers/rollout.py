"""Pure rollout arithmetic of the Deployment controller: templates, revisions, surge, status.

Everything here is a function of its arguments (no I/O, no clock unless passed in), so the
decisions Kubernetes users rely on are unit-tested directly:

- Templates are compared and hashed after ``normalize_template``: the ``pod-template-hash``
  label is dropped, pod-spec defaults are filled, and zero values (null, {}, [], "", false) are
  pruned. ``kubectl rollout undo`` sends an old ReplicaSet's template with
  ``"creationTimestamp": null`` and ``"resources": {}``; after normalising it equals the
  template it came from, so undo reuses that ReplicaSet instead of making a new revision.
- ``template_hash`` is a stable 32-bit hash of the normalised template (plus the collision
  count) written in Kubernetes' safe alphabet ("bcdfghjklmnpqrstvwxz2456789"), as the
  ``pod-template-hash`` label and the ReplicaSet name suffix.
- maxSurge rounds up and maxUnavailable rounds down (25% of 3: surge 1, unavailable 0); when
  both come to 0, maxUnavailable is 1 so a rollout can always make progress.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from dockyard.controllers.base import Obj, clone, meta
from dockyard.objects.meta import format_time, parse_time
from dockyard.objects.pod import apply_pod_spec_defaults

POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"

# Deployment annotations not copied to its ReplicaSets (Kubernetes' annotationsToSkip).
ANNOTATIONS_TO_SKIP = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Progressing condition reasons (Kubernetes' deploymentutil constants).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# --- defaults ------------------------------------------------------------------------------


def defaulted_spec(deployment: Obj) -> Obj:
    """Return a copy of a Deployment's spec with Kubernetes' defaults filled in."""
    spec = clone(deployment.get("spec") or {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("minReadySeconds", 0)
    strategy = spec.setdefault("strategy", {})
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxSurge", "25%")
        rolling.setdefault("maxUnavailable", "25%")
    return spec


# --- templates -----------------------------------------------------------------------------


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pruned = _prune(item)
            if pruned in (None, {}, [], "", False):
                continue
            out[key] = pruned
        return out
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


def normalize_template(template: Obj | None) -> Obj:
    """Return a pod template in the form templates are compared and hashed in."""
    copy = clone(template or {})
    labels = (copy.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    spec = copy.get("spec")
    if isinstance(spec, dict):
        apply_pod_spec_defaults(spec)
    pruned: Obj = _prune(copy)
    return pruned


def canonical_template(template: Obj | None) -> bytes:
    """Return the normalised template as canonical JSON bytes (sorted keys)."""
    return orjson.dumps(normalize_template(template), option=orjson.OPT_SORT_KEYS)


def templates_equal(a: Obj | None, b: Obj | None) -> bool:
    """Tell whether two pod templates are the same once normalised (ignoring the hash label)."""
    return canonical_template(a) == canonical_template(b)


def safe_encode(text: str) -> str:
    """Map each character into the alphabet without vowels, as Kubernetes' SafeEncodeString."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def template_hash(template: Obj | None, collision_count: int | None = None) -> str:
    """Return the pod-template-hash of a template (stable across runs and processes)."""
    digest = hashlib.sha256(canonical_template(template))
    if collision_count:
        digest.update(str(collision_count).encode())
    value = int.from_bytes(digest.digest()[:4], "big")
    return safe_encode(str(value))


# --- int-or-percent and the rolling update fenceposts --------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """Resolve an IntOrString ("25%" or 2) against ``total``, rounding as asked."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        try:
            return int(text)
        except ValueError as e:
            raise ValueError(f"invalid value for IntOrString: {value!r}") from e
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def fenceposts(spec: Obj) -> tuple[int, int]:
    """Return (maxSurge, maxUnavailable) of a defaulted spec; Recreate gives (0, 0)."""
    strategy = spec.get("strategy") or {}
    if strategy.get("type") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = int(spec.get("replicas") or 0)
    surge = scaled_value(rolling.get("maxSurge"), replicas, True)
    unavailable = scaled_value(rolling.get("maxUnavailable"), replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # otherwise a rollout could neither add nor remove a pod
    return surge, unavailable


def max_unavailable(spec: Obj) -> int:
    """Return how many pods may be unavailable (never more than the replicas)."""
    replicas = int(spec.get("replicas") or 0)
    if (spec.get("strategy") or {}).get("type") != "RollingUpdate" or replicas == 0:
        return 0
    return min(fenceposts(spec)[1], replicas)


def max_surge(spec: Obj) -> int:
    """Return how many pods may exist above the replicas during a rolling update."""
    return fenceposts(spec)[0]


# --- ReplicaSet helpers --------------------------------------------------------------------


def rs_replicas(rs: Obj | None) -> int:
    """Return a ReplicaSet's spec.replicas (0 for None)."""
    if rs is None:
        return 0
    return int((rs.get("spec") or {}).get("replicas", 1) or 0)


def rs_status(rs: Obj | None, field: str) -> int:
    """Return one integer field of a ReplicaSet's status (0 when absent)."""
    if rs is None:
        return 0
    return int((rs.get("status") or {}).get(field) or 0)


def revision_of(rs: Obj) -> int:
    """Return the revision annotation of a ReplicaSet (0 when absent or malformed)."""
    try:
        return int((meta(rs).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def max_revision(rss: list[Obj]) -> int:
    """Return the highest revision among ReplicaSets (0 for none)."""
    return max((revision_of(rs) for rs in rss), default=0)


def by_creation(rss: list[Obj]) -> list[Obj]:
    """Return ReplicaSets oldest first (ties by name), as ReplicaSetsByCreationTimestamp."""
    return sorted(rss, key=lambda rs: (str(meta(rs).get("creationTimestamp") or ""),
                                       str(meta(rs).get("name") or "")))


def find_new_replica_set(template: Obj | None, rss: list[Obj]) -> Obj | None:
    """Return the oldest ReplicaSet whose template equals the Deployment's, or None."""
    wanted = canonical_template(template)
    for rs in by_creation(rss):
        if canonical_template((rs.get("spec") or {}).get("template")) == wanted:
            return rs
    return None


def new_rs_replicas(spec: Obj, all_rss: list[Obj], new_rs: Obj | None) -> int:
    """Return the replicas the new ReplicaSet may have now (NewRSNewReplicas).

    RollingUpdate: grow it only up to replicas + maxSurge pods in total. Worked example:
    replicas 10, maxSurge 25% → 3; old RS at 10, new at 0 → 13 - 10 = 3 → new RS 3.
    Recreate: all the replicas at once.
    """
    replicas = int(spec.get("replicas") or 0)
    if (spec.get("strategy") or {}).get("type") != "RollingUpdate":
        return replicas
    current = sum(rs_replicas(rs) for rs in all_rss)
    new_current = rs_replicas(new_rs)
    max_total = replicas + max_surge(spec)
    if current >= max_total:
        return new_current
    scale_up = max_total - current
    return new_current + min(scale_up, replicas - new_current)


def old_rs_targets(spec: Obj, old_rss: list[Obj], new_rs: Obj | None) -> dict[str, int]:
    """Return the new spec.replicas of the old ReplicaSets a rolling update may scale down.

    First unhealthy old pods go (they serve nothing), then available ones while more than
    ``replicas - maxUnavailable`` stay available. Worked example: replicas 3, maxUnavailable
    0, maxSurge 1, old RS 3 available, new RS 1 not ready: all pods 4, minAvailable 3,
    new unavailable 1 → may scale down 4 - 3 - 1 = 0: the old pods keep serving.
    """
    old_count = sum(rs_replicas(rs) for rs in old_rss)
    if old_count == 0:
        return {}
    replicas = int(spec.get("replicas") or 0)
    all_pods = old_count + rs_replicas(new_rs)
    min_available = replicas - max_unavailable(spec)
    new_unavailable = rs_replicas(new_rs) - rs_status(new_rs, "availableReplicas")
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    targets = {str(meta(rs).get("name")): rs_replicas(rs) for rs in old_rss}
    ordered = by_creation(old_rss)
    cleaned = 0
    for rs in ordered:  # cleanupUnhealthyReplicas
        if cleaned >= max_scaled_down:
            break
        name = str(meta(rs).get("name"))
        unhealthy = rs_replicas(rs) - rs_status(rs, "availableReplicas")
        if targets[name] == 0 or unhealthy <= 0:
            continue
        cut = min(max_scaled_down - cleaned, unhealthy)
        targets[name] -= cut
        cleaned += cut
    available = rs_status(new_rs, "availableReplicas") + sum(
        rs_status(rs, "availableReplicas") for rs in old_rss)
    if available > min_available:  # scaleDownOldReplicaSetsForRollingUpdate
        left = available - min_available
        for rs in ordered:
            if left <= 0:
                break
            name = str(meta(rs).get("name"))
            cut = min(targets[name], left)
            targets[name] -= cut
            left -= cut
    return {name: n for name, n in targets.items()
            if n != rs_replicas(next(r for r in old_rss if meta(r).get("name") == name))}


# --- proportional scaling (a replicas change in the middle of a rollout) -------------------


def find_active_or_latest(new_rs: Obj | None, old_rss: list[Obj]) -> Obj | None:
    """Return the only active ReplicaSet, the newest when none is active, else None."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    candidates = ([new_rs] if new_rs is not None else []) + newest_first
    active = [rs for rs in candidates if rs_replicas(rs) > 0]
    if not active:
        return new_rs if new_rs is not None else newest_first[0]
    return active[0] if len(active) == 1 else None


def _max_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int((meta(rs).get("annotations") or {})[MAX_REPLICAS])
    except (KeyError, ValueError, TypeError):
        return None


def proportional_targets(spec: Obj, status_replicas: int, active: list[Obj]) -> dict[str, int]:
    """Return new sizes of active ReplicaSets for a replicas change during a rollout.

    Each ReplicaSet grows or shrinks in proportion to its share of the size it was last scaled
    for (the max-replicas annotation); leftovers go to the largest (newest on ties). Worked
    example: replicas 10 → 15, maxSurge 3 (was 3): old 8 and new 5 annotated 13; allowed 18,
    to add 5; new: round(5 * 18 / 13) - 5 = 2, old: round(8 * 18 / 13) - 8 = 3 → 11 and 7.
    """
    replicas = int(spec.get("replicas") or 0)
    surge = max_surge(spec)
    allowed = replicas + surge if replicas > 0 else 0
    total = sum(rs_replicas(rs) for rs in active)
    to_add = allowed - total
    newest_first = list(reversed(by_creation(active)))
    if to_add > 0:
        ordered = sorted(newest_first, key=lambda rs: -rs_replicas(rs))
    else:
        ordered = sorted(by_creation(active), key=lambda rs: -rs_replicas(rs))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        name = str(meta(rs).get("name"))
        current = rs_replicas(rs)
        if to_add == 0 or current == 0 or to_add == added:
            sizes[name] = current
            continue
        if replicas == 0:
            fraction = -current
        else:
            annotated = _max_replicas_annotation(rs) or status_replicas or current
            fraction = _round_half_away(current * (replicas + surge) / annotated) - current
        room = to_add - added
        proportion = min(fraction, room) if to_add > 0 else max(fraction, room)
        sizes[name] = current + proportion
        added += proportion
    if ordered and to_add != 0:
        first = str(meta(ordered[0]).get("name"))
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


def _round_half_away(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


# --- status and conditions -----------------------------------------------------------------


def get_condition(status: Obj, kind: str) -> Obj | None:
    """Return the condition of a type from a status, or None."""
    for cond in status.get("conditions") or []:
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def condition(kind: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    """Return a DeploymentCondition stamped ``now``."""
    stamp = format_time(now)
    return {"type": kind, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def set_condition(status: Obj, new: Obj) -> None:
    """Set a condition as SetDeploymentCondition: same status and reason change nothing."""
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    old = next((c for c in conditions if c.get("type") == new["type"]), None)
    if old is not None and old.get("status") == new["status"] and \
            old.get("reason") == new["reason"]:
        return
    if old is not None and old.get("status") == new["status"]:
        new = {**new, "lastTransitionTime": old.get("lastTransitionTime")}
    status["conditions"] = [c for c in conditions if c.get("type") != new["type"]] + [new]


def remove_condition(status: Obj, kind: str) -> None:
    """Remove a condition type from a status."""
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def calculate_status(deployment: Obj, spec: Obj, all_rss: list[Obj], new_rs: Obj | None,
                     now: datetime) -> Obj:
    """Return the Deployment status its ReplicaSets add up to, with the Available condition."""
    available = sum(rs_status(rs, "availableReplicas") for rs in all_rss)
    total = sum(rs_replicas(rs) for rs in all_rss)
    old_status = deployment.get("status") or {}
    status: Obj = {
        "observedGeneration": meta(deployment).get("generation") or 1,
        "replicas": sum(rs_status(rs, "replicas") for rs in all_rss),
        "updatedReplicas": rs_status(new_rs, "replicas"),
        "readyReplicas": sum(rs_status(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    if old_status.get("collisionCount") is not None:
        status["collisionCount"] = old_status["collisionCount"]
    if old_status.get("conditions"):
        status["conditions"] = clone(old_status["conditions"])
    replicas = int(spec.get("replicas") or 0)
    if available >= replicas - max_unavailable(spec):
        set_condition(status, condition("Available", "True", MIN_AVAILABLE,
                                        "Deployment has minimum availability.", now))
    else:
        set_condition(status, condition("Available", "False", MIN_UNAVAILABLE,
                                        "Deployment does not have minimum availability.", now))
    return status


def deployment_complete(spec: Obj, generation: int, status: Obj) -> bool:
    """Tell whether every replica is updated and available and the spec was observed."""
    replicas = int(spec.get("replicas") or 0)
    return (int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= generation)


def deployment_progressing(old: Obj, new: Obj) -> bool:
    """Tell whether the rollout moved since the last status (more updated/ready/available)."""
    def ints(status: Obj, field: str) -> int:
        return int(status.get(field) or 0)

    old_old = ints(old, "replicas") - ints(old, "updatedReplicas")
    new_old = ints(new, "replicas") - ints(new, "updatedReplicas")
    return (ints(new, "updatedReplicas") > ints(old, "updatedReplicas") or new_old < old_old
            or ints(new, "readyReplicas") > ints(old, "readyReplicas")
            or ints(new, "availableReplicas") > ints(old, "availableReplicas"))


def deployment_timed_out(spec: Obj, status: Obj, now: datetime) -> bool:
    """Tell whether the Progressing condition is older than progressDeadlineSeconds."""
    deadline = spec.get("progressDeadlineSeconds")
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and (now - since).total_seconds() > int(deadline)


def seconds_to_deadline(spec: Obj, status: Obj, now: datetime) -> float | None:
    """Return seconds until the progress deadline passes for a rollout in progress."""
    deadline = spec.get("progressDeadlineSeconds")
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return max(since.timestamp() + int(deadline) - now.timestamp(), 0.0) + 1.0


def utc_now() -> datetime:
    """Return the current time in UTC (whole seconds, as conditions store it)."""
    return datetime.now(UTC).replace(microsecond=0)
