"""Horizontal pod autoscaler: autoscaling/v2 HPAs on cpu and memory, Kubernetes' algorithm.

Every ``sync_period`` (15 s) per HPA: read the target's /scale (replicas and selector), read the
pods' usage from the resource metrics API (``GET /apis/metrics.k8s.io/v1beta1/namespaces/NS/
pods``), compute a replica count per metric and take the largest, stabilise and rate-limit it
with the HPA's ``behavior``, clamp to min/max replicas, and write the target's /scale.

The algorithm is Kubernetes' replica calculator, worked example: 4 pods requesting 500m cpu
using 400m each, target 50% → utilisation 80%, ratio 1.6 → ceil(1.6 × 4) = 7 replicas; a ratio
within 10% (``tolerance``) of 1 changes nothing. Pods without a metric count as using their
whole request when scaling down and nothing when scaling up; not-ready pods (cpu only) count as
using nothing when scaling up; deleting and failed pods are ignored. Scale-down takes the
highest recommendation of the stabilisation window (default 300 s); policies limit how many
pods (or what percent) may be added or removed per period (defaults: up max(4 pods, 100%) per
15 s, down 100% per 15 s).

An HPA is evaluated when it is created or its spec changes, then every period; its own
status writes do not trigger an evaluation (see ``spec_changed``). Each rescale records a
SuccessfulRescale event in Kubernetes' words: "New size: 3; reason: cpu resource utilization
(percentage of request) above target" when a metric drove it up, "New size: 1; reason: All
metrics below target" when down; the status written in the same pass carries the
currentMetrics (utilization) that made the decision.

Invariants: without metrics (the API absent, no pod reporting, a pod without a request) the
HPA gets ScalingActive=False, reason FailedGetResourceMetric, and the target is not scaled;
status (currentReplicas, desiredReplicas, currentMetrics, conditions, lastScaleTime) is written
through /status only when it changed; recommendation and scale-event history is per process.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

from dockyard.client import (
    ApiClient,
    ApiError,
    ConflictError,
    EventRecorder,
    Informer,
    NotFoundError,
    RequeueAfter,
    ServerUnreachableError,
    object_key,
)
from dockyard.client.informer import index_by_namespace
from dockyard.controllers.base import Controller, Obj, clone, is_deleting, meta
from dockyard.objects.meta import parse_time
from dockyard.objects.pod import pod_phase
from dockyard.objects.quantity import QuantityError, format_cpu_millis, parse_quantity
from dockyard.objects.resources import lookup_kind
from dockyard.objects.selectors import LabelSelector, SelectorError

log = logging.getLogger(__name__)

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
DEFAULT_SCALE_UP: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15},
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
DEFAULT_SCALE_DOWN: Obj = {"selectPolicy": "Max", "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}


class MetricsError(Exception):
    """The metrics needed to compute a replica count are not available."""


# --- the replica calculator ----------------------------------------------------------------


@dataclass
class PodSample:
    """One pod as the replica calculator sees it."""

    name: str
    usage: float | None  # None: no metric for this pod
    request: float | None  # None: a container has no request for the resource
    unready: bool = False
    ignored: bool = False


def _usage_ratio(metrics: dict[str, float], requests: dict[str, float] | None,
                 target: float) -> tuple[float, float]:
    """Return (usage ratio, current value): utilisation % when requests given, else average."""
    if requests is not None:
        total_requests = sum(requests[name] for name in metrics)
        if total_requests <= 0:
            raise MetricsError("no metrics returned matched known pods")
        utilization = int(sum(metrics.values()) * 100 / total_requests)
        return utilization / target, float(utilization)
    average = sum(metrics.values()) / len(metrics)
    return average / target, average


def replica_count(current: int, pods: list[PodSample], target: float, utilization: bool,
                  tolerance: float = TOLERANCE) -> tuple[int, float]:
    """Return (replicas, current metric value) for one metric, as Kubernetes computes them."""
    if not pods:
        raise MetricsError("no pods returned by selector while calculating replica count")
    counted = [p for p in pods if not p.ignored]
    metrics = {p.name: p.usage for p in counted if p.usage is not None and not p.unready}
    unready = [p for p in counted if p.unready and p.usage is not None]
    missing = [p for p in counted if p.usage is None]
    if not metrics:
        raise MetricsError("did not receive metrics for targeted pods (pods might be unready)")
    requests: dict[str, float] | None = None
    if utilization:
        absent = [p.name for p in counted if p.request is None or p.request <= 0]
        if absent:
            raise MetricsError(f"missing request for pod {absent[0]}")
        requests = {p.name: float(p.request or 0) for p in counted}
    ratio, value = _usage_ratio(metrics, requests, target)
    ready_count = len(metrics)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if abs(1.0 - ratio) <= tolerance:
            return current, value
        return math.ceil(ratio * ready_count), value
    for pod in missing:
        # Scaling down: assume the silent pods use their request (or the target); scaling
        # up: assume nothing, so a missing metric never inflates the result.
        fallback = (requests[pod.name] if requests is not None else target) if ratio < 1.0 else 0
        metrics[pod.name] = fallback
    if scale_up_with_unready:
        for pod in unready:
            metrics[pod.name] = 0.0
    new_ratio, _ = _usage_ratio(metrics, requests, target)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        return current, value
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current, value
    return replicas, value


# --- behavior: stabilisation and rate limits ------------------------------------------------


@dataclass
class History:
    """Per-HPA memory: recent recommendations and scale events (time, count)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    scale_up: list[tuple[float, int]] = field(default_factory=list)
    scale_down: list[tuple[float, int]] = field(default_factory=list)


