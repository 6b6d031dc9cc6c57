"""kubectl-style verbs that change or summarise the cluster: scale, set image, cordon, uncordon,
drain, events, top, autoscale, port-forward, version and status. (get/describe live in
``get``, apply/diff/delete in ``apply``, rollout in ``rollout``.)

Each speaks only standard Kubernetes API calls, the ones kubectl sends:
- scale: PATCH ``.../<kind>/<name>/scale`` (merge patch ``spec.replicas``);
- set image: strategic merge patch of the containers by name;
- cordon/uncordon: merge patch ``spec.unschedulable``; drain: cordon, then POST
  ``pods/<name>/eviction`` (policy/v1 Eviction) for every pod on the node, retrying while a
  PodDisruptionBudget answers 429, then waits until the pods are gone;
- top and status: ``metrics.k8s.io/v1beta1`` PodMetrics/NodeMetrics plus nodes and pods;
- autoscale: POST an ``autoscaling/v2`` HorizontalPodAutoscaler;
- port-forward: needs ``pods/portforward``; a server without it gets a clear error.

Invariant: quantities are read with ``objects.quantity`` (cpu in millicores, memory in bytes),
so "250m", "1", "128Mi" and metrics' "123456n" all compare correctly.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dockyard import __version__
from dockyard.cli.kubeargs import (
    CliError,
    Kube,
    KubeCommand,
    OutputOption,
    kube_flags,
    namespace_for,
    one_target,
    parse_duration,
    run_on_api,
    split_targets,
)
from dockyard.cli.printers import aligned, check_output, dump, echo, info_name, print_objects
from dockyard.client import ApiClient, ApiError, NotFoundError
from dockyard.client.api import resource_path
from dockyard.objects.meta import since
from dockyard.objects.quantity import QuantityError, cpu_millis, to_int

Obj = dict[str, Any]
METRICS = "metrics.k8s.io/v1beta1"

set_app = typer.Typer(help="Set specific features on objects.", no_args_is_help=True)
top_app = typer.Typer(help="Show cpu and memory use of pods or nodes.", no_args_is_help=True)


# -- scale ----------------------------------------------------------------------------------


@kube_flags()
def scale(
    kube: Kube,
    target: list[str] = typer.Argument(..., help="TYPE/NAME (or TYPE NAME)."),
    replicas: int = typer.Option(..., "--replicas", help="The new number of replicas."),
) -> None:
    """Set a new size for a Deployment or ReplicaSet (its scale subresource)."""
    if replicas < 0:
        raise typer.BadParameter("--replicas must be 0 or more")
    run_on_api(kube, lambda api, ns: _scale(api, ns, target, replicas))


async def _scale(api: ApiClient, ns: str, args: list[str], replicas: int) -> None:
    for info, name in split_targets(args):
        if name is None:
            raise CliError("scale needs a name: TYPE/NAME")
        if "scale" not in info.subresources:
            raise CliError(f"{info.plural} cannot be scaled")
        rc = api.resource(info.api_version, info.plural, ns)
        await rc.patch(name, {"spec": {"replicas": replicas}}, "merge", subresource="scale")
        print(f"{info_name(info, name)} scaled")


# -- set image ------------------------------------------------------------------------------


@set_app.command("image", cls=KubeCommand)
@kube_flags()
def set_image(
    kube: Kube,
    target: str = typer.Argument(..., help="TYPE/NAME, e.g. deployment/web."),
    images: list[str] = typer.Argument(..., help="CONTAINER=IMAGE (* for every container)."),
) -> None:
    """Update the image of containers of a pod template (or pod)."""
    pairs = []
    for item in images:
        container, sep, image = item.partition("=")
        if not sep or not container or not image:
            raise typer.BadParameter(f"{item!r}: use CONTAINER=IMAGE")
        pairs.append((container, image))
    run_on_api(kube, lambda api, ns: _set_image(api, ns, target, pairs))


async def _set_image(api: ApiClient, ns: str, target: str, pairs: list[tuple[str, str]]) -> None:
    info, name = one_target(target)
    rc = api.resource(info.api_version, info.plural, namespace_for(info, ns))
    obj = await rc.get(name)
    pod_spec = obj["spec"] if info.kind == "Pod" else obj["spec"]["template"]["spec"]
    names = [c["name"] for c in pod_spec.get("containers") or []]
    containers = []
    for container, image in pairs:
        chosen = names if container == "*" else [container]
        for c in chosen:
            if c not in names:
                raise CliError(f'unable to find container named "{c}"')
            containers.append({"name": c, "image": image})
    body: Obj = {"containers": containers}
    patch = {"spec": body} if info.kind == "Pod" else {"spec": {"template": {"spec": body}}}
    await rc.patch(name, patch, "strategic")
    print(f"{info_name(info, name)} image updated")


# -- cordon / uncordon / drain --------------------------------------------------------------


@kube_flags(namespace=False)
def cordon(
    kube: Kube,
    node: str = typer.Argument(..., help="Node name."),
) -> None:
    """Mark a node unschedulable."""
    run_on_api(kube, lambda api, _: _set_unschedulable(api, node, True))


@kube_flags(namespace=False)
def uncordon(
    kube: Kube,
    node: str = typer.Argument(..., help="Node name."),
) -> None:
    """Mark a node schedulable again."""
    run_on_api(kube, lambda api, _: _set_unschedulable(api, node, False))


async def _set_unschedulable(api: ApiClient, node: str, unschedulable: bool) -> None:
    rc = api.resource("v1", "nodes")
    current = await rc.get(node)
    word = "cordoned" if unschedulable else "uncordoned"
    if bool((current.get("spec") or {}).get("unschedulable")) == unschedulable:
        print(f"node/{node} already {word}")
        return
    await rc.patch(node, {"spec": {"unschedulable": True if unschedulable else None}}, "merge")
    print(f"node/{node} {word}", flush=True)


@kube_flags(namespace=False)
def drain(
    kube: Kube,
    node: str = typer.Argument(..., help="Node name."),
    force: bool = typer.Option(False, "--force", help="Also evict pods no controller owns."),
    ignore_daemonsets: bool = typer.Option(False, "--ignore-daemonsets",
                                           help="Accepted for kubectl parity (no DaemonSets)."),
    delete_emptydir_data: bool = typer.Option(False, "--delete-emptydir-data",
                                              help="Evict pods with emptyDir volumes too."),
    timeout: float = typer.Option(300.0, "--timeout", parser=parse_duration,
                                  help="Seconds to wait for evictions."),
) -> None:
    """Cordon a node and evict its pods (honouring PodDisruptionBudgets)."""
    del ignore_daemonsets
    run_on_api(kube, lambda api, _: _drain(api, node, force, delete_emptydir_data, timeout))


async def _drain(api: ApiClient, node: str, force: bool, emptydir: bool, timeout: float) -> None:
    await _set_unschedulable(api, node, True)
    pods = (await api.resource("v1", "pods").list(field_selector=f"spec.nodeName={node}")).items
    pods = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    _check_drainable(pods, force, emptydir)
    deadline = time.monotonic() + timeout
    await asyncio.gather(*(_evict(api, p, deadline) for p in pods))
    print(f"node/{node} drained")


def _check_drainable(pods: list[Obj], force: bool, emptydir: bool) -> None:
    problems = []
    for pod in pods:
        meta = pod["metadata"]
        name = f"{meta.get('namespace')}/{meta['name']}"
        if not force and not meta.get("ownerReferences"):
            problems.append(f"cannot delete Pods that declare no controller (use --force to "
                            f"override): {name}")
        volumes = (pod.get("spec") or {}).get("volumes") or []
        if not emptydir and any("emptyDir" in v for v in volumes):
            problems.append(f"cannot delete Pods with local storage (use --delete-emptydir-data "
                            f"to override): {name}")
    if problems:
        raise CliError("unable to drain node: " + "; ".join(problems))


async def _evict(api: ApiClient, pod: Obj, deadline: float) -> None:
    meta = pod["metadata"]
    rc = api.resource("v1", "pods", meta["namespace"])
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]}}
    while True:
        try:
            await rc.create_subresource(meta["name"], "eviction", body)
            break
        except NotFoundError:
            return
        except ApiError as e:
            if e.status != 429 or time.monotonic() > deadline:
                raise
            echo(f'error when evicting pods/"{meta["name"]}" -n "{meta["namespace"]}" '
                 "(will retry after 5s): " + e.message)
            await asyncio.sleep(5)
    echo(f"evicting pod {meta['namespace']}/{meta['name']}")
    while time.monotonic() < deadline:
        try:
            current = await rc.get(meta["name"])
        except NotFoundError:
            echo(f"pod/{meta['name']} evicted")
            return
        if current["metadata"].get("uid") != meta.get("uid"):
            echo(f"pod/{meta['name']} evicted")
            return
        await asyncio.sleep(0.5)
    raise CliError(f"timed out waiting for pod {meta['name']} to be evicted")


# -- events ---------------------------------------------------------------------------------


@kube_flags(all_namespaces=True)
def events(
    kube: Kube,
    for_object: str = typer.Option("", "--for", help="Only events of TYPE/NAME."),
    types: str = typer.Option("", "--types", help="Only these types: Normal,Warning."),
    output: str = OutputOption,
) -> None:
    """List events, oldest first (kubectl events)."""
    check_output(output, ("", "json", "yaml", "name"))
    run_on_api(kube, lambda api, ns: _events(api, ns, kube.all_namespaces, for_object, types,
                                             output))  # fmt: skip


async def _events(api: ApiClient, ns: str, all_namespaces: bool, for_object: str, types: str,
                  output: str) -> None:  # fmt: skip
    from dockyard.cli.get import event_time

    fields = []
    if for_object:
        info, name = one_target(for_object)
        fields = [f"involvedObject.kind={info.kind}", f"involvedObject.name={name}"]
    rc = api.resource("v1", "events", None if all_namespaces else ns)
    listed = await rc.list(field_selector=",".join(fields) or None)
    wanted = {t.strip() for t in types.split(",") if t.strip()}
    items = sorted((e for e in listed.items if not wanted or e.get("type") in wanted),
                   key=event_time)
    if output:
        print_objects(items, output, single=False)
        return
    if not items:
        print(f"No events found in {'any' if all_namespaces else ns} namespace.",
              file=sys.stderr)
        return
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    headers = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    rows = []
    for e in items:
        involved = e.get("involvedObject") or {}
        obj = f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
        row = [since(event_time(e), now), e.get("type", ""), e.get("reason", ""), obj,
               str(e.get("message", "")).strip()]
        if all_namespaces:
            row.insert(0, (e.get("metadata") or {}).get("namespace", ""))
        rows.append(row)
    if all_namespaces:
        headers.insert(0, "NAMESPACE")
    print(aligned(headers, rows))


# -- top ------------------------------------------------------------------------------------


@top_app.command("pod", cls=KubeCommand)
@kube_flags(all_namespaces=True)
def top_pod(
    kube: Kube,
    name: str = typer.Argument("", help="One pod (default: all)."),
    selector: str = typer.Option("", "--selector", "-l", help="Label selector."),
    output: str = OutputOption,
) -> None:
    """Show cpu and memory use of pods (metrics.k8s.io)."""
    check_output(output, ("", "json", "yaml"))
    run_on_api(kube, lambda api, ns: _top_pod(api, None if kube.all_namespaces else ns, name,
                                              selector, output))  # fmt: skip


async def _top_pod(api: ApiClient, ns: str | None, name: str, selector: str, output: str) -> None:
    """Print the pods' metrics in ns (None: in every namespace, with a NAMESPACE column)."""
    items = await pod_metrics(api, ns, selector)
    if name:
        items = [m for m in items if m["metadata"]["name"] == name]
        if not items:
            raise CliError(f'podmetrics.metrics.k8s.io "{name}" not found')
    if output:
        print(dump(items, output))
        return
    if not items:
        raise CliError("metrics not available yet")
    rows = []
    for m in items:
        cpu, memory = pod_usage(m)
        row = [m["metadata"]["name"], f"{cpu}m", f"{memory // (1024 * 1024)}Mi"]
        if ns is None:
            row.insert(0, m["metadata"].get("namespace", ""))
        rows.append(row)
    headers = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    if ns is None:
        headers.insert(0, "NAMESPACE")
    print(aligned(headers, rows))


