"""Batch placement by integer programming, with a proven lower bound and a heuristic fallback.

Role: when many pods are pending at once (a Deployment scaled to 500, a cluster start), place
the whole batch together instead of one by one. Objectives: "pack" (fewest nodes used),
"spread" (least maximum node utilisation over cpu and memory); both first place as many pods
(or as much priority, ``value="priority"``) as can fit at all.

Solver choice: HiGHS through ``scipy.optimize.milp``. scipy is already a dependency, HiGHS is a
well-kept open-source MIP solver with time limits and a reported dual bound, and it solves the
model's LP relaxation with the same code; OR-Tools CP-SAT would add a large wheel and pinned
protobuf for no gain on models this size.

Order of work: first/best/worst-fit decreasing, and when not every pod fits, knapsack admission
(the exact per-node DP choosing which waiting pods each node runs);
for "pack", column generation over node patterns (``solvers.patterns``: Gilmore-Gomory bound,
price-and-branch); then, if the answer is still not proven optimal and time remains, the
per-node assignment ILP below. Each step's answer replaces the incumbent only if better.

Model: pods are grouped into classes (same requests, priority and eligible nodes), so the
variables are x[c, n] = pods of class c on node n (integer, at most what fits) and y[n] = node n
used (binary; fixed to 1 for nodes already running pods). Pack minimises sum y subject to
capacity sum_c req[c, r] x[c, n] <= free[n, r] y[n] and the linking cuts x[c, n] <= ub y[n];
identical empty nodes are ordered (y[a] >= y[b]) to break symmetry. Spread minimises u with
requested[n, r] + sum_c req x <= u allocatable[n, r].

Invariants:
- Every result reports ``lp_bound`` (the assignment model's LP relaxation), ``simple_bound``
  (per resource, the fewest nodes whose largest allocatables hold the total request),
  ``lower_bound`` = the largest valid bound known (including the pattern LP's bound and
  HiGHS' dual bound), and
  ``gap`` = nodes_used / lower_bound - 1. Bounds count the nodes needed for the pods placed.
- First/best-fit decreasing always runs first; the ILP result replaces it only when it is
  strictly better and checks out against capacity, so hitting the time limit never makes
  the answer worse than the heuristic. If the heuristic already meets the lower bound the ILP
  is skipped: it is proven optimal.
- Only node-static filters (taints, selectors, node affinity, cordons, nodeName) shape
  eligibility. Pods with host ports, pod (anti-)affinity or topology spread constraints
  depend on each other's placement; they are returned in ``deferred`` for the greedy cycle.
- The snapshot is not modified by ``solve``; ``apply`` assumes the placements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from dockyard.objects.selectors import freeze
from dockyard.scheduler.framework import CycleState, Framework
from dockyard.scheduler.podinfo import PodInfo, pod_info
from dockyard.scheduler.profiles import frameworks
from dockyard.scheduler.snapshot import Snapshot
from dockyard.scheduler.solvers.binpacking import Items, fit_decreasing, resource_bound
from dockyard.scheduler.solvers.knapsack import max_value_knapsack
from dockyard.scheduler.solvers.patterns import pack_by_patterns

Array = np.ndarray
Obj = dict[str, Any]
KNAPSACK_ITEMS = 14  # waiting pods the admission DP weighs per node (best value per size)
MAX_ASSIGNMENT_VARS = 5_000  # beyond this many (class, node) pairs only patterns are used
STATIC_FILTERS = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeSelector",
    "NodeAffinity",
)
OBJECTIVES = ("pack", "spread")


@dataclass(slots=True)
class BatchResult:
    """Where each batch pod goes, what did not fit, and how close to optimal that is."""

    assignments: dict[str, str]
    unplaced: list[PodInfo]
    deferred: list[PodInfo]
    objective: str
    method: str
    nodes_used: int
    lp_bound: float
    simple_bound: int
    lower_bound: int
    gap: float
    max_utilisation: float
    seconds: float
    notes: list[str] = field(default_factory=list)
    utilisation_bound: float | None = None  # spread: LP bound on the least max utilisation


@dataclass(slots=True)
class _Problem:
    pods: list[PodInfo]
    items: Items
    free: Array
    allocatable: Array
    requested: Array
    used0: Array
    classes: list[list[int]]
    class_req: Array
    class_elig: Array
    class_value: Array
    class_of: Array


class BatchSolver:
    """Place a batch of pending pods at once by ILP (HiGHS), falling back to heuristics."""

    def __init__(
        self,
        snapshot: Snapshot,
        framework: Framework | None = None,
        objective: str = "pack",
        time_limit: float = 1.5,
        value: str = "count",
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
        if value not in ("count", "priority"):
            raise ValueError(f"value must be 'count' or 'priority', not {value!r}")
        self.snap = snapshot
        self.framework = framework or frameworks()["default-scheduler"]
        self.objective = objective
        self.time_limit = time_limit
        self.value = value

    # --- the problem -----------------------------------------------------------------------

    def _eligible(self, pi: PodInfo, cache: dict[Any, Array]) -> Array:
        key = freeze([pi.tolerations, pi.node_selector, pi.required_node_terms, pi.node_name])
        mask = cache.get(key)
        if mask is None:
            mask = np.ones(self.snap.n, bool)
            state = CycleState()
            for plugin in self.framework.filters:
                if plugin.name in STATIC_FILTERS:
                    passed = plugin.filter(state, pi, self.snap)
                    if passed is not None:
                        mask &= passed
            cache[key] = mask
        return mask

    def _problem(self, pods: list[PodInfo]) -> _Problem:
        snap = self.snap
        cache: dict[Any, Array] = {}
        vectors = [snap.request_vector(pi) for pi in pods]  # may add extended columns
        reqs = np.zeros((len(pods), len(snap.resources)), np.int64)
        for k, (cols, vals) in enumerate(vectors):
            reqs[k, cols] = vals
        elig = np.array([self._eligible(pi, cache) for pi in pods], bool).reshape(len(pods), snap.n)
        prio = np.array([pi.priority for pi in pods], np.int64)
        groups: dict[Any, list[int]] = {}
        for k in range(len(pods)):
            groups.setdefault((reqs[k].tobytes(), int(prio[k]), elig[k].tobytes()), []).append(k)
        classes = list(groups.values())
        first = [c[0] for c in classes]
        value = np.ones(len(classes)) if self.value == "count" else np.maximum(prio[first], 0) + 1.0
        return _Problem(
            pods=pods,
            items=Items(reqs, elig, prio),
            free=snap.free.copy(),
            allocatable=snap.allocatable.copy(),
            requested=snap.requested.copy(),
            used0=np.array([len(p) > 0 for p in snap.node_pods], bool),
            classes=classes,
            class_req=reqs[first].reshape(len(first), reqs.shape[1]),
            class_elig=elig[first].reshape(len(first), snap.n),
            class_value=np.asarray(value, float),
            class_of=_class_index(classes, len(pods)),
        )

    # --- solve -----------------------------------------------------------------------------

    def solve(self, pods: Sequence[Obj | PodInfo]) -> BatchResult:
        """Return the placement of the batch and its quality; the snapshot is unchanged."""
        start = time.perf_counter()
        infos = [p if isinstance(p, PodInfo) else pod_info(p) for p in pods]
        deferred = [pi for pi in infos if _interdependent(pi)]
        batch = [pi for pi in infos if not _interdependent(pi)]
        prob = self._problem(batch)
        notes: list[str] = []
        placed, method = self._heuristic(prob)
        admitted, admits_more = self._knapsack_admit(prob, placed)
        if admits_more:
            placed, method = admitted, "knapsack-admission"

        def left() -> float:
            return self.time_limit - (time.perf_counter() - start)

        lp, simple = self._bounds(prob, placed, max(left() / 3, 0.05))
        lower = max(simple, math.ceil(lp - 1e-6))
        at_bound = self._at_bound(prob, placed, lower)
        if not at_bound and self.objective == "pack" and left() > 0.05 and prob.classes:
            found = self._patterns(prob, placed, left() * 0.75)
            if found is not None:
                better, bound, bound_value = found
                lower, lp = max(lower, bound), max(lp, bound_value)
                if better is not None and self._better(prob, better, placed):
                    placed, method = better, "column-generation"
            at_bound = self._at_bound(prob, placed, lower)
        small = int(prob.class_elig.sum()) <= MAX_ASSIGNMENT_VARS
        if not at_bound and small and left() > 0.05 and prob.classes:
            better, ilp_method, ilp_dual = self._ilp(prob, placed, left(), notes)
            lower = max(lower, ilp_dual)
            if better is not None:
                placed, method = better, ilp_method
            at_bound = self._at_bound(prob, placed, lower)
        if at_bound:
            method += " (at lower bound: optimal)"
        result = self._result(prob, placed, deferred, method, lp, simple, lower, start, notes)
        if self.objective == "spread" and prob.classes and small:
            result.utilisation_bound = _spread_lp(prob, _class_counts(prob, placed))
        return result

    def _at_bound(self, prob: _Problem, placed: Array, lower: int) -> bool:
        return (
            self.objective == "pack"
            and bool((placed >= 0).all())
            and _nodes_used(prob, placed) <= lower
        )

    def bounds(self, pods: list[PodInfo]) -> tuple[float, int]:
        """Return (LP bound, per-resource bound) on the nodes needed to run all these pods too.

        The LP bound is the better of the assignment LP (small clusters) and the pattern LP
        (column generation, within the time limit).
        """
        start = time.perf_counter()
        prob = self._problem([pi for pi in pods if not _interdependent(pi)])
        everything = np.zeros(len(prob.pods), np.int64)
        lp, simple = self._bounds(prob, everything, self.time_limit / 2)
        if prob.classes:
            first = fit_decreasing(
                prob.items, prob.free.copy(), prob.allocatable, "first", None, prob.class_of
            )
            seed: dict[int, Array] = {}
            for k, n in enumerate(first.tolist()):
                if n >= 0:
                    seed.setdefault(n, np.zeros(len(prob.classes), np.int64))[prob.class_of[k]] += 1
            left = self.time_limit - (time.perf_counter() - start)
            counts = np.array([len(c) for c in prob.classes], np.int64)
            found = pack_by_patterns(
                prob.class_req,
                counts,
                prob.class_elig,
                prob.free,
                prob.used0,
                seed,
                max(left, 0.1),
            )
            if found is not None:
                lp = max(lp, found.bound_value)
        extra = [pi for pi in pods if _interdependent(pi)]
        if extra:  # interdependent pods still need room: count them in the simple bound
            more = self._problem(extra).items.requests.sum(axis=0)
            total = prob.requested.sum(axis=0) + prob.items.requests.sum(axis=0) + more
            simple = max(simple, resource_bound(total, prob.allocatable))
        return lp, simple

    def _heuristic(self, prob: _Problem) -> tuple[Array, str]:
        if self.objective == "spread":
            level = fit_decreasing(prob.items, prob.free.copy(), prob.allocatable, "level")
            worst = fit_decreasing(prob.items, prob.free.copy(), prob.allocatable, "worst")
            score = [(-_value(prob, p), _max_util(prob, p)) for p in (level, worst)]
            if score[0] <= score[1]:
                return level, "least-level-decreasing"
            return worst, "worst-fit-decreasing"
        node_order = np.lexsort((-prob.allocatable[:, 0], ~prob.used0))
        cls = prob.class_of
        ffd = fit_decreasing(
            prob.items, prob.free.copy(), prob.allocatable, "first", node_order, cls
        )
        bfd = fit_decreasing(prob.items, prob.free.copy(), prob.allocatable, "best", None, cls)
        score = [(-_value(prob, p), _nodes_used(prob, p)) for p in (ffd, bfd)]
        return (
            (ffd, "first-fit-decreasing") if score[0] <= score[1] else (bfd, "best-fit-decreasing")
        )

    def _knapsack_admit(self, prob: _Problem, placed: Array) -> tuple[Array, bool]:
        """Return a placement admitting the most value when the burst does not fit, and
        whether it beats the heuristic's: node by node (running nodes first, then the
        largest), the exact knapsack DP picks which waiting pods to run there, then
        first-fit places what is left. Fit-decreasing takes big pods first, which places
        fewer pods when not all fit; the DP maximises what each node holds."""
        if (placed >= 0).all():
            return placed, False
        out = np.full(len(prob.pods), -1)
        free = prob.free.copy()
        node_order = np.lexsort((-prob.allocatable[:, 0], ~prob.used0))
        ratio = self._value_of(prob) / np.maximum(_sizes(prob), 1e-9)
        for n in node_order:
            waiting = np.flatnonzero((out < 0) & prob.items.eligible[:, n])
            if len(waiting) == 0:
                continue
            fits = waiting[(prob.items.requests[waiting] <= free[n]).all(axis=1)]
            cand = fits[np.argsort(-ratio[fits], kind="stable")][:KNAPSACK_ITEMS].tolist()
            if not cand:
                continue
            values = [(int(v),) for v in self._value_of(prob)[cand]]
            got = max_value_knapsack(prob.items.requests[cand], values, np.maximum(free[n], 0))
            for j in got.chosen:
                out[cand[j]] = n
                free[n] -= prob.items.requests[cand[j]]
        rest = np.flatnonzero(out < 0)
        if len(rest):
            sub = Items(
                prob.items.requests[rest], prob.items.eligible[rest], prob.items.priority[rest]
            )
            more = fit_decreasing(sub, free, prob.allocatable, "first", node_order)
            out[rest] = more
        return out, _value(prob, out) > _value(prob, placed)

    def _value_of(self, prob: _Problem) -> Array:
        if self.value == "priority":
            return np.maximum(prob.items.priority, 0) + 1
        return np.ones(len(prob.pods), np.int64)

    def _bounds(self, prob: _Problem, placed: Array, limit: float) -> tuple[float, int]:
        """Return (assignment LP relaxation or 0 if too large, simple per-resource bound)."""
        counts = _class_counts(prob, placed)
        total = prob.requested.sum(axis=0) + prob.items.requests[placed >= 0].sum(axis=0)
        simple = resource_bound(total, prob.allocatable)
        if int(prob.class_elig.sum()) > MAX_ASSIGNMENT_VARS:
            return 0.0, simple  # the pattern LP gives the bound for large clusters
        model = _pack_model(prob, counts)
        res = milp(
            model[0],
            integrality=np.zeros_like(model[0]),
            bounds=model[1],
            constraints=model[2],
            options={"time_limit": limit},
        )
        lp = float(res.fun) if res.x is not None and res.status == 0 else 0.0
        return lp, simple

    def _ilp(
        self, prob: _Problem, placed: Array, budget: float, notes: list[str]
    ) -> tuple[Array | None, str, int]:
        counts = _class_counts(prob, placed)
        if counts.sum() < sum(len(c) for c in prob.classes):
            counts = self._most_value(prob, counts, budget / 3, notes)
            budget = budget * 2 / 3
        model = (
            _pack_model(prob, counts) if self.objective == "pack" else _spread_model(prob, counts)
        )
        c, bounds, cons, integrality, xs = model
        res = milp(
            c,
            integrality=integrality,
            bounds=bounds,
            constraints=cons,
            options={"time_limit": max(budget, 0.05), "mip_rel_gap": 0.0},
        )
        dual = getattr(res, "mip_dual_bound", None)
        dual_nodes = (
            math.ceil(dual - 1e-6)
            if self.objective == "pack" and dual is not None and math.isfinite(dual)
            else 0
        )
        if res.x is None:
            notes.append(f"ILP found no solution within {budget:.2f}s: {res.message}")
            return None, "", dual_nodes
        candidate = _assign(prob, xs, res.x)
        if candidate is None:
            notes.append("ILP solution failed the capacity check; kept the heuristic")
            return None, "", dual_nodes
        method = "ilp-optimal" if res.status == 0 else "ilp-time-limit"
        if not self._better(prob, candidate, placed):
            return None, "", dual_nodes
        return candidate, method, dual_nodes

    def _most_value(self, prob: _Problem, counts: Array, budget: float, notes: list[str]) -> Array:
        """Return per-class counts placing the most value that fits (phase one)."""
        c, bounds, cons, integrality, xs = _value_model(prob)
        res = milp(
            c,
            integrality=integrality,
            bounds=bounds,
            constraints=cons,
            options={"time_limit": max(budget, 0.05)},
        )
        if res.x is None:
            notes.append("ILP phase one (most pods) found no solution in time")
            return counts
        got = np.zeros(len(prob.classes), np.int64)
        for (cl, _, _), v in zip(xs, res.x, strict=True):
            got[cl] += int(round(v))
        better = float(got @ prob.class_value) > float(counts @ prob.class_value)
        return got if better else counts

    def _better(self, prob: _Problem, cand: Array, incumbent: Array) -> bool:
        a, b = _value(prob, cand), _value(prob, incumbent)
        if a != b:
            return a > b
        if self.objective == "pack":
            return _nodes_used(prob, cand) < _nodes_used(prob, incumbent)
        return _max_util(prob, cand) < _max_util(prob, incumbent) - 1e-9

    def _result(
        self,
        prob: _Problem,
        placed: Array,
        deferred: list[PodInfo],
        method: str,
        lp: float,
        simple: int,
        lower: int,
        start: float,
        notes: list[str],
    ) -> BatchResult:
        names = [n.name for n in self.snap.nodes]
        assignments = {prob.pods[k].key: names[n] for k, n in enumerate(placed) if n >= 0}
        used = _nodes_used(prob, placed)
        lower = max(lower, 1) if used else lower
        return BatchResult(
            assignments=assignments,
            unplaced=[prob.pods[k] for k in np.flatnonzero(placed < 0)],
            deferred=deferred,
            objective=self.objective,
            method=method,
            nodes_used=used,
            lp_bound=lp,
            simple_bound=simple,
            lower_bound=lower,
            gap=(used / lower - 1.0) if lower else 0.0,
            max_utilisation=_max_util(prob, placed),
            seconds=time.perf_counter() - start,
            notes=notes,
        )

    def _patterns(
        self, prob: _Problem, placed: Array, budget: float
    ) -> tuple[Array | None, int, float] | None:
        """Return (placement, method, lower bound) by column generation over node patterns."""
        counts = _class_counts(prob, placed)
        start: dict[int, Array] = {}
        for cl, members in enumerate(prob.classes):
            for k in members:
                n = int(placed[k])
                if n >= 0:
                    start.setdefault(n, np.zeros(len(prob.classes), np.int64))[cl] += 1
        found = pack_by_patterns(
            prob.class_req, counts, prob.class_elig, prob.free, prob.used0, start, budget
        )
        if found is None:
            return None
        bound = (found.lower_bound, found.bound_value)
        out = np.full(len(prob.pods), -1)
        cursor = [0] * len(prob.classes)
        for n, per_class in found.per_node.items():
            for cl, take in enumerate(per_class.tolist()):
                members = prob.classes[cl]
                out[members[cursor[cl] : cursor[cl] + take]] = n
                cursor[cl] += take
        if not (_free_after(prob, out) >= np.minimum(prob.free, 0)).all():
            return None, *bound
        return out, *bound

    def apply(self, result: BatchResult, pods: list[PodInfo]) -> None:
        """Assume every placement of the result in the snapshot (as bound)."""
        for pi in pods:
            node = result.assignments.get(pi.key)
            if node is not None:
                self.snap.assume(pi, node)
                self.snap.confirm(pi.key)


# --- helpers over the problem ---------------------------------------------------------------


def _class_index(classes: list[list[int]], count: int) -> Array:
    out = np.zeros(count, np.int64)
    for cl, members in enumerate(classes):
        out[members] = cl
    return out


def _sizes(prob: _Problem) -> Array:
    scale = prob.allocatable.mean(axis=0).astype(float) if len(prob.allocatable) else np.ones(1)
    scale[scale == 0] = 1.0
    return (prob.items.requests / scale).sum(axis=1)


def _interdependent(pi: PodInfo) -> bool:
    return bool(
        pi.host_ports
        or pi.affinity_terms
        or pi.anti_affinity_terms
        or pi.spread_constraints
        or pi.preferred_affinity_terms
        or pi.preferred_anti_affinity_terms
    )


def _free_after(prob: _Problem, placed: Array) -> Array:
    free = prob.free.copy()
    ok = placed >= 0
    np.subtract.at(free, placed[ok], prob.items.requests[ok])
    return free


def _nodes_used(prob: _Problem, placed: Array) -> int:
    used = prob.used0.copy()
    used[placed[placed >= 0]] = True
    return int(used.sum())


def _value(prob: _Problem, placed: Array) -> float:
    return float(_class_counts(prob, placed) @ prob.class_value)


def _max_util(prob: _Problem, placed: Array) -> float:
    alloc = prob.allocatable[:, :2].astype(float)
    used = (prob.allocatable - _free_after(prob, placed))[:, :2].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(alloc > 0, used / alloc, 0.0)
    return float(frac.max()) if frac.size else 0.0


def _class_counts(prob: _Problem, placed: Array) -> Array:
    return np.array([int((placed[c] >= 0).sum()) for c in prob.classes], np.int64)


def _vars(prob: _Problem) -> list[tuple[int, int, int]]:
    """Return (class, node, upper bound) for every x variable that can be nonzero."""
    out = []
    for cl in range(len(prob.classes)):
        req = prob.class_req[cl]
        pos = req > 0
        nodes = np.flatnonzero(prob.class_elig[cl])
        if pos.any():
            fits = (prob.free[nodes][:, pos] // req[pos]).min(axis=1)
        else:
            fits = np.full(len(nodes), len(prob.classes[cl]))
        for n, f in zip(nodes, fits, strict=True):
            ub = int(min(f, len(prob.classes[cl])))
            if ub > 0:
                out.append((cl, int(n), ub))
    return out


class _Rows:
    """Sparse constraint rows built one at a time."""

    def __init__(self) -> None:
        self.r: list[int] = []
        self.c: list[int] = []
        self.v: list[float] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        """Append the row lo <= sum(value * x[col]) <= hi."""
        row = len(self.lo)
        for col, val in entries:
            self.r.append(row)
            self.c.append(col)
            self.v.append(val)
        self.lo.append(lo)
        self.hi.append(hi)

    def constraint(self, ncols: int) -> LinearConstraint:
        """Return the rows as one sparse LinearConstraint."""
        a = coo_array((self.v, (self.r, self.c)), shape=(len(self.lo), ncols)).tocsr()
        return LinearConstraint(a, np.array(self.lo), np.array(self.hi))


Model = tuple[Array, Bounds, list[LinearConstraint], Array, list[tuple[int, int, int]]]


def _class_rows(rows: _Rows, xs: list[tuple[int, int, int]], counts: Array, exact: bool) -> None:
    per_class: dict[int, list[tuple[int, float]]] = {}
    for j, (cl, _, _) in enumerate(xs):
        per_class.setdefault(cl, []).append((j, 1.0))
    for cl, entries in per_class.items():
        rows.add(entries, float(counts[cl]) if exact else 0.0, float(counts[cl]))


def _per_node(xs: list[tuple[int, int, int]]) -> dict[int, list[int]]:
    """Return each node's variable columns."""
    per_node: dict[int, list[int]] = {}
    for j, (_, n, _) in enumerate(xs):
        per_node.setdefault(n, []).append(j)
    return per_node


