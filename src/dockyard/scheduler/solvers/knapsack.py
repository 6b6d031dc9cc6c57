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

from dockyard.objects.doubling import doubling_sizes

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
    units: Sequence[int] | None = None,
    fast: bool = True,
) -> KnapsackResult | None:
    """Return the cheapest subset freeing at least ``need``, or None if even all items do not.

    ``groups[k]`` lists the budgets (PodDisruptionBudgets) item k counts against; each pod
    taken beyond a budget adds one violation. ``units[k]`` is how many identical pods item k
    stands for (default 1), so identical pods can be offered in binary bundles (1, 2, 4, ...)
    without losing exactness. The returned total is (violations, *cost).
    """
    n = len(costs)
    need_arr = np.asarray(need, np.int64).reshape(-1)
    w_arr = np.asarray(weights, np.int64).reshape(n, len(need_arr))
    w, target, exact = scale(w_arr, need_arr, max_steps, cover=True)
    # resources already free enough never constrain: keep only the ones still needed
    active = [r for r in range(len(target)) if target[r] > 0]
    tgt = tuple(int(target[r]) for r in active)
    width = len(costs[0]) if n else 0
    nres = len(tgt)
    no_groups = not groups or not any(groups)
    if nres == 1 and width == 2 and no_groups and n and fast:
        return _cover_one_resource(w[:, active[0]], costs, tgt[0], exact)
    start: Vector = (0,) * nres + (0,) * len(budgets)
    # costs are packed into one int, field by field, so comparing and adding them is one op
    states: dict[Vector, tuple[int, int]] = {start: (0, 0)}
    for k in range(n):
        wk = [int(w[k, r]) for r in active]
        step = _pack((0, *costs[k]))
        item_groups = list(groups[k]) if groups else []
        pods = units[k] if units else 1
        for key, (cost, mask) in list(states.items()):
            freed = tuple(min(a + b, t) for a, b, t in zip(key[:nres], wk, tgt, strict=True))
            if item_groups:
                used = list(key[nres:])
                violations = 0
                for g in item_groups:
                    total = used[g] + pods
                    violations += max(0, total - budgets[g])
                    used[g] = min(total, budgets[g])
                nxt = freed + tuple(used)
                new_cost = cost + step + (violations << (_SHIFT * width))
            else:
                nxt = freed + key[nres:]
                new_cost = cost + step
            old = states.get(nxt)
            if old is None or new_cost < old[0]:
                states[nxt] = (new_cost, mask | (1 << k))
    done = [s for key, s in states.items() if key[:nres] == tgt]
    if not done:
        return None
    best_cost, best_mask = min(done)
    return KnapsackResult(_bits(best_mask, n), _unpack(best_cost, width + 1), exact)


def _cover_one_resource(
    w: np.ndarray, costs: Sequence[Sequence[int]], target: int, exact: bool
) -> KnapsackResult | None:
    """Solve the common case (one resource short, no budgets, cost (priority, count)) with a
    numpy DP over freed amounts 0..target, one vector step per item; same answer as the
    general DP (the tests compare them)."""
    n = len(costs)
    scale_count = sum(int(c[1]) for c in costs) + 1  # (priority, count) packed in one int
    packed = [int(c[0]) * scale_count + int(c[1]) for c in costs]
    inf = np.iinfo(np.int64).max // 4
    best = np.full(target + 1, inf, np.int64)
    best[0] = 0
    took = np.zeros((n, target + 1), bool)
    from_full = np.zeros(n, np.int64)  # where the "target reached" cell came from
    for k in range(n):
        wk = min(int(w[k]), target)
        shifted = np.full(target + 1, inf, np.int64)
        shifted[wk:target] = best[: target - wk] + packed[k]
        tail = best[target - wk :]
        from_full[k] = target - wk + int(np.argmin(tail))
        shifted[target] = min(int(tail.min()) + packed[k], inf)
        took[k] = shifted < best
        best = np.minimum(best, shifted)
    if best[target] >= inf:
        return None
    chosen, f = [], target
    for k in range(n - 1, -1, -1):
        if took[k, f]:
            chosen.append(k)
            f = int(from_full[k]) if f == target else f - min(int(w[k]), target)
    total = int(best[target])
    return KnapsackResult(
        tuple(sorted(chosen)), (0, total // scale_count, total % scale_count), exact
    )


_SHIFT = 64


def _pack(values: Sequence[int]) -> int:
    """Return non-negative ints packed most significant first (each below 2**64)."""
    out = 0
    for v in values:
        if v < 0:
            raise ValueError(f"costs must not be negative, got {v}")
        out = (out << _SHIFT) | int(v)
    return out


def _unpack(packed: int, width: int) -> tuple[int, ...]:
    mask = (1 << _SHIFT) - 1
    return tuple((packed >> (_SHIFT * (width - 1 - f))) & mask for f in range(width))


def bundles(count: int) -> list[int]:
    """Return binary bundle sizes (1, 2, 4, ..., rest) whose subsets sum to every 0..count."""
    return doubling_sizes(count)


def steps_for(items: int, dims: int, budget: int = 400_000) -> int:
    """Return steps per dimension keeping states × items near the budget (8..64)."""
    if dims <= 0 or items <= 0:
        return DEFAULT_MAX_STEPS
    per_dim = (budget / items) ** (1.0 / dims) - 1
    return int(min(DEFAULT_MAX_STEPS, max(8, per_dim)))


def _bits(mask: int, n: int) -> tuple[int, ...]:
    return tuple(k for k in range(n) if mask >> k & 1)
