"""Builders for scheduler tests: ``make_pod("p").requests(cpu="1")``, ``make_node("n1")...``.

Each builder is the Kubernetes-shaped dict itself (a dict subclass whose methods edit it and
return it), so a built object goes straight into the snapshot and the scheduler.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _res(values: dict[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in values.items()}


class PodBuilder(dict[str, Any]):
    """A v1 Pod under construction."""

    def __init__(self, name: str, namespace: str = "default") -> None:
        super().__init__(
            apiVersion="v1",
            kind="Pod",
            metadata={"name": name, "namespace": namespace, "labels": {}},
            spec={"containers": [{"name": "c", "image": "busybox"}]},
        )

    @property
    def spec(self) -> Obj:
        return self["spec"]  # type: ignore[no-any-return]

    def requests(self, extended: dict[str, str] | None = None, **values: str) -> PodBuilder:
        """Set the first container's requests (ephemeral_storage → ephemeral-storage)."""
        reqs = {**_res(values), **(extended or {})}
        self.spec["containers"][0].setdefault("resources", {})["requests"] = reqs
        return self

    def container(self, **values: str) -> PodBuilder:
        """Add another container with these requests."""
        n = len(self.spec["containers"])
        self.spec["containers"].append(
            {"name": f"c{n}", "image": "busybox", "resources": {"requests": _res(values)}}
        )
        return self

    def init_container(self, sidecar: bool = False, **values: str) -> PodBuilder:
        """Add an init container (a restartable sidecar when sidecar=True)."""
        inits = self.spec.setdefault("initContainers", [])
        c: Obj = {"name": f"i{len(inits)}", "image": "busybox"}
        c["resources"] = {"requests": _res(values)}
        if sidecar:
            c["restartPolicy"] = "Always"
        inits.append(c)
        return self

    def labels(self, **values: str) -> PodBuilder:
        self["metadata"]["labels"].update(values)
        return self

    def priority(self, value: int) -> PodBuilder:
        self.spec["priority"] = value
        return self

    def on_node(self, node: str) -> PodBuilder:
        self.spec["nodeName"] = node
        return self

    def scheduler(self, name: str) -> PodBuilder:
        self.spec["schedulerName"] = name
        return self

    def node_selector(self, **values: str) -> PodBuilder:
        self.spec["nodeSelector"] = values
        return self

    def toleration(
        self, key: str = "", value: str = "", effect: str = "", operator: str = "Equal"
    ) -> PodBuilder:
        t = {"key": key, "operator": operator, "value": value, "effect": effect}
        self.spec.setdefault("tolerations", []).append({k: v for k, v in t.items() if v})
        return self

    def host_port(self, port: int, protocol: str = "TCP", ip: str = "") -> PodBuilder:
        p: Obj = {"containerPort": port, "hostPort": port, "protocol": protocol}
        if ip:
            p["hostIP"] = ip
        self.spec["containers"][0].setdefault("ports", []).append(p)
        return self

    def _affinity(self, kind: str) -> Obj:
        return self.spec.setdefault("affinity", {}).setdefault(kind, {})  # type: ignore[no-any-return]

    def require_node(self, *terms: Obj) -> PodBuilder:
        """Add required nodeAffinity terms (ORed), each {"matchExpressions": [...]}."""
        req = self._affinity("nodeAffinity").setdefault(
            "requiredDuringSchedulingIgnoredDuringExecution", {"nodeSelectorTerms": []}
        )
        req["nodeSelectorTerms"].extend(terms)
        return self

    def prefer_node(self, weight: int, term: Obj) -> PodBuilder:
        self._affinity("nodeAffinity").setdefault(
            "preferredDuringSchedulingIgnoredDuringExecution", []
        ).append({"weight": weight, "preference": term})
        return self

    def pod_affinity(
        self, topology_key: str, anti: bool = False, weight: int = 0, **match_labels: str
    ) -> PodBuilder:
        """Add a pod (anti-)affinity term; weight > 0 makes it preferred."""
        term = {"labelSelector": {"matchLabels": match_labels}, "topologyKey": topology_key}
        kind = "podAntiAffinity" if anti else "podAffinity"
        if weight:
            self._affinity(kind).setdefault(
                "preferredDuringSchedulingIgnoredDuringExecution", []
            ).append({"weight": weight, "podAffinityTerm": term})
        else:
            self._affinity(kind).setdefault(
                "requiredDuringSchedulingIgnoredDuringExecution", []
            ).append(term)
        return self

    def spread(
        self, max_skew: int, topology_key: str, when: str = "DoNotSchedule", **match_labels: str
    ) -> PodBuilder:
        self.spec.setdefault("topologySpreadConstraints", []).append(
            {
                "maxSkew": max_skew,
                "topologyKey": topology_key,
                "whenUnsatisfiable": when,
                "labelSelector": {"matchLabels": match_labels},
            }
        )
        return self

    def image(self, name: str) -> PodBuilder:
        self.spec["containers"][0]["image"] = name
        return self


class NodeBuilder(dict[str, Any]):
    """A v1 Node under construction."""

    def __init__(self, name: str) -> None:
        super().__init__(
            apiVersion="v1",
            kind="Node",
            metadata={"name": name, "labels": {"kubernetes.io/hostname": name}},
            spec={},
            status={"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        )

    def allocatable(self, extended: dict[str, str] | None = None, **values: str) -> NodeBuilder:
        self["status"]["allocatable"].update({**_res(values), **(extended or {})})
        return self

    def labels(self, **values: str) -> NodeBuilder:
        self["metadata"]["labels"].update(values)
        return self

    def label(self, key: str, value: str) -> NodeBuilder:
        self["metadata"]["labels"][key] = value
        return self

    def taint(self, key: str, value: str = "", effect: str = "NoSchedule") -> NodeBuilder:
        self["spec"].setdefault("taints", []).append({"key": key, "value": value, "effect": effect})
        return self

    def unschedulable(self) -> NodeBuilder:
        self["spec"]["unschedulable"] = True
        return self

    def image(self, name: str, size: int) -> NodeBuilder:
        self["status"].setdefault("images", []).append({"names": [name], "sizeBytes": size})
        return self


def make_pod(name: str, namespace: str = "default") -> PodBuilder:
    """Return a pod named name with one busybox container and no requests."""
    return PodBuilder(name, namespace)


def make_node(name: str) -> NodeBuilder:
    """Return a node with 4 cpu, 8Gi memory and 110 pods allocatable."""
    return NodeBuilder(name)


def expr(key: str, operator: str, *values: str) -> Obj:
    """Return a NodeSelectorTerm with one requirement."""
    req: Obj = {"key": key, "operator": operator}
    if values:
        req["values"] = list(values)
    return {"matchExpressions": [req]}
