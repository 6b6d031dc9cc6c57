"""Doubling sizes: 1, 2, 4, ... with the last one what is left, adding up to a count.

Two loops use the same arithmetic for different ends, so it lives here where both may import
it (the scheduler and the controllers may not import each other):
- the ReplicaSet controller creates pods in batches of these sizes (client-go's slowStartBatch:
  a failing create stops the rest after few wasted calls);
- the knapsack solver offers identical items in bundles of these sizes, whose subsets add up
  to every number from 0 to the count (binary splitting of a bounded knapsack).

Invariant: the sizes are positive, each at most double the one before, and add up to count.
"""

from __future__ import annotations


def doubling_sizes(count: int, first: int = 1) -> list[int]:
    """Return sizes first, 2·first, 4·first, ..., the last cut to what is left of count."""
    sizes, size, left = [], first, count
    while left > 0:
        take = min(size, left)
        sizes.append(take)
        left -= take
        size *= 2
    return sizes
