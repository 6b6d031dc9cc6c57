"""`dockyard agent`: join another machine (or network namespace) to a cluster as a node."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from dockyard.agent.options import AgentOptions


def agent(
    server: str = typer.Option(..., "--server", help="The api server URL (https://HOST:PORT)."),
    token: str = typer.Option(..., "--token", help="A join token (the server's node-token)."),
    node_name: str = typer.Option("", "--node-name", help="This node's name (default: hostname)."),
    ca_file: Path = typer.Option(..., "--ca-file", help="The cluster CA (server's pki/ca.crt)."),
    data_dir: Path = typer.Option(Path("/var/lib/dockyard"), "--data-dir", help="State, images."),
    run_dir: Path = typer.Option(Path("/run/dockyard"), "--run-dir", help="Runtime state."),
    bridge: str = typer.Option("dockyard0", "--bridge", help="Pod network bridge."),
    pod_cidr: str = typer.Option("10.88.0.0/16", "--pod-cidr", help="Pod addresses."),
    node_ip: str = typer.Option("", "--node-ip", help="Node address (default: route's)."),
    port: int = typer.Option(10250, "--port", help="Agent HTTPS port (0: a free one)."),
    reserved_cpu: str = typer.Option("0", "--reserved-cpu", help="CPU kept from pods."),
    reserved_memory: str = typer.Option("0", "--reserved-memory", help="Memory kept from pods."),
    allow_host_path: list[Path] = typer.Option([], "--allow-host-path",
                                               help="Host dir pods may mount (repeatable)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at debug level."),
    cluster_domain: str = typer.Option("cluster.local", "--cluster-domain",
                                       help="The DNS domain of Services and pods."),
    cluster_dns: str = typer.Option("", "--cluster-dns",
                                    help="This node's DNS address for pods (default: gateway)."),
    no_proxy: bool = typer.Option(False, "--no-proxy", help="Run no service proxy or DNS."),
) -> None:
    """Run a node agent that joins the cluster at --server with a join token."""
    from dockyard.agent.agent import run_agent
    from dockyard.agent.options import AgentOptions

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not ca_file.is_file():
        typer.echo(f"no CA certificate at {ca_file}: copy the server's DATA_DIR/pki/ca.crt",
                   err=True)
        raise typer.Exit(1)
    options = AgentOptions(
        node_name=node_name or socket.gethostname().lower(), data_dir=data_dir.resolve(),
        run_dir=run_dir, bridge=bridge, pod_cidr=pod_cidr, node_ip=node_ip, port=port,
        reserved_cpu=reserved_cpu, reserved_memory=reserved_memory,
        allowed_host_paths=list(allow_host_path), ca_file=ca_file,
        cluster_dns="" if no_proxy else cluster_dns or _gateway(pod_cidr),
        cluster_domain=cluster_domain,
    )  # fmt: skip

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if no_proxy:
            await run_agent(options, server, token, stop, ready=lambda: print(
                f"dockyard agent {options.node_name} ready", flush=True))
        else:
            await _run_with_proxy(options, server, token, stop)

    asyncio.run(main())


def _gateway(pod_cidr: str) -> str:
    """Return the pod bridge's gateway address (the first host of the pod CIDR)."""
    import ipaddress

    return str(next(ipaddress.ip_network(pod_cidr, strict=False).hosts()))


async def _run_with_proxy(options: AgentOptions, server: str, token: str,
                          stop: asyncio.Event) -> None:  # fmt: skip
    """Run the agent and, beside it, this node's service proxy and cluster DNS."""
    from dockyard.agent.agent import Agent
    from dockyard.proxy.node import NodeProxy

    agent = Agent(options, server, token)
    await agent.start()
    node = NodeProxy(agent.api, node_name=options.node_name, pod_cidr=options.pod_cidr,
                     bridge=options.bridge, cluster_domain=options.cluster_domain,
                     dns_address=options.cluster_dns)
    try:
        await node.start()
        print(f"dockyard agent {options.node_name} ready", flush=True)
        await stop.wait()
    finally:
        await node.stop()
        await agent.stop()
