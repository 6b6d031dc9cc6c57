"""Packing by patterns: column generation over node-sized patterns (Gilmore-Gomory), for "pack".

Role: the batch optimiser's strongest tool for "fewest nodes". Nodes are grouped into types
(same free room, same eligible pod classes, same already-used state); a pattern is how many
pods of each class one node of a type holds. The master LP chooses how many nodes of each type
use each pattern so every class is covered; the pricing problem (one small integer knapsack per
node type, solved by HiGHS) finds the pattern with the most negative reduced cost. When no
pattern prices out, the master LP value is the pattern relaxation's optimum, a much stronger
bound than the per-node assignment LP; a final integer master over the generated patterns
gives the placement (price-and-branch).

Invariants:
- The bound is valid even if column generation stops on time: master value plus, per type,
  its node count times the most negative reduced cost found (Farley's bound), rounded up, plus
  the nodes already running pods (which cost nothing more to use).
- The placement covers exactly the requested count per class (surplus from the covering
  master is dropped), never exceeds a node's free room, and uses only eligible nodes.
- The first columns are the heuristic placement's own per-node patterns, so the master is
  feasible from the start and the answer is never worse than the heuristic's node count.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

Array = np.ndarray


@dataclass(slots=True)
class PatternResult:
    """Pods per class on each node, the proven lower bound on nodes used, and convergence."""

    per_node: dict[int, Array]
    lower_bound: int
    bound_value: float  # the (continuous) bound lower_bound rounds up, nodes already used included
    lp_value: float
    converged: bool
    optimal: bool


@dataclass(slots=True)
class _Type:
    nodes: list[int]
    cap: Array
    eligible: Array
    cost: float


def _types(free: Array, class_elig: Array, used0: Array) -> tuple[list[_Type], Array]:
    groups: dict[bytes, list[int]] = {}
    for n in range(len(free)):
        key = free[n].tobytes() + class_elig[:, n].tobytes() + bytes([bool(used0[n])])
        groups.setdefault(key, []).append(n)
    types: list[_Type] = []
    of = np.zeros(len(free), np.int64)
    for members in groups.values():
        n = members[0]
        for m in members:
            of[m] = len(types)
        types.append(
            _Type(
                members, np.maximum(free[n], 0), class_elig[:, n].copy(), 0.0 if used0[n] else 1.0
            )
        )
    return types, of


def _price(
    t: _Type, req: Array, counts: Array, duals: Array, limit: float
) -> tuple[Array | None, bool]:
    """Return the pattern of most dual value that fits the type (None if none helps), and
    whether that pattern is proven the best."""
    useful = t.eligible & (duals > 1e-12) & (counts > 0)
    if not useful.any():
        return None, True
    cols = np.flatnonzero(useful)
    r = req[cols].astype(float)
    with np.errstate(divide="ignore"):
        fit = np.where(r > 0, t.cap / np.where(r > 0, r, 1), np.inf).min(axis=1)
    ub = np.minimum(counts[cols], np.floor(fit))
    if (ub <= 0).all():
        return None, True
    res = milp(
        -duals[cols],
        integrality=np.ones(len(cols)),
        bounds=Bounds(0, ub),
        constraints=[LinearConstraint(r.T, -np.inf, t.cap.astype(float))],
        options={"time_limit": max(limit, 0.01)},
    )
    if res.x is None:
        return None, False
    pattern = np.zeros(len(counts))
    pattern[cols] = np.round(res.x)
    return pattern, res.status == 0


def pack_by_patterns(
    class_req: Array,
    counts: Array,
    class_elig: Array,
    free: Array,
    used0: Array,
    start: dict[int, Array],
    time_limit: float,
) -> PatternResult | None:
    """Return a packing of counts[c] pods of each class using the fewest nodes, and its bound."""
    deadline = time.perf_counter() + time_limit
    types, type_of = _types(free, class_elig, used0)
    cols: list[tuple[int, Array]] = []
    seen: set[tuple[int, bytes]] = set()

    def add(t: int, pattern: Array) -> None:
        key = (t, pattern.tobytes())
        if pattern.any() and key not in seen:
            seen.add(key)
            cols.append((t, pattern))

    for n, pattern in start.items():
        add(int(type_of[n]), pattern.astype(float))
    for ti, t in enumerate(types):  # one single-class pattern per type and class, for coverage
        for c in np.flatnonzero(t.eligible & (counts > 0)):
            pos = class_req[c] > 0
            most = int((t.cap[pos] // class_req[c][pos]).min()) if pos.any() else int(counts[c])
            if most > 0:
                single = np.zeros(len(counts))
                single[c] = min(most, int(counts[c]))
                add(ti, single)
    need = counts.astype(float)
    if not cols:
        return None  # no node can hold any of these pods
    converged = False
    lp_value, farley = 0.0, -math.inf
    while time.perf_counter() < deadline:
        master = _master_lp(cols, types, need)
        if master is None:
            return None
        lp_value, duals, type_duals = master
        added, farley_gap, exact = 0, 0.0, True
        for ti, t in enumerate(types):
            left = deadline - time.perf_counter()
            priced, proven = _price(t, class_req, counts, duals, left)
            exact = exact and proven
            if priced is None:
                continue
            reduced = t.cost - float(duals @ priced) - type_duals[ti]
            if reduced < -1e-9:
                farley_gap += len(t.nodes) * reduced
                add(ti, priced)
                added += 1
        if exact:  # Farley's bound needs every type's best pattern to be proven best
            farley = max(farley, lp_value + farley_gap)
        if added == 0:  # nothing prices out (or nothing more can be proven): stop
            converged = exact
            farley = lp_value if exact else farley
            break
    base = int(used0.sum())
    bound_value = base + max(farley, 0.0)
    lower = base + max(0, math.ceil(max(farley, 0.0) - 1e-6))
    per_node, optimal = _integer_master(
        cols, types, need, counts, class_req, max(deadline - time.perf_counter(), 0.05)
    )
    if per_node is None:
        return None
    return PatternResult(per_node, lower, bound_value, lp_value, converged, optimal and converged)


def _master_lp(
    cols: list[tuple[int, Array]], types: list[_Type], need: Array
) -> tuple[float, Array, Array] | None:
    ncls, ntypes = len(need), len(types)
    a = np.zeros((ncls + ntypes, len(cols)))
    for j, (t, pattern) in enumerate(cols):
        a[:ncls, j] = -pattern
        a[ncls + t, j] = 1.0
    b = np.concatenate([-need, [float(len(t.nodes)) for t in types]])
    cost = np.array([types[t].cost for t, _ in cols])
    res = linprog(cost, A_ub=a, b_ub=b, bounds=(0, None), method="highs")
    if res.status != 0:
        return None
    marg = res.ineqlin.marginals
    return float(res.fun), -marg[:ncls], marg[ncls:]


def _integer_master(
    cols: list[tuple[int, Array]],
    types: list[_Type],
    need: Array,
    counts: Array,
    class_req: Array,
    limit: float,
) -> tuple[dict[int, Array] | None, bool]:
    ncls, ntypes = len(need), len(types)
    a = np.zeros((ncls + ntypes, len(cols)))
    for j, (t, pattern) in enumerate(cols):
        a[:ncls, j] = pattern
        a[ncls + t, j] = 1.0
    lo = np.concatenate([need, np.zeros(ntypes)])
    hi = np.concatenate([np.full(ncls, np.inf), [float(len(t.nodes)) for t in types]])
    cost = np.array([types[t].cost for t, _ in cols])
    # prefer patterns with fewer surplus pods among equal node counts
    cost = cost + 1e-4 * np.array([p.sum() for _, p in cols]) / max(float(need.sum()), 1.0)
    res = milp(
        cost,
        integrality=np.ones(len(cols)),
        bounds=Bounds(0, np.inf),
        constraints=[LinearConstraint(a, lo, hi)],
        options={"time_limit": limit},
    )
    if res.x is None:
        return None, False
    per_node: dict[int, Array] = {}
    next_free = [0] * ntypes
    for (t, pattern), copies in zip(cols, np.round(res.x).astype(int), strict=True):
        for _ in range(copies):
            per_node[types[t].nodes[next_free[t]]] = pattern.astype(np.int64).copy()
            next_free[t] += 1
    _drop_surplus(per_node, counts)
    return per_node, res.status == 0


def _drop_surplus(per_node: dict[int, Array], counts: Array) -> None:
    """Remove pods beyond counts[c], from the emptiest nodes first (they may empty out)."""
    have = sum(per_node.values(), np.zeros(len(counts), np.int64))
    for c in np.flatnonzero(have > counts):
        extra = int(have[c] - counts[c])
        for n in sorted(per_node, key=lambda k: per_node[k].sum()):
            take = min(extra, int(per_node[n][c]))
            per_node[n][c] -= take
            extra -= take
            if extra == 0:
                break
    for n in [n for n, p in per_node.items() if not p.any()]:
        del per_node[n]
