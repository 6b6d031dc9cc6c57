"""The scheduler's cluster snapshot: nodes, their allocatable and requested resources, and pods.

Role: the one place the scheduling cycle reads the cluster from. The live loop keeps it in step
with its informers (``add_node``/``update_node``/``remove_node``, ``add_pod``/``remove_pod``) and
records its own decisions before the api server confirms them (``assume``/``forget``), exactly
as kube-scheduler's cache does.

Invariants:
- Resources are columns: cpu (millicores), memory, ephemeral-storage (bytes), pods (count), then
  extended resources in the order first seen. ``allocatable``, ``requested`` and ``free``
  (= allocatable - requested) are int64 arrays of shape (nodes, resources); row i is
  ``nodes[i]``. ``free`` can go negative when a node shrinks under its pods.
- ``requested`` sums every pod on the node, assumed or confirmed; an assumed pod is counted
  exactly once and ``forget`` undoes ``assume`` exactly.
- ``generation`` increases on every node change; ``cache`` holds values derived from nodes
  only (label columns, taint groups, image sizes, per-selector masks) and is emptied when the
  generation moves, so a cached mask is never stale.
- A node that reports no "pods" allocatable gets the kubelet's default of 110.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dockyard.scheduler.podinfo import PodInfo, pod_info, quantity_units

Obj = dict[str, Any]
Array = np.ndarray

BASE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
_TOKENS = itertools.count(1)
DEFAULT_MAX_PODS = 110


@dataclass(slots=True)
class NodeInfo:
    """The scheduling-relevant parts of a node."""

    name: str
    labels: dict[str, str]
    taints: list[Obj]
    unschedulable: bool
    images: dict[str, int]
    allocatable: dict[str, int]
    node: Obj


def normalize_image(name: str) -> str:
    """Return an image reference in full form ("nginx" → "docker.io/library/nginx:latest")."""
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}" if rest else f"docker.io/library/{name}"
    tail = name.rsplit("/", 1)[-1]
    if "@" not in tail and ":" not in tail:
        name += ":latest"
    return name


def node_info(node: Obj) -> NodeInfo:
    """Parse a Node dict into a NodeInfo (raises ValueError naming a bad quantity)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    raw = status.get("allocatable") or status.get("capacity") or {}
    alloc = {name: quantity_units(name, q) for name, q in raw.items()}
    alloc.setdefault("pods", DEFAULT_MAX_PODS)
    images: dict[str, int] = {}
    for image in status.get("images") or []:
        for name in image.get("names") or []:
            images[normalize_image(name)] = int(image.get("sizeBytes") or 0)
    return NodeInfo(
        name=meta.get("name") or "",
        labels=dict(meta.get("labels") or {}),
        taints=list(spec.get("taints") or []),
        unschedulable=bool(spec.get("unschedulable")),
        images=images,
        allocatable=alloc,
        node=node,
    )


