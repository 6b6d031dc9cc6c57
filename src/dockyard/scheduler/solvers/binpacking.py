"""Bin-packing heuristics and bounds: first-fit / best-fit / worst-fit decreasing, vectorised.

Role: the batch optimiser's fallback when integer programming runs out of time, its first
incumbent (if a heuristic already meets the lower bound, no ILP is needed), and the simple
per-resource lower bound every batch result reports.

Invariants: a heuristic only places a pod on a node its eligibility mask allows and where every
requested resource (including one pod slot) is free; ``free`` is updated in place as pods are
placed. Pods are taken largest first, size = the sum over resources of request / mean
allocatable. ``resource_bound`` is a valid lower bound on the nodes needed: for each resource,
the fewest nodes whose largest allocatables add up to the total requested.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(slots=True)
class Items:
    """Pods as rows: requests per resource column, eligibility per node, and priority."""

    requests: Array  # (pods, resources) int64
    eligible: Array  # (pods, nodes) bool
    priority: Array  # (pods,) int64


def sizes(items: Items, allocatable: Array) -> Array:
    """Return each pod's size: the sum over resources of request / mean allocatable."""
    scale = allocatable.mean(axis=0).astype(float)
    scale[scale == 0] = 1.0
    return (items.requests / scale).sum(axis=1)


def order(items: Items, allocatable: Array) -> Array:
    """Return pod indices by descending priority, then descending size."""
    return np.lexsort((-sizes(items, allocatable), -items.priority))


def fit_decreasing(
    items: Items,
    free: Array,
    allocatable: Array,
    rule: str,
    node_order: Array | None = None,
    class_of: Array | None = None,
) -> Array:
    """Return each pod's node index (-1 if unplaced) by first-, best- or worst-fit decreasing.

    rule "first": the first node in node_order that fits; "best": the fitting node left with
    the least normalised room (packs); "worst": the fitting node left with the most; "level":
    the fitting node whose highest cpu or memory utilisation stays lowest (spreads evenly).
    ``free`` (nodes × resources) is updated in place. With ``class_of`` (pods of one class are
    identical), "first" and "best" place a run of identical pods in one step: filling nodes in
    the same order one pod at a time would, since the node being filled stays the first (or
    the tightest) until it is full.
    """
    placed = np.full(len(items.requests), -1)
    rank = np.empty(len(free), np.int64)
    rank[node_order if node_order is not None else np.arange(len(free))] = np.arange(len(free))
    scale = allocatable.max(axis=0).astype(float)
    scale[scale == 0] = 1.0
    seq = order(items, allocatable)
    k = 0
    while k < len(seq):
        end = k + 1
        if class_of is not None and rule in ("first", "best"):
            while end < len(seq) and class_of[seq[end]] == class_of[seq[k]]:
                end += 1
        run = seq[k:end]
        k = end
        req = items.requests[run[0]]
        pos = np.flatnonzero(req > 0)
        ok = items.eligible[run[0]] & (free[:, pos] >= req[pos]).all(axis=1)
        if not ok.any():
            continue
        cand = np.flatnonzero(ok)
        if len(run) > 1:
            _fill(run, cand, req, pos, free, placed, rank, scale, rule)
            continue
        if rule == "first":
            node = cand[np.argmin(rank[cand])]
        elif rule == "level":
            node = cand[np.argmin(_level_after(free[cand], allocatable[cand], req))]
        else:
            room = ((free[cand] - req) / scale).sum(axis=1)
            node = cand[np.argmin(room) if rule == "best" else np.argmax(room)]
        free[node] -= req
        placed[run[0]] = node
    return placed


def _fill(
    run: Array,
    cand: Array,
    req: Array,
    pos: Array,
    free: Array,
    placed: Array,
    rank: Array,
    scale: Array,
    rule: str,
) -> None:
    """Place a run of identical pods node by node, in first-fit or best-fit order."""
    if len(pos):
        room_for = (free[cand][:, pos] // req[pos]).min(axis=1)
    else:
        room_for = np.full(len(cand), len(run))
    if rule == "first":
        ordered = np.argsort(rank[cand], kind="stable")
    else:
        ordered = np.argsort(((free[cand] - req) / scale).sum(axis=1), kind="stable")
    start = 0
    for j in ordered:
        if start >= len(run):
            break
        take = int(min(room_for[j], len(run) - start))
        if take <= 0:
            continue
        node = cand[j]
        placed[run[start : start + take]] = node
        free[node] -= req * take
        start += take


def _level_after(free: Array, allocatable: Array, req: Array) -> Array:
    """Return the highest cpu or memory used/allocatable of each node after adding req."""
    alloc = allocatable[:, :2].astype(float)
    used = alloc - free[:, :2] + req[:2]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(alloc > 0, used / alloc, 0.0)
    return frac.max(axis=1)


def resource_bound(total: Array, allocatable: Array) -> int:
    """Return the fewest nodes that could hold the total request of every resource at once."""
    need = 0
    for r in range(len(total)):
        if total[r] <= 0:
            continue
        caps = np.sort(allocatable[:, r])[::-1]
        reach = np.searchsorted(np.cumsum(caps), total[r])
        need = max(need, int(reach) + 1 if reach < len(caps) else len(caps) + 1)
    return need
