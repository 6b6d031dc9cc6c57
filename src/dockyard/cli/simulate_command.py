"""`dockyard simulate`: what-if placement runs on a synthetic or recorded cluster.

Role: parse options, build the cluster (synthetic, ``--from-file`` v1 List, or
``--from-cluster``: the live cluster's Nodes and Pods, listed read-only through the api
client, found by --kubeconfig and --context as every client verb finds it), apply what-if
changes, run ``scheduler.simulate`` and print a Rich table or, with ``-o json``, one JSON
object. Nothing outside the process is changed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import typer
from rich.console import Console
from rich.table import Table

from dockyard.cli.kubeargs import Kube, kube_flags
from dockyard.client.config import KubeconfigError
from dockyard.client.errors import ApiError
from dockyard.scheduler.simulate import (
    Options,
    Report,
    SimulationError,
    Synthetic,
    add_nodes,
    drain,
    from_objects,
    load_list,
    parse_add_nodes,
    report_json,
    synthetic_cluster,
)
from dockyard.scheduler.simulate import (
    simulate as run_simulation,
)

Obj = dict


@kube_flags(namespace=False)
def simulate(
    kube: Kube,
    nodes: int = typer.Option(100, "--nodes", min=1, help="Synthetic cluster: number of nodes."),
    pods: int = typer.Option(1000, "--pods", min=0, help="Synthetic cluster: pending pods."),
    node_size: str = typer.Option(
        "mixed", "--node-size", help="small|medium|large|mixed, or e.g. cpu=8,memory=32Gi."
    ),
    pod_size: str = typer.Option("mixed", "--pod-size", help="small|mixed|large pod requests."),
    zones: int = typer.Option(3, "--zones", min=1, help="Synthetic cluster: zones."),
    seed: int = typer.Option(1, "--seed", help="Random seed for the synthetic cluster."),
    churn: float = typer.Option(
        0.0, "--churn", min=0.0, max=1.0, help="Share of placed pods deleted and replaced."
    ),
    from_file: Path | None = typer.Option(
        None, "--from-file", help="A Kubernetes v1 List (YAML or JSON) of Node and Pod objects."
    ),
    from_cluster: bool = typer.Option(
        False, "--from-cluster", help="Copy the live cluster's Nodes and Pods (read only)."
    ),
    solver: str = typer.Option("greedy", "--solver", help="greedy|batch"),
    profile: str | None = typer.Option(
        None, "--profile", help="pack|spread|balanced|default-scheduler (default: per pod)."
    ),
    preempt: bool = typer.Option(False, "--preempt", help="Let pods that fit nowhere preempt."),
    drain_nodes: list[str] = typer.Option([], "--drain", help="What if this node is drained."),
    add: list[str] = typer.Option(
        [], "--add-nodes", help="What if N nodes are added: N[:cpu=4,...]"
    ),
    time_limit: float = typer.Option(1.5, "--time-limit", min=0.0, help="Batch ILP seconds."),
    no_bound: bool = typer.Option(False, "--no-bound", help="Skip the LP lower bound."),
    output: str = typer.Option("table", "--output", "-o", help="table|json"),
) -> None:
    """Simulate placing pods: nodes used, lower bound and gap, utilisation, throughput."""
    if output not in ("table", "json"):
        raise typer.BadParameter("must be table or json", param_hint="--output")
    try:
        if from_cluster and from_file is not None:
            raise SimulationError("use --from-cluster or --from-file, not both")
        if from_cluster:
            node_objs, pod_objs = from_objects(
                asyncio.run(list_cluster(kube)), "the cluster"
            )
        elif from_file is not None:
            node_objs, pod_objs = load_list(from_file)
        else:
            node_objs, pod_objs = synthetic_cluster(
                Synthetic(nodes, pods, node_size, pod_size, zones, seed)
            )
        what_if = []
        for name in drain_nodes:
            drain(node_objs, pod_objs, name)
            what_if.append(f"drain {name}")
        for text in add:
            count, resources = parse_add_nodes(text)
            add_nodes(node_objs, count, resources)
            what_if.append(f"add {text}")
        options = Options(solver, profile, preempt, churn, time_limit, not no_bound, seed, pod_size)
        report = run_simulation(node_objs, pod_objs, options, what_if)
    except SimulationError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from err
    if output == "json":
        typer.echo(report_json(report))
    else:
        print_table(report)


async def list_cluster(kube: Kube) -> list[Obj]:
    """Return every Node and Pod of the cluster the kubeconfig points at (list only)."""
    try:
        api, _namespace = kube.client()
    except KubeconfigError as err:
        raise SimulationError(f"--from-cluster: {err}") from err
    try:
        async with api:
            nodes = await api.resource("v1", "nodes").list()
            pods = await api.resource("v1", "pods").list()
    except (ApiError, OSError, aiohttp.ClientError) as err:
        raise SimulationError(f"--from-cluster: cannot list nodes and pods: {err}") from err
    return [dict(o, kind="Node") for o in nodes.items] + [dict(o, kind="Pod") for o in pods.items]


def print_table(report: Report) -> None:
    """Print the report as Rich tables."""
    console = Console()
    table = Table(title="dockyard simulate", show_header=False)
    table.add_column("measure", style="bold")
    table.add_column("value")
    rows = [
        ("solver / profile", f"{report.solver} / {report.profile} ({report.method})"),
        ("pods placed", f"{report.placed} of {report.pods} ({report.pending} pending)"),
        ("nodes used", f"{report.nodes_used} of {report.nodes}"),
        (
            "lower bound",
            f"{report.lower_bound} (LP {report.lp_bound}, per-resource {report.simple_bound})",
        ),
        ("gap", f"{report.gap:.2%}"),
        (
            "max node utilisation",
            f"{report.max_utilisation:.1%}"
            + (
                f" (LP bound {report.utilisation_bound:.1%})"
                if report.utilisation_bound is not None
                else ""
            ),
        ),
        ("time", f"{report.seconds:.3f} s, {report.pods_per_second:,.0f} pods/s"),
        ("latency per pod", ", ".join(f"{k} {v:.3f} ms" for k, v in report.latency_ms.items())),
        ("preempted / churned", f"{report.preempted} / {report.churned}"),
    ]
    if report.what_if:
        rows.append(("what if", "; ".join(report.what_if)))
    for row in rows:
        table.add_row(*row)
    console.print(table)
    res = Table(title="per resource")
    for col in ("resource", "utilisation", "on used nodes", "fragmentation"):
        res.add_column(col)
    for name, value in report.utilisation.items():
        frag = report.fragmentation.get(name)
        res.add_row(
            name,
            f"{value:.1%}",
            f"{report.utilisation_used_nodes.get(name, 0):.1%}",
            "" if frag is None else f"{frag:.1%}",
        )
    console.print(res)
    for message, count in sorted(report.unschedulable.items(), key=lambda kv: -kv[1])[:5]:
        console.print(f"[yellow]{count} pod(s)[/yellow]: {message}")