def _usage(
    prob: _Problem, xs: list[tuple[int, int, int]], js: list[int], r: int
) -> list[tuple[int, float]]:
    """Return (column, request of resource r) over the columns js, leaving zero requests out."""
    return [(j, float(prob.class_req[xs[j][0], r])) for j in js if prob.class_req[xs[j][0], r] > 0]


def _pack_model(prob: _Problem, counts: Array) -> Model:
    xs = _vars(prob)
    nodes = sorted({n for _, n, _ in xs} | set(np.flatnonzero(prob.used0).tolist()))
    ycol = {n: len(xs) + i for i, n in enumerate(nodes)}
    ncols = len(xs) + len(nodes)
    rows = _Rows()
    _class_rows(rows, xs, counts, exact=True)
    for j, (_, n, ub) in enumerate(xs):
        rows.add([(j, 1.0), (ycol[n], -float(ub))], -np.inf, 0.0)
    for n, js in _per_node(xs).items():
        for r in range(prob.class_req.shape[1]):
            entries = _usage(prob, xs, js, r)
            if entries:
                rows.add(entries + [(ycol[n], -float(max(prob.free[n, r], 0)))], -np.inf, 0.0)
    _symmetry(prob, nodes, ycol, rows)
    c = np.zeros(ncols)
    c[len(xs) :] = 1.0
    lo = np.zeros(ncols)
    hi = np.array([ub for _, _, ub in xs] + [1.0] * len(nodes), float)
    for n in nodes:
        if prob.used0[n]:
            lo[ycol[n]] = 1.0
    integrality = np.ones(ncols)
    return c, Bounds(lo, hi), [rows.constraint(ncols)], integrality, xs