async def pod_metrics(api: ApiClient, ns: str | None, selector: str = "") -> list[Obj]:
    """Return PodMetrics items (CliError when the metrics API is not served)."""
    path = resource_path(METRICS, "pods", ns)
    try:
        answer: Obj = await api.request("GET", path, params={"labelSelector": selector or None})
    except NotFoundError:
        raise CliError("Metrics API not available") from None
    return list(answer.get("items") or [])


def pod_usage(metrics: Obj) -> tuple[int, int]:
    """Return (cpu millicores, memory bytes) summed over a PodMetrics' containers."""
    cpu = memory = 0
    for c in metrics.get("containers") or []:
        usage = c.get("usage") or {}
        cpu += _millis(usage.get("cpu", "0"))
        memory += _bytes(usage.get("memory", "0"))
    return cpu, memory


def _millis(value: Any) -> int:
    try:
        return cpu_millis(value)
    except QuantityError:
        return 0


def _bytes(value: Any) -> int:
    try:
        return to_int(value)
    except QuantityError:
        return 0


@top_app.command("node", cls=KubeCommand)
@kube_flags(namespace=False)
def top_node(
    kube: Kube,
    name: str = typer.Argument("", help="One node (default: all)."),
    output: str = OutputOption,
) -> None:
    """Show cpu and memory use of nodes (metrics.k8s.io)."""
    check_output(output, ("", "json", "yaml"))
    run_on_api(kube, lambda api, _: _top_node(api, name, output))


