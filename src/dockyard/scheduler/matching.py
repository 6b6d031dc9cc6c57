"""Vectorised matching over the snapshot: node label requirements as masks, pod counts per node.

Role: the shared arithmetic of the label-driven plugins (NodeSelector, NodeAffinity,
InterPodAffinity, PodTopologySpread), done once over numpy columns rather than node by node.

Invariants: masks have one entry per snapshot node and agree exactly with the per-object rules
of ``dockyard.objects.selectors.NodeSelectorTerm`` (the tests compare the two); node masks are
cached in the snapshot's node cache, keyed by the frozen requirement, so they are recomputed
only when nodes change; pod counts are never cached here because pods move every cycle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dockyard.objects.selectors import compile_selector, freeze
from dockyard.scheduler.podinfo import PodInfo
from dockyard.scheduler.snapshot import Snapshot

Array = np.ndarray
Obj = dict[str, Any]


def requirement_mask(snap: Snapshot, req: Obj) -> Array:
    """Return which nodes' labels satisfy one NodeSelectorRequirement."""
    codes, vocab = snap.label_codes(req.get("key", ""))
    op = req.get("operator", "")
    values = req.get("values") or []
    if op in ("In", "NotIn"):
        wanted = np.array([vocab[v] for v in values if v in vocab], np.int32)
        hit = np.isin(codes, wanted)
        return hit if op == "In" else ~hit
    if op == "Exists":
        return codes >= 0
    if op == "DoesNotExist":
        return codes < 0
    if op in ("Gt", "Lt"):
        return _numeric_mask(codes, vocab, values, op)
    raise ValueError(f"unknown node selector operator {op!r}")


def _numeric_mask(codes: Array, vocab: dict[str, int], values: list[str], op: str) -> Array:
    try:
        bound = int(values[0])
    except (ValueError, IndexError):
        return np.zeros(len(codes), bool)
    numbers = np.full(len(vocab) + 1, np.nan)
    for text, code in vocab.items():
        with contextlib.suppress(ValueError):
            numbers[code] = int(text)
    have = numbers[np.where(codes >= 0, codes, len(vocab))]
    with np.errstate(invalid="ignore"):
        return have > bound if op == "Gt" else have < bound


def term_mask(snap: Snapshot, term: Obj) -> Array:
    """Return which nodes satisfy one NodeSelectorTerm (an empty term matches none)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return np.zeros(snap.n, bool)
    mask = np.ones(snap.n, bool)
    for req in exprs:
        mask &= requirement_mask(snap, req)
    for req in fields:
        mask &= _field_mask(snap, req)
    return mask


def _field_mask(snap: Snapshot, req: Obj) -> Array:
    if req.get("key") != "metadata.name":
        raise ValueError(f"unsupported matchFields key {req.get('key')!r}")
    names = set(req.get("values") or [])
    hit = np.zeros(snap.n, bool)
    for name in names:
        i = snap.index.get(name)
        if i is not None:
            hit[i] = True
    return hit if req.get("operator") == "In" else ~hit


def node_selector_mask(snap: Snapshot, selector: dict[str, str]) -> Array:
    """Return which nodes carry every label of a pod's spec.nodeSelector (cached)."""
    cache = snap.node_cache()
    key = ("nodeSelector", freeze(selector))
    mask = cache.get(key)
    if mask is None:
        mask = np.ones(snap.n, bool)
        for k, v in selector.items():
            mask &= requirement_mask(snap, {"key": k, "operator": "In", "values": [v]})
        cache[key] = mask
    return mask


def required_affinity_mask(snap: Snapshot, terms: list[Obj]) -> Array:
    """Return which nodes satisfy any of the required NodeSelectorTerms (cached)."""
    cache = snap.node_cache()
    key = ("nodeAffinity", freeze(terms))
    mask = cache.get(key)
    if mask is None:
        mask = np.zeros(snap.n, bool)
        for term in terms:
            mask |= term_mask(snap, term)
        cache[key] = mask
    return mask