def behavior_rules(hpa_spec: Obj, direction: str, down_window: float) -> Obj:
    """Return the scaleUp or scaleDown rules of an HPA with Kubernetes' defaults filled in."""
    given = ((hpa_spec.get("behavior") or {}).get(direction)) or {}
    default = DEFAULT_SCALE_UP if direction == "scaleUp" else {
        **DEFAULT_SCALE_DOWN, "stabilizationWindowSeconds": down_window}
    rules = {**default, **{k: v for k, v in given.items() if v is not None}}
    return rules


def stabilize(history: History, now: float, desired: int, current: int, up_window: float,
              down_window: float) -> int:
    """Return the stabilised recommendation and record ``desired`` in the history.

    Scale up to the lowest and down to the highest recommendation within the windows:
    recommendations [5, 3] in the last 300 s, current 5, desired 2 → stays 5.
    """
    up, down = desired, desired
    for stamp, replicas in history.recommendations:
        if stamp > now - up_window:
            up = min(up, replicas)
        if stamp > now - down_window:
            down = max(down, replicas)
    recommendation = max(current, up)
    recommendation = min(recommendation, down)
    horizon = now - max(up_window, down_window, 0.0)
    history.recommendations = [(t, r) for t, r in history.recommendations if t > horizon]
    history.recommendations.append((now, desired))
    return recommendation


def _changed_in(events: list[tuple[float, int]], period: float, now: float) -> int:
    return sum(change for stamp, change in events if stamp > now - period)