async def _top_node(api: ApiClient, name: str, output: str) -> None:
    usage = await node_metrics(api)
    nodes = (await api.resource("v1", "nodes").list()).items
    if name:
        usage = {k: v for k, v in usage.items() if k == name}
        if not usage:
            raise CliError(f'nodemetrics.metrics.k8s.io "{name}" not found')
    if output:
        print(dump([{"name": k, "cpuMillis": v[0], "memoryBytes": v[1]}
                    for k, v in usage.items()], output))
        return
    allocatable = {n["metadata"]["name"]: _allocatable(n) for n in nodes}
    rows = []
    for node, (cpu, memory) in sorted(usage.items()):
        total_cpu, total_mem = allocatable.get(node, (0, 0))
        rows.append([node, f"{cpu}m", _percent(cpu, total_cpu),
                     f"{memory // (1024 * 1024)}Mi", _percent(memory, total_mem)])
    if not rows:
        raise CliError("metrics not available yet")
    print(aligned(["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows))


async def node_metrics(api: ApiClient) -> dict[str, tuple[int, int]]:
    """Return {node: (cpu millicores, memory bytes)} from NodeMetrics."""
    try:
        answer: Obj = await api.request("GET", resource_path(METRICS, "nodes"))
    except NotFoundError:
        raise CliError("Metrics API not available") from None
    out = {}
    for m in answer.get("items") or []:
        usage = m.get("usage") or {}
        out[m["metadata"]["name"]] = (_millis(usage.get("cpu", "0")),
                                      _bytes(usage.get("memory", "0")))
    return out


def _allocatable(node: Obj) -> tuple[int, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return _millis(alloc.get("cpu", "0")), _bytes(alloc.get("memory", "0"))


def _percent(used: int, total: int) -> str:
    return f"{used * 100 // total}%" if total else "<unknown>"


# -- autoscale ------------------------------------------------------------------------------


@kube_flags()
def autoscale(
    kube: Kube,
    target: str = typer.Argument(..., help="deployment/NAME."),
    min_replicas: int = typer.Option(1, "--min", help="Lower bound of replicas."),
    max_replicas: int = typer.Option(..., "--max", help="Upper bound of replicas."),
    cpu_percent: int = typer.Option(80, "--cpu-percent", help="Target average cpu use."),
    name: str = typer.Option("", "--name", help="Name of the autoscaler (default: target's)."),
    output: str = OutputOption,
) -> None:
    """Create a HorizontalPodAutoscaler for a Deployment or ReplicaSet."""
    check_output(output, ("", "json", "yaml", "name"))
    if min_replicas < 1 or max_replicas < min_replicas:
        raise typer.BadParameter("need 1 <= --min <= --max")
    run_on_api(kube, lambda api, ns: _autoscale(api, ns, target, min_replicas, max_replicas,
                                                cpu_percent, name, output))  # fmt: skip


async def _autoscale(api: ApiClient, ns: str, target: str, low: int, high: int, cpu: int,
                     name: str, output: str) -> None:  # fmt: skip
    info, target_name = one_target(target, "deployment")
    if "scale" not in info.subresources:
        raise CliError(f"cannot autoscale a {info.kind}: it has no scale subresource")
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name or target_name, "namespace": ns},
        "spec": {
            "scaleTargetRef": {"apiVersion": info.api_version, "kind": info.kind,
                               "name": target_name},
            "minReplicas": low, "maxReplicas": high,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}],
        },
    }
    await api.resource(info.api_version, info.plural, ns).get(target_name)
    created = await api.resource("autoscaling/v2", "horizontalpodautoscalers",
                                 ns).create(hpa, field_manager="dockyard")
    if output:
        print_objects([created], output, single=True)
    else:
        print(f"horizontalpodautoscaler.autoscaling/{created['metadata']['name']} autoscaled")