def pod_node_mask(snap: Snapshot, pi: PodInfo) -> Array:
    """Return which nodes pass the pod's nodeSelector and required node affinity together."""
    mask = np.ones(snap.n, bool)
    if pi.node_selector:
        mask &= node_selector_mask(snap, pi.node_selector)
    if pi.required_node_terms is not None:
        mask &= required_affinity_mask(snap, pi.required_node_terms)
    return mask


def matching_counts(
    snap: Snapshot, namespaces: frozenset[str] | None, selector: Obj | None
) -> Array:
    """Return, per node, how many pods in the namespaces (None: all) the LabelSelector selects."""
    if selector is None:
        return np.zeros(snap.n, np.int64)
    match_labels = selector.get("matchLabels") or {}
    exprs = selector.get("matchExpressions") or []
    spaces = list(snap.namespace_pods) if namespaces is None else list(namespaces)
    if len(match_labels) == 1 and not exprs:
        ((k, v),) = match_labels.items()
        total = np.zeros(snap.n, np.int64)
        for ns in spaces:
            total += snap.label_counts(ns, k, v)
        return total
    compiled = compile_selector(selector)
    counts = np.zeros(snap.n, np.int64)
    for ns in spaces:
        for key in _candidates(snap, ns, match_labels):
            if compiled.matches(snap.pods[key].labels):
                counts[snap.pod_node[key]] += 1
    return counts


def _candidates(snap: Snapshot, ns: str, match_labels: dict[str, str]) -> set[str]:
    if not match_labels:
        return snap.namespace_pods.get(ns, set())
    sets = [snap.label_pods.get((ns, k, v), set()) for k, v in match_labels.items()]
    return min(sets, key=len)


@dataclass(frozen=True, slots=True)
class Domains:
    """A topology key's domains over the eligible nodes, laid out for fast counting."""

    has_key: Array  # (nodes,) bool: the node carries the topology label
    code_or_end: Array  # (nodes,) int: the node's domain code, or ``count`` without the label
    members: Array  # eligible nodes carrying the label
    member_codes: Array  # their domain codes
    present: Array  # (count,) bool: domains holding at least one eligible node
    present_count: int
    count: int

    def totals(self, per_node: Array) -> Array:
        """Return the sum of per_node over each domain's eligible nodes (0 appended last)."""
        return np.bincount(
            self.member_codes, weights=per_node[self.members], minlength=self.count + 1
        )

    def per_node(self, totals: Array) -> Array:
        """Return each node's domain total (0 for nodes without the label)."""
        return totals[self.code_or_end]


def domains(
    snap: Snapshot,
    topology_key: str,
    eligible: Callable[[], Array] | None = None,
    eligible_key: Any = None,
) -> Domains:
    """Return the domains of a topology key over the eligible nodes (all when None), cached."""
    cache = snap.node_cache()
    key = ("domains", topology_key, eligible_key)
    found = cache.get(key)
    if found is None:
        codes, vocab = snap.label_codes(topology_key)
        has_key = codes >= 0
        usable = has_key if eligible is None else has_key & eligible()
        members = np.flatnonzero(usable)
        member_codes = codes[members]
        present = np.bincount(member_codes, minlength=len(vocab)) > 0
        found = cache[key] = Domains(
            has_key=has_key,
            code_or_end=np.where(has_key, codes, len(vocab)),
            members=members,
            member_codes=member_codes,
            present=present,
            present_count=int(present.sum()),
            count=len(vocab),
        )
    return found


def domain_counts(
    snap: Snapshot,
    namespaces: frozenset[str] | None,
    selector: Obj | None,
    topology_key: str,
    eligible: Callable[[], Array] | None = None,
    eligible_key: Any = None,
) -> tuple[Domains, Array, Array]:
    """Return a topology key's domains, the selected pods per node, and their per-domain totals.

    The counting both pod (anti-)affinity and topology spread do: pods the selector picks in
    the namespaces, summed over each domain's eligible nodes (see ``domains``).
    """
    counts = matching_counts(snap, namespaces, selector)
    dom = domains(snap, topology_key, eligible, eligible_key)
    return dom, counts, dom.totals(counts)
