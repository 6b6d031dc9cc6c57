"""Doubling sizes, shared by the ReplicaSet's slow start and the knapsack's binary bundles."""

from __future__ import annotations

import itertools

import pytest

from dockyard.objects.doubling import doubling_sizes

pytestmark = pytest.mark.unit


def test_sizes_double_then_take_what_is_left() -> None:
    assert doubling_sizes(0) == []
    assert doubling_sizes(1) == [1]
    assert doubling_sizes(10) == [1, 2, 4, 3]  # 1+2+4 = 7, then the 3 left
    assert doubling_sizes(10, first=3) == [3, 6, 1]  # 3+6 = 9, then the 1 left


@pytest.mark.parametrize("count", range(0, 40))
def test_subsets_add_up_to_every_number_to_count(count: int) -> None:
    sizes = doubling_sizes(count)
    assert sum(sizes) == count
    sums = {sum(c) for r in range(len(sizes) + 1) for c in itertools.combinations(sizes, r)}
    assert sums == set(range(count + 1))