# -- port-forward ---------------------------------------------------------------------------


@kube_flags()
def port_forward(
    kube: Kube,
    target: str = typer.Argument(..., help="pod/NAME (or NAME)."),
    ports: list[str] = typer.Argument(..., help="LOCAL:REMOTE port pairs."),
) -> None:
    """Forward local ports to a pod (needs the server to serve pods/portforward)."""
    run_on_api(kube, lambda api, ns: _port_forward(api, ns, target, ports))


async def _port_forward(api: ApiClient, ns: str, target: str, ports: list[str]) -> None:
    info, name = one_target(target, "pod")
    if info.kind != "Pod":
        raise CliError("port-forward here takes a pod: pod/NAME")
    remote = [p.rpartition(":")[2] for p in ports]
    if not all(r.isdigit() for r in remote):
        raise CliError("ports must be LOCAL:REMOTE or REMOTE numbers")
    await api.resource("v1", "pods", ns).get(name)
    path = resource_path("v1", "pods", ns, name, "portforward")
    session = api.session()
    url = api.config.server + path
    try:
        async with session.ws_connect(url, params={"ports": ",".join(remote)},
                                      protocols=("portforward.k8s.io",)) as ws:
            await ws.close()
    except Exception as e:  # aiohttp raises WSServerHandshakeError with the HTTP status
        status = getattr(e, "status", "")
        raise CliError(
            f"the server does not serve pods/portforward ({status or e}): reach the pod "
            "through a Service, or publish a port with `dockyard run -p HOST:CONTAINER`"
        ) from None
    raise CliError("the server accepted pods/portforward but this client does not speak "
                   "its stream protocol yet; use kubectl port-forward")


