"""metrics.k8s.io/v1beta1: PodMetrics and NodeMetrics from the agents' cgroup readings.

What metrics-server does, in the api server: each request asks the agents of the Ready nodes
for their usage summary (GET /stats/summary over the pinned, client-authenticated TLS of
node_proxy.AgentDialer) concurrently, with a short timeout, and answers in metrics.k8s.io shape
(cpu in nanocores "123n", memory working set in "Ki"). `kubectl top pod|node` reads these.

Invariants:
- Anyone who may list pods (nodes) may read their metrics; the answer only contains pods that
  exist in the store and match the label selector.
- A node whose agent does not answer is left out (as metrics-server does), never an error.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from dockyard.api import app_keys, status
from dockyard.api.authz import authorize
from dockyard.api.node_proxy import AgentDialer
from dockyard.api.responses import json_response
from dockyard.api.storage import ResourceStorage
from dockyard.api.tokens import User
from dockyard.objects.resources import lookup

GROUP, VERSION = "metrics.k8s.io", "v1beta1"
PREFIX = f"/apis/{GROUP}/{VERSION}"
SCRAPE_TIMEOUT = 5.0
Obj = dict[str, Any]
RESOURCES = [("pods", "PodMetrics", True), ("nodes", "NodeMetrics", False)]


def resource_list() -> Obj:
    """Return the APIResourceList of metrics.k8s.io/v1beta1."""
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [{"name": plural, "singularName": "", "namespaced": namespaced,
                           "kind": kind, "verbs": ["get", "list"]}
                          for plural, kind, namespaced in RESOURCES]}  # fmt: skip


def group_entry() -> Obj:
    """Return the group's entry of an APIGroupList."""
    version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {"name": GROUP, "versions": [version], "preferredVersion": version}


def aggregated_item() -> Obj:
    """Return the group's entry of an aggregated discovery list."""
    return {"metadata": {"name": GROUP}, "versions": [{"version": VERSION, "freshness": "Current",
            "resources": [{"resource": plural, "responseKind": {"group": GROUP,
                           "version": VERSION, "kind": kind},
                           "scope": "Namespaced" if namespaced else "Cluster",
                           "singularResource": plural[:-1], "verbs": ["get", "list"]}
                          for plural, kind, namespaced in RESOURCES]}]}  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register the metrics routes (before the generic /apis route)."""
    router = app.router
    router.add_get(f"{PREFIX}/nodes", _nodes)
    router.add_get(f"{PREFIX}/nodes/{{name}}", _nodes)
    router.add_get(f"{PREFIX}/pods", _pods)
    router.add_get(f"{PREFIX}/namespaces/{{namespace}}/pods", _pods)
    router.add_get(f"{PREFIX}/namespaces/{{namespace}}/pods/{{name}}", _pods)


async def _summaries(request: web.Request) -> dict[str, Obj]:
    storage: ResourceStorage = request.app[app_keys.STORAGE]
    dialer: AgentDialer = request.app[app_keys.AGENT_DIALER]
    info = lookup("", "v1", "nodes")
    assert info is not None
    nodes = (await storage.list(info, None)).items

    async def scrape(node: Obj) -> tuple[str, Obj | None]:
        name = str(node["metadata"]["name"])
        with contextlib.suppress(Exception):
            base, context = await dialer.endpoint(name)
            timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT)
            async with dialer.session().get(f"{base}/stats/summary", ssl=context,
                                            timeout=timeout) as resp:  # fmt: skip
                if resp.status == 200:
                    data: Obj = await resp.json()
                    return name, data
        return name, None

    answers = await asyncio.gather(*(scrape(n) for n in nodes))
    return {name: data for name, data in answers if data is not None}


def _usage(entry: Obj) -> Obj:
    return {"cpu": f"{int(entry.get('cpuNanoCores', 0))}n",
            "memory": f"{int(entry.get('memoryWorkingSetBytes', 0)) // 1024}Ki"}


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(seconds: float) -> str:
    return f"{seconds:.3f}s".replace(".000s", "s")


async def _nodes(request: web.Request) -> web.Response:
    user: User = request["user"]
    name = request.match_info.get("name")
    authorize(user, "get" if name else "list", "nodes", None, None, name)
    summaries = await _summaries(request)
    items = []
    for node, data in sorted(summaries.items()):
        if name and node != name:
            continue
        items.append({"kind": "NodeMetrics", "apiVersion": f"{GROUP}/{VERSION}",
                      "metadata": {"name": node, "creationTimestamp": _stamp(data["timestamp"])},
                      "timestamp": _stamp(data["timestamp"]),
                      "window": _window(data["node"].get("window", 10)),
                      "usage": _usage(data["node"])})  # fmt: skip
    return _answer(items, "NodeMetrics", name, "nodes")


async def _pods(request: web.Request) -> web.Response:
    user: User = request["user"]
    namespace, name = request.match_info.get("namespace"), request.match_info.get("name")
    authorize(user, "get" if name else "list", "pods", None, namespace, name)
    storage: ResourceStorage = request.app[app_keys.STORAGE]
    info = lookup("", "v1", "pods")
    assert info is not None
    pods = (await storage.list(info, namespace,
                               label_selector=request.query.get("labelSelector", ""),
                               field_selector=request.query.get("fieldSelector", ""))).items
    wanted = {(p["metadata"].get("namespace"), p["metadata"]["name"]): p for p in pods
              if not name or p["metadata"]["name"] == name}  # fmt: skip
    items: list[Obj] = []
    for data in (await _summaries(request)).values():
        for entry in data.get("pods", {}).values():
            pod = wanted.get((entry["namespace"], entry["name"]))
            if pod is None or pod["metadata"].get("uid") != entry.get("uid"):
                continue
            window = max((c.get("window", 10) for c in entry["containers"]), default=10)
            items.append({
                "kind": "PodMetrics", "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {"name": entry["name"], "namespace": entry["namespace"],
                             "labels": pod["metadata"].get("labels") or {},
                             "creationTimestamp": _stamp(data["timestamp"])},
                "timestamp": _stamp(data["timestamp"]), "window": _window(window),
                "containers": [{"name": c["name"], "usage": _usage(c)}
                               for c in entry["containers"]],
            })  # fmt: skip
    items.sort(key=lambda i: (i["metadata"]["namespace"], i["metadata"]["name"]))
    return _answer(items, "PodMetrics", name, "pods")


def _answer(items: list[Obj], kind: str, name: str | None, plural: str) -> web.Response:
    if name:
        if not items:
            raise status.StatusError(404, "NotFound", f'{plural}.{GROUP} "{name}" not found')
        return json_response(items[0])
    return json_response({"kind": f"{kind}List", "apiVersion": f"{GROUP}/{VERSION}",
                          "metadata": {}, "items": items})  # fmt: skip
