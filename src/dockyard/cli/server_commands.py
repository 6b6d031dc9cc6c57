"""Cluster verbs: `dockyard server`, `dockyard kubeconfig`, `dockyard token create`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer

DEFAULT_DATA_DIR = Path("/var/lib/dockyard")
token_app = typer.Typer(help="Make tokens that let agents join the cluster.", no_args_is_help=True)


def server(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="Where state lives."),
    listen: str = typer.Option("127.0.0.1", "--listen", help="Address to listen on."),
    tls_san: list[str] = typer.Option([], "--tls-san",
                                      help="Another name or IP for the certificate (repeatable)."),
    port: int = typer.Option(6443, "--port", help="HTTPS port (0 picks a free one)."),
    no_agent: bool = typer.Option(False, "--no-agent", help="Run no agent for this machine."),
    no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Run no scheduler."),
    no_controllers: bool = typer.Option(False, "--no-controllers", help="Run no controllers."),
    watch_history_seconds: float = typer.Option(
        300.0, "--watch-history-seconds",
        help="How long watch history is kept; older resourceVersions get 410 Gone."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at debug level."),
    run_dir: Path = typer.Option(Path("/run/dockyard"), "--run-dir", help="Agent runtime state."),
    bridge: str = typer.Option("dockyard0", "--bridge", help="Pod network bridge."),
    pod_cidr: str = typer.Option("10.88.0.0/16", "--pod-cidr", help="Pod addresses."),
    node_name: str = typer.Option("", "--node-name", help="Local node (default: hostname)."),
    node_ip: str = typer.Option("", "--node-ip", help="Node address (default: route's)."),
    agent_port: int = typer.Option(10250, "--agent-port", help="Agent HTTPS port (0: free)."),
    reserved_cpu: str = typer.Option("0", "--reserved-cpu", help="CPU kept from pods."),
    reserved_memory: str = typer.Option("0", "--reserved-memory", help="Memory kept from pods."),
    allow_host_path: list[Path] = typer.Option([], "--allow-host-path",
                                               help="Host dir pods may mount (repeatable)."),
    node_monitor_grace_period: float = typer.Option(
        40.0, "--node-monitor-grace-period",
        help="Seconds without a Lease renewal before a node is NotReady."),
    not_ready_toleration: int = typer.Option(
        300, "--default-not-ready-toleration-seconds", min=0,
        help="How long pods stay on a not-ready node by default."),
    unreachable_toleration: int = typer.Option(
        300, "--default-unreachable-toleration-seconds", min=0,
        help="How long pods stay on an unreachable node by default."),
    service_cidr: str = typer.Option("10.96.0.0/16", "--service-cidr",
                                     help="Where Service cluster IPs come from."),
    cluster_domain: str = typer.Option("cluster.local", "--cluster-domain",
                                       help="The DNS domain of Services and pods."),
    cluster_dns: str = typer.Option("", "--cluster-dns",
                                    help="This node's DNS address for pods (default: gateway)."),
    no_proxy: bool = typer.Option(False, "--no-proxy", help="Run no service proxy or DNS."),
    store: str = typer.Option(
        "", "--store", help="Where state lives: etcd://HOST:PORT[,HOST:PORT], etcd+https://..., "
        "or a SQLite file (default: DATA_DIR/state.db)."),
    etcd_cafile: str = typer.Option("", "--etcd-cafile", help="CA that signed etcd's cert."),
    etcd_certfile: str = typer.Option("", "--etcd-certfile", help="Client cert for etcd."),
    etcd_keyfile: str = typer.Option("", "--etcd-keyfile", help="Client key for etcd."),
    shared_dir: Path | None = typer.Option(
        None, "--shared-dir", help="Where the cluster CA and tokens live, shared by api servers "
        "on one etcd (default: the data dir; a second server: the first's data dir)."),
    leader_elect: bool = typer.Option(
        True, "--leader-elect/--no-leader-elect",
        help="Run the scheduler and controllers only while holding the Lease "
        "kube-system/dockyard-controllers (for several servers on one etcd)."),
    leader_elect_lease_duration: float = typer.Option(
        15.0, "--leader-elect-lease-duration",
        help="Seconds a candidate waits after the last renewal it saw before taking over."),
    leader_elect_renew_deadline: float = typer.Option(
        10.0, "--leader-elect-renew-deadline",
        help="Seconds the leader keeps trying to renew before it stops leading."),
    leader_elect_retry_period: float = typer.Option(
        2.0, "--leader-elect-retry-period",
        help="Seconds between tries to acquire or renew the Lease."),
) -> None:
    """Run the api server, store and loops on this machine (like k3s server)."""
    from dockyard.api.admission import DefaultTolerationSeconds
    from dockyard.client.leader_election import check_durations
    from dockyard.controllers.manager import ControllerOptions
    from dockyard.server import (
        AgentSettings,
        LeaderElectionSettings,
        ServerOptions,
        run_server,
    )
    from dockyard.store.base import StoreError
    from dockyard.store.opening import EtcdTLS

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    agent = AgentSettings(node_name, run_dir, bridge, pod_cidr, node_ip, agent_port, reserved_cpu,
                          reserved_memory, list(allow_host_path))
    controllers = ControllerOptions(node_monitor_grace_period=node_monitor_grace_period)
    tolerations = DefaultTolerationSeconds(not_ready_toleration, unreachable_toleration)
    election = LeaderElectionSettings(leader_elect, leader_elect_lease_duration,
                                      leader_elect_renew_deadline, leader_elect_retry_period)
    try:
        check_durations(leader_elect_lease_duration, leader_elect_renew_deadline,
                        leader_elect_retry_period)
    except ValueError as err:
        typer.echo(f"error: {err} (--leader-elect-lease-duration, --leader-elect-renew-deadline,"
                   f" --leader-elect-retry-period)", err=True)
        raise typer.Exit(2) from None
    options = ServerOptions(
        data_dir, listen, port, no_agent=no_agent, no_scheduler=no_scheduler,
        no_controllers=no_controllers, agent=agent, controllers=controllers,
        default_toleration_seconds=tolerations,
        watch_history_seconds=watch_history_seconds, service_cidr=service_cidr,
        cluster_domain=cluster_domain, cluster_dns=cluster_dns, no_proxy=no_proxy,
        tls_sans=list(tls_san), store=store, shared_dir=shared_dir,
        etcd_tls=EtcdTLS(etcd_cafile, etcd_certfile, etcd_keyfile), leader_election=election,
    )
    try:
        asyncio.run(run_server(options))
    except (StoreError, ValueError) as err:
        # A store that cannot be opened, or bad pki/options: say which, exit 1, no traceback.
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def kubeconfig(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="The server's data dir."),
) -> None:
    """Print the admin kubeconfig the server wrote."""
    path = data_dir / "kubeconfig"
    if not path.exists():
        typer.echo(f"no kubeconfig at {path} — start a server with `dockyard server "
                   f"--data-dir {data_dir}` first", err=True)
        raise typer.Exit(1)
    typer.echo(path.read_text(), nl=False)


@token_app.command("create")
def token_create(
    data_dir: Path = typer.Option(DEFAULT_DATA_DIR, "--data-dir", help="The server's data dir."),
    node: str = typer.Option("", "--node", help="Make a token that acts only for this node."),
) -> None:
    """Print a new join token (or, with --node, a token for one node)."""
    from dockyard.api.tokens import TokenFile

    if not (data_dir / "tokens.json").exists():
        typer.echo(f"no server state in {data_dir} — start `dockyard server --data-dir "
                   f"{data_dir}` once first (a server with --shared-dir DIR keeps its tokens "
                   f"in DIR: pass that)", err=True)
        raise typer.Exit(1)
    tokens = TokenFile(data_dir)
    typer.echo(tokens.create("node", node) if node else tokens.create("join"))