# -- version and status ---------------------------------------------------------------------


@kube_flags(namespace=False)
def version(
    kube: Kube,
    output: str = OutputOption,
    client_only: bool = typer.Option(False, "--client", help="Only the client's version."),
) -> None:
    """Print the client and server versions."""
    check_output(output, ("", "json", "yaml"))
    client = {"gitVersion": f"v{__version__}", "platform": f"{sys.platform}",
              "program": "dockyard"}
    if client_only:
        _print_version({"clientVersion": client}, output)
        return
    if not output:
        print(f"Client Version: dockyard {__version__}", flush=True)
    server = run_on_api(kube, lambda api, _: _server_version(api))
    if output:
        _print_version({"clientVersion": client, "serverVersion": server}, output)
    else:
        print(f"Server Version: {server.get('gitVersion', '<unknown>')}")


def _print_version(doc: Obj, output: str) -> None:
    if output:
        print(dump(doc, output))
    else:
        print(f"Client Version: dockyard {__version__}")


async def _server_version(api: ApiClient) -> Obj:
    answer: Obj = await api.request("GET", "/version")
    return answer


@kube_flags(namespace=False)
def status(
    kube: Kube,
    output: str = OutputOption,
) -> None:
    """Show what runs where: nodes, their cpu/memory (requested and used), pods per node."""
    check_output(output, ("", "json", "yaml"))
    report = run_on_api(kube, lambda api, _: _status(api))
    if output:
        print(dump(report, output))
    else:
        _print_status(report)