def scale_up_limit(current: int, events: list[tuple[float, int]], rules: Obj, now: float) -> int:
    """Return the most replicas the scaleUp policies allow now (Max/Min/Disabled select)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or []:
        start = current - _changed_in(events, float(policy.get("periodSeconds") or 15), now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposals.append(start + value)
        else:
            proposals.append(math.ceil(start * (1 + value / 100)))
    if not proposals:
        return current
    return min(proposals) if select == "Min" else max(proposals)


def scale_down_limit(current: int, events: list[tuple[float, int]], rules: Obj,
                     now: float) -> int:
    """Return the fewest replicas the scaleDown policies allow now."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    proposals = []
    for policy in rules.get("policies") or []:
        start = current + _changed_in(events, float(policy.get("periodSeconds") or 15), now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposals.append(start - value)
        else:
            proposals.append(int(start * (1 - value / 100)))
    if not proposals:
        return current
    return max(proposals) if select == "Min" else min(proposals)


def limit_rate(desired: int, current: int, min_replicas: int, max_replicas: int,
               history: History, up_rules: Obj, down_rules: Obj,
               now: float) -> tuple[int, str, str]:
    """Return (replicas, ScalingLimited reason, message) after policies and min/max."""
    if desired > current:
        limit = max(scale_up_limit(current, history.scale_up, up_rules, now), current)
        if max_replicas > limit:
            allowed, reason, message = limit, "ScaleUpLimit", \
                "the desired replica count is increasing faster than the maximum scale rate"
        else:
            allowed, reason, message = max_replicas, "TooManyReplicas", \
                "the desired replica count is more than the maximum replica count"
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, history.scale_down, down_rules, now), current)
        if min_replicas < limit:
            allowed, reason, message = limit, "ScaleDownLimit", \
                "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            allowed, reason, message = min_replicas, "TooFewReplicas", \
                "the desired replica count is less than the minimum replica count"
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale(history: History, old: int, new: int, now: float, keep: float = 1800.0) -> None:
    """Remember a rescale for the policies' periods."""
    if new > old:
        history.scale_up.append((now, new - old))
    elif new < old:
        history.scale_down.append((now, old - new))
    history.scale_up = [(t, c) for t, c in history.scale_up if t > now - keep]
    history.scale_down = [(t, c) for t, c in history.scale_down if t > now - keep]


# --- pods and metrics ----------------------------------------------------------------------


def _amount(resource: str, value: Any) -> float:
    # Exact: agents report cpu in nanocores ("123n"); rounding each to whole millicores
    # would inflate small readings.
    try:
        amount = parse_quantity(value)
        return float(amount * 1000 if resource == "cpu" else amount)
    except (QuantityError, ValueError, TypeError):
        return 0.0  # a malformed amount counts as none (validation should have refused it)


def pod_request(pod: Obj, resource: str) -> float | None:
    """Return the pod's summed request for a resource (millicores for cpu), None if missing."""
    total = 0.0
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = (container.get("resources") or {}).get("requests") or {}
        if resource not in requests:
            return None
        total += _amount(resource, requests[resource])
    return total


def pod_usage(item: Obj, resource: str) -> float:
    """Return a PodMetrics item's summed usage of a resource (millicores for cpu)."""
    return sum(_amount(resource, (c.get("usage") or {}).get(resource, 0))
               for c in item.get("containers") or [])


def cpu_unready(pod: Obj, now: float) -> bool:
    """Tell whether a pod's cpu sample is skipped when scaling up (Kubernetes' groupPods)."""
    started = parse_time((pod.get("status") or {}).get("startTime"))
    ready = next((c for c in (pod.get("status") or {}).get("conditions") or []
                  if c.get("type") == "Ready"), None)
    if started is None or ready is None:
        return True
    since = parse_time(ready.get("lastTransitionTime"))
    if started.timestamp() + CPU_INITIALIZATION_PERIOD > now:
        return ready.get("status") == "False"
    return ready.get("status") == "False" and since is not None and \
        started.timestamp() + INITIAL_READINESS_DELAY > since.timestamp()


def samples(pods: list[Obj], usage: dict[str, Obj], resource: str, now: float) -> list[PodSample]:
    """Return the calculator's view of the pods for one resource."""
    out = []
    for pod in pods:
        name = str(meta(pod).get("name"))
        item = usage.get(name)
        ignored = is_deleting(pod) or pod_phase(pod) == "Failed"
        unready = pod_phase(pod) == "Pending" or (resource == "cpu" and cpu_unready(pod, now))
        out.append(PodSample(name, pod_usage(item, resource) if item is not None else None,
                             pod_request(pod, resource), unready=unready, ignored=ignored))
    return out


def format_value(resource: str, value: float) -> str:
    """Format a resource amount as a quantity (cpu in millicores)."""
    return format_cpu_millis(int(value)) if resource == "cpu" else str(int(value))