class Snapshot:
    """Nodes and pods as numpy arrays and indexes, with assume/forget for pending binds."""

    def __init__(self, nodes: Iterable[Obj] = (), pods: Iterable[Obj] = ()) -> None:
        self._token = next(_TOKENS)  # tells this snapshot's cached request vectors apart
        self.resources: list[str] = list(BASE_RESOURCES)
        self.resource_index: dict[str, int] = {n: i for i, n in enumerate(self.resources)}
        self.nodes: list[NodeInfo] = []
        self.index: dict[str, int] = {}
        self._alloc = np.zeros((0, len(self.resources)), np.int64, order="F")
        self._requested = np.zeros_like(self._alloc, order="F")
        self._free = np.zeros_like(self._alloc, order="F")
        self._nonzero = np.zeros((0, 2), np.float64, order="F")
        self.node_pods: list[set[str]] = []
        self.pods: dict[str, PodInfo] = {}
        self.pod_node: dict[str, int] = {}
        self.assumed: set[str] = set()
        self.generation = 0
        self.cache: dict[Any, Any] = {}
        self._cache_generation = 0
        self.ports: dict[tuple[str, int], dict[int, Counter[str]]] = {}
        self.label_pods: dict[tuple[str, str, str], set[str]] = {}
        self.namespace_pods: dict[str, set[str]] = {}
        self._label_counts: dict[tuple[str, str, str], Array] = {}
        self.anti_affinity_pods: dict[str, PodInfo] = {}
        for node in nodes:
            self.add_node(node)
        for pod in pods:
            self.add_pod(pod)

    # --- sizes and views -------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Return the number of nodes."""
        return len(self.nodes)

    @property
    def allocatable(self) -> Array:
        """Return allocatable per node and resource (a view: do not write)."""
        return self._alloc[: self.n]

    @property
    def requested(self) -> Array:
        """Return requested per node and resource (a view: do not write)."""
        return self._requested[: self.n]

    @property
    def free(self) -> Array:
        """Return allocatable minus requested per node and resource (a view: do not write)."""
        return self._free[: self.n]

    @property
    def nonzero_requested(self) -> Array:
        """Return cpu and memory requested per node counting empty requests as defaults."""
        return self._nonzero[: self.n]

    @property
    def nonzero_cpu(self) -> Array:
        """Return cpu requested per node, empty requests counted as 100m (contiguous view)."""
        return self._nonzero[: self.n, 0]

    @property
    def nonzero_memory(self) -> Array:
        """Return memory requested per node, empty requests counted as 200Mi (contiguous view)."""
        return self._nonzero[: self.n, 1]

    def inverse_allocatable(self) -> tuple[Array, Array]:
        """Return 1 / allocatable cpu and 1 / allocatable memory per node (huge where zero)."""
        cache = self.node_cache()
        inv = cache.get("inverse_allocatable")
        if inv is None:
            alloc = self.allocatable[:, :2].astype(float)
            with np.errstate(divide="ignore"):
                both = np.where(alloc > 0, 1.0 / np.maximum(alloc, 1.0), 1e30)
            inv = cache["inverse_allocatable"] = (both[:, 0].copy(), both[:, 1].copy())
        return inv

    def node_cache(self) -> dict[Any, Any]:
        """Return the node-derived cache, emptied whenever the node generation moved."""
        if self._cache_generation != self.generation:
            self.cache.clear()
            self._cache_generation = self.generation
        return self.cache

    # --- resources -------------------------------------------------------------------------

    def resource_column(self, name: str) -> int:
        """Return the column of a resource, adding a zero column for a new extended resource."""
        col = self.resource_index.get(name)
        if col is None:
            col = len(self.resources)
            self.resources.append(name)
            self.resource_index[name] = col
            pad = ((0, 0), (0, 1))
            self._alloc = np.asfortranarray(np.pad(self._alloc, pad))
            self._requested = np.asfortranarray(np.pad(self._requested, pad))
            self._free = np.asfortranarray(np.pad(self._free, pad))
        return col

    def request_vector(self, pi: PodInfo) -> tuple[Array, Array]:
        """Return (columns, amounts) of the pod's requests in this snapshot's columns."""
        cached = pi.vector_cache
        if cached is not None and cached[0] == self._token:
            return cached[1], cached[2]
        items = sorted((self.resource_column(r), v) for r, v in pi.requests.items())
        cols = np.array([c for c, _ in items], np.intp)
        vals = np.array([v for _, v in items], np.int64)
        pi.vector_cache = (self._token, cols, vals)
        return cols, vals

    # --- nodes -----------------------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        """Add a node, or update it when a node of that name is known."""
        info = node_info(node)
        if info.name in self.index:
            self.update_node(node)
            return
        for name in info.allocatable:
            self.resource_column(name)
        i = self.n
        if i == len(self._alloc):
            self._grow(max(8, i))
        self.nodes.append(info)
        self.index[info.name] = i
        self.node_pods.append(set())
        self._alloc[i] = 0
        self._requested[i] = 0
        self._nonzero[i] = 0
        self._set_allocatable(i, info)
        self._node_changed()

    def _grow(self, rows: int) -> None:
        def more(arr: Array) -> Array:
            extra = np.zeros((rows, arr.shape[1]), arr.dtype)
            return np.asfortranarray(np.concatenate([arr, extra]))

        self._alloc = more(self._alloc)
        self._requested = more(self._requested)
        self._free = more(self._free)
        self._nonzero = more(self._nonzero)

    def update_node(self, node: Obj) -> None:
        """Replace a known node's labels, taints, allocatable and images."""
        info = node_info(node)
        i = self.index[info.name]
        for name in info.allocatable:
            self.resource_column(name)
        self.nodes[i] = info
        self._alloc[i] = 0
        self._set_allocatable(i, info)
        self._node_changed()

    def _set_allocatable(self, i: int, info: NodeInfo) -> None:
        for name, value in info.allocatable.items():
            self._alloc[i, self.resource_index[name]] = value
        self._free[i] = self._alloc[i] - self._requested[i]

    def remove_node(self, name: str) -> None:
        """Remove a node and forget every pod accounted on it."""
        i = self.index[name]
        for key in list(self.node_pods[i]):
            self.remove_pod(key)
        n = self.n
        for arr in (self._alloc, self._requested, self._free, self._nonzero):
            arr[i : n - 1] = arr[i + 1 : n]
        del self.nodes[i]
        del self.node_pods[i]
        self.index = {info.name: j for j, info in enumerate(self.nodes)}
        self.pod_node = {k: (j - 1 if j > i else j) for k, j in self.pod_node.items()}
        self.ports = {
            pp: {(j - 1 if j > i else j): c for j, c in users.items()}
            for pp, users in self.ports.items()
        }
        self._node_changed()

    def _node_changed(self) -> None:
        self.generation += 1
        self._label_counts.clear()

    # --- pods ------------------------------------------------------------------------------

    def add_pod(self, pod: Obj | PodInfo) -> PodInfo | None:
        """Account a pod bound to a node (spec.nodeName); confirms an assumed pod."""
        pi = pod if isinstance(pod, PodInfo) else pod_info(pod)
        if not pi.node_name:
            return None
        if pi.key in self.pods:
            same = self.pod_node[pi.key] == self.index.get(pi.node_name, -1)
            self.remove_pod(pi.key)  # re-account: labels, ports or requests may have changed
            if same:
                self._account(pi, self.index[pi.node_name], 1)
                return pi
        i = self.index.get(pi.node_name)
        if i is None:
            return None  # bound to a node we do not know (yet): nothing to account against
        self._account(pi, i, 1)
        return pi

    def assume(self, pod: Obj | PodInfo, node_name: str) -> PodInfo:
        """Account a pod on a node before its binding is confirmed."""
        pi = pod if isinstance(pod, PodInfo) else pod_info(pod)
        if pi.key in self.pods:
            raise ValueError(f"pod {pi.key} is already accounted on a node")
        self._account(pi, self.index[node_name], 1)
        self.assumed.add(pi.key)
        return pi

    def confirm(self, key: str) -> None:
        """Mark an assumed pod as bound (the simulator's stand-in for the binding's echo)."""
        self.assumed.discard(key)

    def forget(self, key: str) -> None:
        """Undo ``assume`` for a pod whose binding failed or was abandoned."""
        if key not in self.assumed:
            raise ValueError(f"pod {key} is not assumed")
        self.remove_pod(key)

    def remove_pod(self, key: str) -> None:
        """Stop accounting a pod (deleted, or its node went away)."""
        pi = self.pods.get(key)
        if pi is not None:
            self._account(pi, self.pod_node[key], -1)
            self.assumed.discard(key)

    def node_of(self, key: str) -> str | None:
        """Return the node a pod is accounted on, or None."""
        i = self.pod_node.get(key)
        return None if i is None else self.nodes[i].name

    def _account(self, pi: PodInfo, i: int, sign: int) -> None:
        cols, vals = self.request_vector(pi)
        requested, free = self._requested, self._free
        for c, v in zip(cols.tolist(), vals.tolist(), strict=True):
            requested[i, c] += sign * v
            free[i, c] -= sign * v
        self._nonzero[i, 0] += sign * pi.nonzero_cpu
        self._nonzero[i, 1] += sign * pi.nonzero_memory
        if sign > 0:
            self.pods[pi.key] = pi
            self.pod_node[pi.key] = i
            self.node_pods[i].add(pi.key)
        else:
            del self.pods[pi.key]
            del self.pod_node[pi.key]
            self.node_pods[i].discard(pi.key)
        self._index_labels(pi, i, sign)
        for proto, ip, port in pi.host_ports:
            users = self.ports.setdefault((proto, port), {}).setdefault(i, Counter())
            users[ip] += sign
            if users[ip] <= 0:
                del users[ip]
        if pi.anti_affinity_terms:
            if sign > 0:
                self.anti_affinity_pods[pi.key] = pi
            else:
                self.anti_affinity_pods.pop(pi.key, None)

    def _index_labels(self, pi: PodInfo, i: int, sign: int) -> None:
        ns_set = self.namespace_pods.setdefault(pi.namespace, set())
        if sign > 0:
            ns_set.add(pi.key)
        else:
            ns_set.discard(pi.key)
        for k, v in pi.labels.items():
            lk = (pi.namespace, k, v)
            keys = self.label_pods.setdefault(lk, set())
            if sign > 0:
                keys.add(pi.key)
            else:
                keys.discard(pi.key)
            counts = self._label_counts.get(lk)
            if counts is not None:
                counts[i] += sign

    # --- derived per-node views -----------------------------------------------------------

    def label_counts(self, namespace: str, key: str, value: str) -> Array:
        """Return how many pods labelled key=value in a namespace sit on each node."""
        lk = (namespace, key, value)
        counts = self._label_counts.get(lk)
        if counts is None:
            counts = np.zeros(max(len(self._alloc), 1), np.int64)
            for pod_key in self.label_pods.get(lk, ()):
                counts[self.pod_node[pod_key]] += 1
            self._label_counts[lk] = counts
        return counts[: self.n]

    def label_codes(self, key: str) -> tuple[Array, dict[str, int]]:
        """Return each node's value code for a label key (-1 when absent) and the value codes."""
        cache = self.node_cache()
        found = cache.get(("label", key))
        if found is None:
            vocab: dict[str, int] = {}
            codes = np.fromiter(
                (
                    vocab.setdefault(info.labels[key], len(vocab)) if key in info.labels else -1
                    for info in self.nodes
                ),
                np.int32,
                count=self.n,
            )
            found = cache[("label", key)] = (codes, vocab)
        return found

    def taint_groups(self) -> tuple[Array, list[list[Obj]]]:
        """Return each node's taint-set id and the distinct taint sets, for fast toleration."""
        cache = self.node_cache()
        found = cache.get("taints")
        if found is None:
            ids: dict[Any, int] = {}
            groups: list[list[Obj]] = []
            codes = np.empty(self.n, np.int32)
            for i, info in enumerate(self.nodes):
                sig = tuple(
                    (t.get("key", ""), t.get("value", ""), t.get("effect", "")) for t in info.taints
                )
                if sig not in ids:
                    ids[sig] = len(groups)
                    groups.append(info.taints)
                codes[i] = ids[sig]
            found = cache["taints"] = (codes, groups)
        return found

    def image_sizes(self, image: str) -> Array | None:
        """Return the size of an image on each node (0 where absent), or None if on no node."""
        cache = self.node_cache()
        table = cache.get("images")
        if table is None:
            table = {}
            for i, info in enumerate(self.nodes):
                for name, size in info.images.items():
                    table.setdefault(name, []).append((i, size))
            cache["images"] = table
        entries = table.get(normalize_image(image))
        if not entries:
            return None
        sizes = np.zeros(self.n, np.int64)
        for i, size in entries:
            sizes[i] = size
        return sizes

    def unschedulable_mask(self) -> Array:
        """Return which nodes have spec.unschedulable set."""
        cache = self.node_cache()
        found = cache.get("unschedulable")
        if found is None:
            found = cache["unschedulable"] = np.array(
                [info.unschedulable for info in self.nodes], bool
            )
        return found