async def _status(api: ApiClient) -> Obj:
    nodes = (await api.resource("v1", "nodes").list()).items
    pods = (await api.resource("v1", "pods").list()).items
    try:
        usage = await node_metrics(api)
    except (CliError, ApiError):
        usage = {}  # metrics are optional: show requests only
    return status_report(nodes, pods, usage)


def status_report(nodes: list[Obj], pods: list[Obj], usage: dict[str, tuple[int, int]]) -> Obj:
    """Build the status document: per node, capacity, requested and used, and its pods."""
    report: Obj = {"nodes": [], "pending": []}
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            continue
        node = (pod.get("spec") or {}).get("nodeName")
        entry = {"namespace": pod["metadata"].get("namespace", ""),
                 "name": pod["metadata"]["name"], "phase": phase}
        if node:
            by_node.setdefault(node, []).append(pod)
        else:
            report["pending"].append(entry)
    for node in nodes:
        name = node["metadata"]["name"]
        cpu, memory = _allocatable(node)
        placed = by_node.get(name, [])
        req_cpu = sum(_requests(p)[0] for p in placed)
        req_mem = sum(_requests(p)[1] for p in placed)
        used = usage.get(name)
        report["nodes"].append({
            "name": name, "ready": _ready(node),
            "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
            "cpu": {"allocatableMillis": cpu, "requestedMillis": req_cpu,
                    "usedMillis": used[0] if used else None},
            "memory": {"allocatableBytes": memory, "requestedBytes": req_mem,
                       "usedBytes": used[1] if used else None},
            "pods": [{"namespace": p["metadata"].get("namespace", ""),
                      "name": p["metadata"]["name"],
                      "phase": (p.get("status") or {}).get("phase", "")} for p in placed],
        })
    return report


def _requests(pod: Obj) -> tuple[int, int]:
    cpu = memory = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += _millis(req.get("cpu", "0"))
        memory += _bytes(req.get("memory", "0"))
    return cpu, memory


def _ready(node: Obj) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def bar(used: int | None, total: int, width: int = 20) -> str:
    """Draw a usage bar like "[#####...............] 25%" (blank when unknown)."""
    if used is None or not total:
        return "[" + " " * width + "]   -"
    filled = min(width, round(width * used / total))
    return "[" + "#" * filled + "." * (width - filled) + f"] {used * 100 // total:3d}%"


def _print_status(report: Obj) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not report["nodes"]:
        console.print("no nodes: start `dockyard server` (with its agent) or join one with "
                      "`dockyard agent`")
    for node in report["nodes"]:
        state = "Ready" if node["ready"] else "NotReady"
        if node["unschedulable"]:
            state += ",SchedulingDisabled"
        console.print(f"[bold]{node['name']}[/bold]  {state}  {len(node['pods'])} pods")
        table = Table(box=None, show_header=True, pad_edge=False)
        for col in ("", "requested", "used"):
            table.add_column(col)
        cpu, mem = node["cpu"], node["memory"]
        # Text, not markup: "[####....]" would otherwise be read as a style tag.
        table.add_row("cpu", Text(bar(cpu["requestedMillis"], cpu["allocatableMillis"])),
                      Text(bar(cpu["usedMillis"], cpu["allocatableMillis"])))
        table.add_row("memory", Text(bar(mem["requestedBytes"], mem["allocatableBytes"])),
                      Text(bar(mem["usedBytes"], mem["allocatableBytes"])))
        console.print(table)
        for pod in node["pods"]:
            console.print(f"  {pod['namespace']}/{pod['name']}  {pod['phase']}")
    if report["pending"]:
        console.print(f"[bold]not scheduled[/bold]  {len(report['pending'])} pods")
        for pod in report["pending"]:
            console.print(f"  {pod['namespace']}/{pod['name']}  {pod['phase']}")
