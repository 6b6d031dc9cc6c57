"""The scheduling framework: extension points, plugin interfaces, Status values and Profiles.

Role: kube-scheduler's framework in small: a Profile names the plugins at each extension point
(queue sort, pre-filter, filter, score, reserve, permit, bind) and the weight of each score;
a ``Framework`` runs one profile's plugins for one pod against a ``Snapshot``.

Invariants:
- Plugins never raise to say no: every answer is a ``Status`` value with a ``Code`` and
  reasons taken from ``scheduler.reasons``; exceptions mean a bug or bad input.
- Filters are vectorised: ``filter`` returns a boolean mask over all nodes (``None`` means
  "every node passes", the cheap answer for a pod the rule does not concern); ``explain``
  gives the Status for one rejected node and runs only when a pod fits nowhere, so the fast
  path never builds strings.
- Scores return one float per candidate node, already normalised to 0..100 (kube's
  NormalizeScore folded in), or ``None`` when the plugin ranks all candidates equally; the
  framework sums weight × score. A node's diagnosis is the first filter that rejected it, in
  profile order, as kube-scheduler reports it.
- ``CycleState`` lives for one pod's cycle; plugins keep their pre-filter results in it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from dockyard.scheduler.reasons import fit_error_message

if TYPE_CHECKING:
    from dockyard.scheduler.podinfo import PodInfo
    from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray
Obj = dict[str, Any]


class Code(enum.IntEnum):
    """The outcome of a plugin call, as kube-scheduler's framework.Code."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


@dataclass(frozen=True, slots=True)
class Status:
    """A plugin's answer: a code, the reasons behind it and the plugin that gave it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        """Return whether the code is SUCCESS."""
        return self.code == Code.SUCCESS

    @property
    def resolvable(self) -> bool:
        """Return whether preemption could turn this rejection into a fit."""
        return self.code == Code.UNSCHEDULABLE

    def message(self) -> str:
        """Return the reasons joined as one line."""
        return ", ".join(self.reasons)


SUCCESS = Status()


def unschedulable(plugin: str, *reasons: str) -> Status:
    """Return an UNSCHEDULABLE status (preemption may help)."""
    return Status(Code.UNSCHEDULABLE, reasons, plugin)


def unresolvable(plugin: str, *reasons: str) -> Status:
    """Return an UNSCHEDULABLE_AND_UNRESOLVABLE status (preemption cannot help)."""
    return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)


def skip(plugin: str) -> Status:
    """Return a SKIP status: the plugin has nothing to say about this pod."""
    return Status(Code.SKIP, (), plugin)


@dataclass(slots=True)
class CycleState:
    """Scratch space for one pod's scheduling cycle."""

    data: dict[str, Any] = field(default_factory=dict)
    skipped: set[str] = field(default_factory=set)


class Plugin:
    """Base of every plugin: a name, unique in the registry."""

    name: ClassVar[str] = ""


class QueueSortPlugin(Plugin):
    """Orders the scheduling queue: smaller keys are scheduled first."""

    def sort_key(self, pi: PodInfo, enqueued: float) -> tuple[Any, ...]:
        """Return the pod's position key in the queue."""
        raise NotImplementedError


class PreFilterPlugin(Plugin):
    """Computes per-pod state once, or rejects a pod before any node is looked at."""

    def pre_filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Status:
        """Return SUCCESS, SKIP (filter and score need not run) or a rejection."""
        raise NotImplementedError


class FilterPlugin(Plugin):
    """Decides which nodes can run the pod."""

    # True when ``explain`` gives the same Status for every rejected node
    same_reason_everywhere: ClassVar[bool] = False

    def filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array | None:
        """Return a boolean mask of nodes that pass, or None when all pass."""
        raise NotImplementedError

    def explain(self, state: CycleState, pi: PodInfo, snap: Snapshot, i: int) -> Status:
        """Return the Status for node i, which ``filter`` rejected."""
        raise NotImplementedError

    def explain_many(
        self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array
    ) -> list[Status]:
        """Return the Status of each rejected node in idx (plugins may vectorise this)."""
        if self.same_reason_everywhere and len(idx):
            return [self.explain(state, pi, snap, int(idx[0]))] * len(idx)
        return [self.explain(state, pi, snap, int(i)) for i in idx]


