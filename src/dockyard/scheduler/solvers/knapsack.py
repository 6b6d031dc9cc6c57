"""Exact multi-dimensional knapsack by dynamic programming, for one node.

Role: two problems on a single node, both solved exactly by a DP over the items whose states
are the resource amounts reached so far:
- ``max_value_knapsack``: which pods to run on a node of given free capacity to get the most
  value (pod count or priority): admission when a burst does not fit.
- ``min_cost_cover``: which pods to remove so that at least ``need`` is freed at the least
  cost; preemption's victim choice, with cost (PodDisruptionBudget violations, sum of
  priorities, number of victims) compared in that order.

Invariants:
- Quantities are integers. Each resource column is first divided by the gcd of its weights and
  its bound (exact). If a column still has more than ``max_steps`` steps it is bucketed in the
  safe direction only: for packing, weights round up and capacity rounds down; for covering,
  freed amounts round down and the need rounds up. A result is therefore always feasible in
  the original units; ``exact`` says whether bucketing was needed (if not, it is optimal).
- Covering states cap each amount at the need, so the state space is at most
  prod(need_r + 1) × the group budgets, whatever the number of items.
- Costs and values are tuples compared lexicographically and added element-wise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

DEFAULT_MAX_STEPS = 64
Vector = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class KnapsackResult:
    """The chosen item indices, their total value or cost, and whether it is proven optimal."""

    chosen: tuple[int, ...]
    total: tuple[int, ...]
    exact: bool


def scale(
    weights: np.ndarray, bound: np.ndarray, max_steps: int, cover: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Return weights and bound divided per column by their gcd, bucketed if still too fine."""
    bound = np.asarray(bound, np.int64).reshape(-1)
    weights = np.asarray(weights, np.int64).reshape(len(weights), len(bound))
    out_w = np.zeros_like(weights)
    out_b = np.zeros_like(bound)
    exact = True
    for r in range(len(bound)):
        column = [int(x) for x in weights[:, r]] + [int(bound[r])]
        g = reduce(math.gcd, column, 0) or 1
        step = g
        if bound[r] // g > max_steps:
            step = max(g, -(-int(bound[r]) // max_steps))
            exact = False
        if cover:  # freed rounds down, need rounds up
            out_w[:, r] = weights[:, r] // step
            out_b[r] = -(-int(bound[r]) // step)
        else:  # weights round up, capacity rounds down
            out_w[:, r] = -(-weights[:, r] // step)
            out_b[r] = int(bound[r]) // step
    return out_w, out_b, exact


def _add(a: Vector, b: Vector) -> Vector:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def max_value_knapsack(
    weights: Sequence[Sequence[int]] | np.ndarray,
    values: Sequence[Sequence[int]],
    capacity: Sequence[int] | np.ndarray,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> KnapsackResult:
    """Return the subset with the greatest total value whose weights fit the capacity."""
    if len(values) == 0:
        return KnapsackResult((), (), True)
    cap_arr = np.asarray(capacity, np.int64).reshape(-1)
    w_arr = np.asarray(weights, np.int64).reshape(len(values), len(cap_arr))
    w, cap, exact = scale(w_arr, cap_arr, max_steps, cover=False)
    zero: Vector = tuple(0 for _ in values[0])
    states: dict[Vector, tuple[Vector, int]] = {tuple(0 for _ in cap): (zero, 0)}
    capt = tuple(int(c) for c in cap)
    for k in range(len(values)):
        wk = tuple(int(x) for x in w[k])
        vk = tuple(values[k])
        for used, (value, mask) in list(states.items()):
            nxt = _add(used, wk)
            if any(a > c for a, c in zip(nxt, capt, strict=True)):
                continue
            cand = (_add(value, vk), mask | (1 << k))
            if nxt not in states or cand[0] > states[nxt][0]:
                states[nxt] = cand
    best_value, best_mask = max(states.values(), key=lambda s: s[0])
    return KnapsackResult(_bits(best_mask, len(values)), best_value, exact)


def min_cost_cover(
    weights: Sequence[Sequence[int]] | np.ndarray,
    costs: Sequence[Sequence[int]],
    need: Sequence[int] | np.ndarray,
    groups: Sequence[Sequence[int]] | None = None,
    budgets: Sequence[int] = (),
    max_steps: int = DEFAULT_MAX_STEPS,
) -> KnapsackResult | None:
    """Return the cheapest subset freeing at least ``need``, or None if even all items do not.

    ``groups[k]`` lists the budgets (PodDisruptionBudgets) item k counts against; each item
    taken beyond a budget adds one violation. The returned total is (violations, *cost).
    """
    n = len(costs)
    need_arr = np.asarray(need, np.int64).reshape(-1)
    w_arr = np.asarray(weights, np.int64).reshape(n, len(need_arr))
    w, target, exact = scale(w_arr, need_arr, max_steps, cover=True)
    tgt = tuple(int(x) for x in np.maximum(target, 0))
    width = len(costs[0]) if n else 0
    start: Vector = tuple(0 for _ in tgt) + tuple(0 for _ in budgets)
    states: dict[Vector, tuple[Vector, int]] = {start: ((0,) * (width + 1), 0)}
    nres = len(tgt)
    for k in range(n):
        wk = [int(x) for x in w[k]]
        item_groups = list(groups[k]) if groups else []
        for key, (cost, mask) in list(states.items()):
            freed = tuple(min(key[r] + wk[r], tgt[r]) for r in range(nres))
            used = list(key[nres:])
            violations = 0
            for g in item_groups:
                if used[g] < budgets[g]:
                    used[g] += 1
                else:
                    violations += 1
            nxt = freed + tuple(used)
            cand = (_add(cost, (violations, *costs[k])), mask | (1 << k))
            if nxt not in states or cand[0] < states[nxt][0]:
                states[nxt] = cand
    done = [s for key, s in states.items() if key[:nres] == tgt]
    if not done:
        return None
    best_cost, best_mask = min(done, key=lambda s: s[0])
    return KnapsackResult(_bits(best_mask, n), best_cost, exact)


def _bits(mask: int, n: int) -> tuple[int, ...]:
    return tuple(k for k in range(n) if mask >> k & 1)