def _symmetry(prob: _Problem, nodes: list[int], ycol: dict[int, int], rows: _Rows) -> None:
    """Order identical empty nodes: y[a] >= y[b] for a before b with equal capacity and use."""
    groups: dict[bytes, list[int]] = {}
    for n in nodes:
        if not prob.used0[n]:
            key = prob.free[n].tobytes() + prob.class_elig[:, n].tobytes()
            groups.setdefault(key, []).append(n)
    for members in groups.values():
        for a, b in zip(members, members[1:], strict=False):
            rows.add([(ycol[a], 1.0), (ycol[b], -1.0)], 0.0, np.inf)


def _spread_model(prob: _Problem, counts: Array) -> Model:
    xs = _vars(prob)
    ucol = len(xs)
    ncols = len(xs) + 1
    rows = _Rows()
    _class_rows(rows, xs, counts, exact=True)
    per_node = _per_node(xs)
    for n in range(len(prob.free)):
        js = per_node.get(n, [])
        for r in (0, 1):
            alloc = float(prob.allocatable[n, r])
            if alloc <= 0:
                continue
            entries = _usage(prob, xs, js, r)
            rows.add(entries + [(ucol, -alloc)], -np.inf, -float(prob.requested[n, r]))
        for r in range(2, prob.class_req.shape[1]):
            entries = _usage(prob, xs, js, r)
            if entries:
                rows.add(entries, -np.inf, float(max(prob.free[n, r], 0)))
    c = np.zeros(ncols)
    c[ucol] = 1.0
    lo = np.zeros(ncols)
    hi = np.array([ub for _, _, ub in xs] + [1.0], float)
    integrality = np.ones(ncols)
    integrality[ucol] = 0
    return c, Bounds(lo, hi), [rows.constraint(ncols)], integrality, xs


