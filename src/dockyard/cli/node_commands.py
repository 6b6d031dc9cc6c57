"""`dockyard node reset`: remove every container, sandbox and network rule a node made.

What `kubeadm reset` or k3s' killall script do: a stopped agent leaves its containers running
on purpose (a restart adopts them), so tearing a machine down is an explicit act.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from dockyard.runtime.runtime import Runtime

node_app = typer.Typer(help="Manage this machine as a node.", no_args_is_help=True)


@node_app.command("reset")
def reset(
    data_dir: Path = typer.Option(Path("/var/lib/dockyard"), "--data-dir"),
    run_dir: Path = typer.Option(Path("/run/dockyard"), "--run-dir"),
    bridge: str = typer.Option("dockyard0", "--bridge"),
    pod_cidr: str = typer.Option("10.88.0.0/16", "--pod-cidr"),
) -> None:
    """Stop and remove every container and sandbox under the run dir, then the pod network."""
    if not run_dir.exists():
        typer.echo(f"nothing to reset: {run_dir} does not exist")
        return
    removed = asyncio.run(_reset(data_dir, run_dir, bridge, pod_cidr))
    typer.echo(f"removed {removed[0]} container(s) and {removed[1]} sandbox(es); "
               f"network {bridge} torn down")


async def _reset(data_dir: Path, run_dir: Path, bridge: str, pod_cidr: str) -> tuple[int, int]:
    runtime = Runtime(run_dir=run_dir, data_dir=data_dir, bridge=bridge, pod_cidr=pod_cidr)
    try:
        containers = await runtime.list_containers()
        for container in containers:
            await runtime.stop_container(container.id, 1.0)
            await runtime.remove_container(container.id)
        sandboxes = runtime.list_sandboxes()
        for sandbox in sandboxes:
            await runtime.remove_sandbox(sandbox.id)
        await runtime.destroy_network()
    finally:
        await runtime.close()
    return len(containers), len(sandboxes)
