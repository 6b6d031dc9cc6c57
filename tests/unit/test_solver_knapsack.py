"""The knapsack DPs are exact: brute force over every subset agrees on random small cases."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from dockyard.scheduler.solvers.knapsack import max_value_knapsack, min_cost_cover, scale

pytestmark = pytest.mark.unit


def subsets(n: int) -> itertools.chain:
    return itertools.chain.from_iterable(itertools.combinations(range(n), k) for k in range(n + 1))


def random_case(rng: random.Random, dims: int = 2) -> tuple[list, list, list]:
    n = rng.randint(0, 8)
    # cpu in 100m steps, memory in 256Mi steps: realistic units that the gcd scaling divides out
    units = [100, 256 << 20, 1][:dims]
    weights = [[rng.randint(0, 10) * u for u in units] for _ in range(n)]
    values = [(rng.randint(0, 5),) for _ in range(n)]
    cap = [rng.randint(0, 30) * u for u in units]
    return weights, values, cap


def test_max_value_knapsack_matches_brute_force() -> None:
    rng = random.Random(1)
    for _ in range(1000):
        weights, values, cap = random_case(rng, rng.choice([1, 2, 3]))
        best = (
            max(
                (sum(values[k][0] for k in s),)
                for s in subsets(len(values))
                if all(sum(weights[k][r] for k in s) <= cap[r] for r in range(len(cap)))
            )
            if values
            else ()
        )
        got = max_value_knapsack(weights, values, cap)
        assert got.exact
        assert got.total == best
        assert all(sum(weights[k][r] for k in got.chosen) <= cap[r] for r in range(len(cap)))


def brute_cover(
    weights: list, costs: list, need: list, groups: list, budgets: list
) -> tuple | None:
    best = None
    for s in subsets(len(costs)):
        if any(sum(weights[k][r] for k in s) < need[r] for r in range(len(need))):
            continue
        violations = sum(
            max(0, sum(1 for k in s if g in groups[k]) - budgets[g]) for g in range(len(budgets))
        )
        cost = (violations, sum(costs[k][0] for k in s), len(s))
        best = cost if best is None or cost < best else best
    return best


def test_min_cost_cover_matches_brute_force_on_1000_cases() -> None:
    rng = random.Random(2)
    found = 0
    for _ in range(1000):
        weights, _, _ = random_case(rng, rng.choice([1, 2, 3]))
        n = len(weights)
        dims = len(weights[0]) if n else 2
        units = [100, 256 << 20, 1][:dims]
        need = [rng.randint(0, 25) * u for u in units]
        costs = [(rng.randint(0, 100), 1) for _ in range(n)]
        nb = rng.randint(0, 2)
        budgets = [rng.randint(0, 2) for _ in range(nb)]
        groups = [[g for g in range(nb) if rng.random() < 0.4] for _ in range(n)]
        want = brute_cover(weights, costs, need, groups, budgets)
        got = min_cost_cover(np.array(weights).reshape(n, dims), costs, need, groups, budgets)
        if want is None:
            assert got is None
            continue
        found += 1
        assert got is not None and got.exact
        assert got.total == want
        assert all(sum(weights[k][r] for k in got.chosen) >= need[r] for r in range(dims))
    assert found > 300  # the cases are not all trivially infeasible


def test_scaling_is_exact_by_gcd_and_safe_when_bucketed() -> None:
    w, b, exact = scale(np.array([[500], [1500]]), np.array([2000]), 64, cover=False)
    assert exact and w.tolist() == [[1], [3]] and b.tolist() == [4]
    # 10 000 steps > 64: packing rounds weights up, capacity down
    w, b, exact = scale(np.array([[1], [150]]), np.array([10000]), 64, cover=False)
    assert not exact and w[0, 0] * 157 >= 1 and b[0] * 157 <= 10000
    # covering rounds freed down, need up
    w, b, exact = scale(np.array([[1], [150]]), np.array([10000]), 64, cover=True)
    assert not exact and w[1, 0] * 157 <= 150 and b[0] * 157 >= 10000


def test_bucketed_results_stay_feasible() -> None:
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(1, 8)
        weights = [[rng.randint(1, 4000), rng.randint(1, 9000)] for _ in range(n)]
        cap = [rng.randint(1000, 9000), rng.randint(1000, 20000)]
        got = max_value_knapsack(weights, [(1,)] * n, cap, max_steps=16)
        assert all(sum(weights[k][r] for k in got.chosen) <= cap[r] for r in range(2))
        cover = min_cost_cover(weights, [(1,)] * n, cap, max_steps=16)
        if cover is not None:
            assert all(sum(weights[k][r] for k in cover.chosen) >= cap[r] for r in range(2))


def test_one_resource_fast_path_matches_the_general_dp() -> None:
    rng = random.Random(21)
    for _ in range(1000):
        n = rng.randint(0, 12)
        weights = [[rng.randint(0, 12) * 250] for _ in range(n)]
        costs = [(rng.randint(0, 50), rng.choice([1, 2, 4])) for _ in range(n)]
        need = [rng.randint(0, 40) * 250]
        fast = min_cost_cover(weights, costs, need)
        slow = min_cost_cover(weights, costs, need, fast=False)
        assert (fast is None) == (slow is None)
        if fast is not None and slow is not None:
            assert fast.total == slow.total
            assert sum(weights[k][0] for k in fast.chosen) >= need[0]
            chosen_cost = (
                sum(costs[k][0] for k in fast.chosen),
                sum(costs[k][1] for k in fast.chosen),
            )
            if n:  # with no items there are no cost fields to compare
                assert chosen_cost == fast.total[1:]