def _spread_lp(prob: _Problem, counts: Array) -> float | None:
    """Return the LP relaxation of the spread model: no placement has a lower max utilisation."""
    c, bounds, cons, integrality, _ = _spread_model(prob, counts)
    res = milp(c, integrality=np.zeros_like(integrality), bounds=bounds, constraints=cons)
    return None if res.x is None else round(float(res.fun), 6)


def _value_model(prob: _Problem) -> Model:
    xs = _vars(prob)
    ncols = len(xs)
    rows = _Rows()
    _class_rows(rows, xs, np.array([len(c) for c in prob.classes]), exact=False)
    for n, js in _per_node(xs).items():
        for r in range(prob.class_req.shape[1]):
            entries = _usage(prob, xs, js, r)
            if entries:
                rows.add(entries, -np.inf, float(max(prob.free[n, r], 0)))
    c = -np.array([prob.class_value[cl] for cl, _, _ in xs], float)
    hi = np.array([ub for _, _, ub in xs], float)
    return c, Bounds(np.zeros(ncols), hi), [rows.constraint(ncols)], np.ones(ncols), xs


def _assign(prob: _Problem, xs: list[tuple[int, int, int]], x: Array) -> Array | None:
    """Turn per-class counts into per-pod nodes; None if the result breaks capacity."""
    placed = np.full(len(prob.pods), -1)
    cursor = [0] * len(prob.classes)
    for (cl, n, _), v in zip(xs, x[: len(xs)], strict=True):
        take = int(round(v))
        members = prob.classes[cl]
        for k in members[cursor[cl] : cursor[cl] + take]:
            placed[k] = n
        cursor[cl] += take
    free = _free_after(prob, placed)
    return placed if (free >= np.minimum(prob.free, 0)).all() else None