def rescale_reason(metric: str, desired: int, current: int) -> str:
    """Return a metric-driven rescale's reason, as Kubernetes words it for its event."""
    if desired > current:
        return f"{metric} above target"  # the metric that asked for the most replicas
    return "All metrics below target"  # down only when every metric allows it


def set_hpa_condition(conditions: list[Obj], kind: str, status: str, reason: str,
                      message: str, now: float) -> None:
    """Set an HPA condition in place, keeping lastTransitionTime when the status holds."""
    stamp = _stamp(now)
    for cond in conditions:
        if cond.get("type") == kind:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = stamp
            cond.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": kind, "status": status, "lastTransitionTime": stamp,
                       "reason": reason, "message": message})


def spec_changed(old: Obj, new: Obj) -> bool:
    """Return True if an HPA update needs an evaluation now (its spec changed).

    Kubernetes evaluates an HPA once per sync period, whatever updates it meanwhile. Here a
    spec change is evaluated at once, but never a status change: each of our own status writes
    would start another evaluation and metrics read at once, in a chain, and the agents report
    0 cpu to reads less than a second apart.
    """
    return old.get("spec") != new.get("spec")


# --- the controller ------------------------------------------------------------------------


@dataclass
class _Evaluation:
    replicas: int
    metrics: list[Obj]
    reason: str