class ScorePlugin(Plugin):
    """Ranks the nodes that passed every filter."""

    def score(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array | None:
        """Return scores 0..100 for the candidate nodes idx, or None when all rank equal."""
        raise NotImplementedError


class ReservePlugin(Plugin):
    """Claims resources for the chosen node before binding; undone by ``unreserve``."""

    def reserve(self, state: CycleState, pi: PodInfo, snap: Snapshot, node: str) -> Status:
        """Return SUCCESS once the pod's claim on the node is recorded."""
        raise NotImplementedError

    def unreserve(self, state: CycleState, pi: PodInfo, snap: Snapshot, node: str) -> None:
        """Release what ``reserve`` claimed."""
        raise NotImplementedError


class PermitPlugin(Plugin):
    """Approves, delays (WAIT) or denies a reserved placement before it is bound."""

    def permit(self, state: CycleState, pi: PodInfo, node: str) -> tuple[Status, float]:
        """Return the verdict and, for WAIT, how many seconds to wait at most."""
        raise NotImplementedError


class Binder(Protocol):
    """Where bindings go: the live loop posts them to the api server's pods/binding."""

    async def create_binding(self, namespace: str, name: str, binding: Obj) -> None:
        """Create the Binding subresource for the pod."""


class BindPlugin(Plugin):
    """Binds the pod to its node."""

    async def bind(self, state: CycleState, pi: PodInfo, node: str, binder: Binder) -> Status:
        """Return SUCCESS once the binding is made, SKIP to let the next bind plugin try."""
        raise NotImplementedError


@dataclass(frozen=True)
class Profile:
    """Which plugins run at each extension point, and each score's weight."""

    name: str
    queue_sort: str = "PrioritySort"
    filters: tuple[str, ...] = ()
    scores: tuple[tuple[str, int], ...] = ()
    reserve: tuple[str, ...] = ()
    permit: tuple[str, ...] = ()
    bind: tuple[str, ...] = ("DefaultBinder",)
    # None: kube-scheduler's adaptive share (50% - nodes/125, at least 5% and 100 nodes);
    # 100: score every feasible node.
    percentage_of_nodes_to_score: int | None = 100


@dataclass(slots=True)
class Diagnosis:
    """Why a pod fits on no node: the first rejecting Status of every node."""

    total: int
    statuses: dict[int, Status]
    pre_filter: Status | None = None

    def message(self) -> str:
        """Return kube-scheduler's "0/N nodes are available: ..." message."""
        if self.pre_filter is not None:
            return fit_error_message(self.total, (), self.pre_filter.message())
        reasons = [r for status in self.statuses.values() for r in status.reasons]
        return fit_error_message(self.total, reasons)

    def resolvable_nodes(self) -> list[int]:
        """Return the nodes whose rejection preemption might resolve."""
        if self.pre_filter is not None:
            return []
        return [i for i, status in self.statuses.items() if status.resolvable]


class Framework:
    """One profile's plugins, run for one pod at a time."""

    def __init__(self, profile: Profile, registry: dict[str, type[Plugin]]) -> None:
        self.profile = profile

        def make(name: str) -> Any:
            if name not in registry:
                raise ValueError(f"profile {profile.name!r} names unknown plugin {name!r}")
            return registry[name]()

        self.queue_sort: QueueSortPlugin = make(profile.queue_sort)
        self.filters: list[FilterPlugin] = [make(n) for n in profile.filters]
        self.pre_filters: list[PreFilterPlugin] = [
            p for p in self.filters if isinstance(p, PreFilterPlugin)
        ]
        self.scores: list[tuple[ScorePlugin, int]] = [(make(n), w) for n, w in profile.scores]
        self.pre_filters += [
            p
            for p, _ in self.scores
            if isinstance(p, PreFilterPlugin) and p not in self.pre_filters
        ]
        self.reserves: list[ReservePlugin] = [make(n) for n in profile.reserve]
        self.permits: list[PermitPlugin] = [make(n) for n in profile.permit]
        self.binders: list[BindPlugin] = [make(n) for n in profile.bind]

    def run_pre_filter(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Status:
        """Run every pre-filter; return the first rejection, or SUCCESS."""
        for plugin in self.pre_filters:
            status = plugin.pre_filter(state, pi, snap)
            if status.code == Code.SKIP:
                state.skipped.add(plugin.name)
            elif not status.ok:
                return status
        return SUCCESS

    def run_filters(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Array:
        """Return the mask of nodes that pass every filter."""
        mask: Array | None = None
        skipped = state.skipped
        for plugin in self.filters:
            if plugin.name in skipped:
                continue
            passed = plugin.filter(state, pi, snap)
            if passed is not None:
                mask = passed if mask is None else mask & passed
        return np.ones(snap.n, bool) if mask is None else mask

    def diagnose(self, state: CycleState, pi: PodInfo, snap: Snapshot) -> Diagnosis:
        """Return each rejected node's first rejecting Status, in filter order."""
        remaining = np.ones(snap.n, bool)
        statuses: dict[int, Status] = {}
        for plugin in self.filters:
            if plugin.name in state.skipped:
                continue
            passed = plugin.filter(state, pi, snap)
            if passed is None:
                continue
            rejected = np.flatnonzero(remaining & ~passed)
            for i, status in zip(
                rejected.tolist(), plugin.explain_many(state, pi, snap, rejected), strict=True
            ):
                statuses[i] = status
            remaining &= passed
        return Diagnosis(snap.n, statuses)

    def run_scores(self, state: CycleState, pi: PodInfo, snap: Snapshot, idx: Array) -> Array:
        """Return the weighted sum of every score for the candidate nodes idx."""
        total = np.zeros(len(idx))
        skipped = state.skipped
        for plugin, weight in self.scores:
            if plugin.name in skipped:
                continue
            values = plugin.score(state, pi, snap, idx)
            if values is not None:
                total += weight * values
        return total

    def run_reserve(self, state: CycleState, pi: PodInfo, snap: Snapshot, node: str) -> Status:
        """Run every reserve plugin; on a failure undo those that succeeded."""
        done: list[ReservePlugin] = []
        for plugin in self.reserves:
            status = plugin.reserve(state, pi, snap, node)
            if not status.ok:
                for earlier in reversed(done):
                    earlier.unreserve(state, pi, snap, node)
                return status
            done.append(plugin)
        return SUCCESS

    def run_unreserve(self, state: CycleState, pi: PodInfo, snap: Snapshot, node: str) -> None:
        """Undo every reserve plugin, last first."""
        for plugin in reversed(self.reserves):
            plugin.unreserve(state, pi, snap, node)

    def run_permit(self, state: CycleState, pi: PodInfo, node: str) -> tuple[Status, float]:
        """Return the first non-SUCCESS permit verdict (longest WAIT wins), or SUCCESS."""
        wait: tuple[Status, float] | None = None
        for plugin in self.permits:
            status, timeout = plugin.permit(state, pi, node)
            if status.code == Code.WAIT:
                wait = (status, max(timeout, wait[1] if wait else 0.0))
            elif not status.ok:
                return status, 0.0
        return wait or (SUCCESS, 0.0)

    async def run_bind(self, state: CycleState, pi: PodInfo, node: str, binder: Binder) -> Status:
        """Run bind plugins until one does not SKIP."""
        for plugin in self.binders:
            status = await plugin.bind(state, pi, node, binder)
            if status.code != Code.SKIP:
                return status
        return Status(Code.ERROR, ("no bind plugin bound the pod",), "")

    def sort_key(self, pi: PodInfo, enqueued: float) -> tuple[Any, ...]:
        """Return the pod's key in the scheduling queue."""
        return self.queue_sort.sort_key(pi, enqueued)

    def nodes_to_score(self, total: int) -> int:
        """Return how many feasible nodes to score out of total (kube's numFeasibleNodesToFind)."""
        pct = self.profile.percentage_of_nodes_to_score
        if total < 100 or pct == 100:
            return total
        if pct is None:
            pct = max(50 - total // 125, 5)
        return max(total * pct // 100, 100)