class HorizontalPodAutoscalerController(Controller):
    """Scales Deployments and ReplicaSets by their pods' cpu and memory use."""

    name = "horizontalpodautoscaling"

    def __init__(self, api: ApiClient, recorder: EventRecorder, hpas: Informer, pods: Informer,
                 sync_period: float = 15.0, tolerance: float = TOLERANCE,
                 downscale_stabilization: float = 300.0, workers: int = 4) -> None:
        super().__init__(api, recorder, workers)
        self.hpas = hpas
        self.pods = pods
        self.sync_period = sync_period
        self.tolerance = tolerance
        self.downscale_stabilization = downscale_stabilization
        self._history: dict[str, History] = {}
        pods.add_index("namespace", index_by_namespace)
        hpas.add_handler(self.enqueue, self._updated, self._deleted)

    def _updated(self, old: Obj, new: Obj) -> None:
        if spec_changed(old, new):
            self.enqueue(new)
        # else: our own status write, or a label edit; the periodic re-queue evaluates it

    def _deleted(self, hpa: Obj) -> None:
        self._history.pop(object_key(hpa), None)

    async def reconcile(self, key: str) -> None:
        """Compute and apply one HPA's desired replicas; re-queue for the next period."""
        cached = self.hpas.get_by_key(key)
        if cached is None:
            self._history.pop(key, None)
            return
        hpa = {**clone(cached), "apiVersion": "autoscaling/v2",
               "kind": "HorizontalPodAutoscaler"}
        status = await self._autoscale(key, hpa)
        if status != (cached.get("status") or {}):
            hpa["status"] = status
            try:
                await self.api.resource("autoscaling/v2", "horizontalpodautoscalers") \
                    .update_status(hpa)
            except NotFoundError:
                return  # deleted meanwhile
            except ConflictError:
                pass  # changed meanwhile: the next period writes a fresh status
        # Metrics change without any watch event: the HPA is re-evaluated every period.
        raise RequeueAfter(self.sync_period, "periodic HPA evaluation")

    async def _autoscale(self, key: str, hpa: Obj) -> Obj:
        spec = hpa.get("spec") or {}
        now = time.time()
        old = hpa.get("status") or {}
        conditions: list[Obj] = [clone(c) for c in old.get("conditions") or []]
        status: Obj = {"currentReplicas": old.get("currentReplicas", 0),
                       "desiredReplicas": old.get("desiredReplicas", 0),
                       "conditions": conditions}
        if old.get("lastScaleTime"):
            status["lastScaleTime"] = old["lastScaleTime"]
        if old.get("currentMetrics"):
            status["currentMetrics"] = old["currentMetrics"]
        if meta(hpa).get("generation"):
            status["observedGeneration"] = meta(hpa)["generation"]
        ref = spec.get("scaleTargetRef") or {}
        info = lookup_kind(str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""))
        namespace = str(meta(hpa).get("namespace"))
        try:
            if info is None or "scale" not in info.subresources:
                raise ApiError(404, "NotFound", f"no scale subresource for {ref.get('kind')}")
            scale = await self.api.resource(info.api_version, info.plural, namespace) \
                .get_subresource(str(ref.get("name")), "scale")
        except (ApiError, ServerUnreachableError) as e:
            message = f"the HPA controller was unable to get the target's current scale: {e}"
            set_hpa_condition(conditions, "AbleToScale", "False", "FailedGetScale", message, now)
            self.recorder.event(hpa, "Warning", "FailedGetScale", message)
            return status
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        status["currentReplicas"] = int((scale.get("status") or {}).get("replicas") or current)
        desired, reason = await self._desired(key, hpa, scale, current, status, now)
        if desired is None:
            status["desiredReplicas"] = current
            return status
        if desired != current:
            await self._rescale(hpa, info.api_version, info.plural, desired, reason, current)
            record_scale(self._history.setdefault(key, History()), current, desired, now)
            status["lastScaleTime"] = _stamp(now)
            set_hpa_condition(conditions, "AbleToScale", "True", "SucceededRescale",
                              f"the HPA controller was able to update the target scale to "
                              f"{desired}", now)
        status["desiredReplicas"] = desired
        return status

    async def _desired(self, key: str, hpa: Obj, scale: Obj, current: int, status: Obj,
                       now: float) -> tuple[int | None, str]:
        """Return (desired replicas or None when not scaling, rescale reason)."""
        spec = hpa.get("spec") or {}
        conditions = status["conditions"]
        min_replicas = int(spec.get("minReplicas") or 1)
        max_replicas = int(spec.get("maxReplicas") or min_replicas)
        if current == 0 and min_replicas != 0:
            set_hpa_condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                              "scaling is disabled since the replica count of the target is "
                              "zero", now)
            return None, ""
        if current > max_replicas:
            return max_replicas, "Current number of replicas above Spec.MaxReplicas"
        if current < min_replicas:
            return min_replicas, "Current number of replicas below Spec.MinReplicas"
        try:
            evaluation = await self._evaluate(hpa, scale, current, now)
        except MetricsError as e:
            set_hpa_condition(conditions, "ScalingActive", "False", "FailedGetResourceMetric",
                              str(e), now)
            self.recorder.event(hpa, "Warning", "FailedGetResourceMetric", str(e))
            return None, ""
        status["currentMetrics"] = evaluation.metrics
        set_hpa_condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                          f"the HPA was able to successfully calculate a replica count from "
                          f"{evaluation.reason}", now)
        return self._normalize(key, spec, current, evaluation, conditions, now)

    def _normalize(self, key: str, spec: Obj, current: int, evaluation: _Evaluation,
                   conditions: list[Obj], now: float) -> tuple[int, str]:
        history = self._history.setdefault(key, History())
        up = behavior_rules(spec, "scaleUp", self.downscale_stabilization)
        down = behavior_rules(spec, "scaleDown", self.downscale_stabilization)
        stabilized = stabilize(history, now, evaluation.replicas, current,
                               float(up.get("stabilizationWindowSeconds") or 0),
                               float(down.get("stabilizationWindowSeconds") or 0))
        if stabilized != evaluation.replicas:
            set_hpa_condition(conditions, "AbleToScale", "True", "ScaleDownStabilized",
                              "recent recommendations were higher than current one, applying "
                              "the highest recent recommendation", now)
        else:
            set_hpa_condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                              "recommended size matches current size", now)
        min_replicas = int(spec.get("minReplicas") or 1)
        max_replicas = int(spec.get("maxReplicas") or min_replicas)
        desired, reason, message = limit_rate(stabilized, current, min_replicas, max_replicas,
                                              history, up, down, now)
        set_hpa_condition(conditions, "ScalingLimited",
                          "False" if desired == stabilized else "True", reason, message, now)
        return desired, rescale_reason(evaluation.reason, desired, current)

    async def _evaluate(self, hpa: Obj, scale: Obj, current: int, now: float) -> _Evaluation:
        namespace = str(meta(hpa).get("namespace"))
        selector_text = str((scale.get("status") or {}).get("selector") or "")
        try:
            selector = LabelSelector.parse(selector_text)
        except SelectorError as e:
            raise MetricsError(f"invalid selector {selector_text!r}: {e}") from e
        pods = [p for p in self.pods.by_index("namespace", namespace)
                if selector.matches(meta(p).get("labels") or {})]
        best: _Evaluation | None = None
        statuses: list[Obj] = []
        usage: dict[str, Obj] | None = None
        for metric in (hpa.get("spec") or {}).get("metrics") or []:
            if metric.get("type") != "Resource":
                raise MetricsError(f"metric type {metric.get('type')!r} is not supported; "
                                   "use Resource (cpu or memory)")
            resource = str((metric.get("resource") or {}).get("name") or "")
            if usage is None:
                usage = await self._pod_metrics(namespace, selector_text, resource)
            replicas, entry, reason = self._one_metric(metric, resource, pods, usage, current,
                                                       now)
            statuses.append(entry)
            if best is None or replicas > best.replicas:
                best = _Evaluation(replicas, statuses, reason)
        if best is None:
            raise MetricsError("the HPA has no metrics")
        best.metrics = statuses
        return best

    def _one_metric(self, metric: Obj, resource: str, pods: list[Obj], usage: dict[str, Obj],
                    current: int, now: float) -> tuple[int, Obj, str]:
        target = (metric.get("resource") or {}).get("target") or {}
        pod_samples = samples(pods, usage, resource, now)
        if target.get("type") == "Utilization":
            goal = float(target.get("averageUtilization") or 0)
            replicas, value = replica_count(current, pod_samples, goal, True, self.tolerance)
            known = [s.usage for s in pod_samples if s.usage is not None]
            average = sum(known) / len(known) if known else 0.0
            current_value: Obj = {"averageUtilization": int(value),
                                  "averageValue": format_value(resource, average)}
            reason = f"{resource} resource utilization (percentage of request)"
        else:
            goal = _amount(resource, target.get("averageValue") or 0)
            if goal <= 0:
                raise MetricsError(f"invalid target for {resource}: {target!r}")
            replicas, value = replica_count(current, pod_samples, goal, False, self.tolerance)
            current_value = {"averageValue": format_value(resource, value)}
            reason = f"{resource} resource"
        entry = {"type": "Resource", "resource": {"name": resource, "current": current_value}}
        return replicas, entry, reason

    async def _pod_metrics(self, namespace: str, selector: str, resource: str) -> dict[str, Obj]:
        path = f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"
        try:
            body = await self.api.request("GET", path, params={"labelSelector": selector or None})
        except (ApiError, ServerUnreachableError) as e:
            raise MetricsError(f"unable to get metrics for resource {resource}: unable to fetch "
                               f"metrics from resource metrics API: {e}") from e
        items = body.get("items") if isinstance(body, dict) else None
        if not items:
            raise MetricsError(f"unable to get metrics for resource {resource}: no metrics "
                               "returned from resource metrics API")
        return {str(meta(i).get("name")): i for i in items if isinstance(i, dict)}

    async def _rescale(self, hpa: Obj, api_version: str, plural: str, desired: int,
                       reason: str, current: int) -> None:
        name = str(((hpa.get("spec") or {}).get("scaleTargetRef") or {}).get("name"))
        client = self.api.resource(api_version, plural, str(meta(hpa).get("namespace")))
        await client.patch(name, {"spec": {"replicas": desired}}, "merge", subresource="scale")
        log.info("hpa %s: %s %d → %d (%s)", object_key(hpa), name, current, desired, reason)
        self.recorder.event(hpa, "Normal", "SuccessfulRescale",
                            f"New size: {desired}; reason: {reason}")


def _stamp(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
