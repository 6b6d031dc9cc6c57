"""Wiring for `dockyard server`: one process with the store, the api server and the loops.

On first start under a data dir it makes the CA and serving certificate, the admin token
(written into DATA_DIR/kubeconfig) and a join token for agents (DATA_DIR/node-token). A restart
on the same data dir reuses all of them, so kubeconfigs and join tokens stay valid.

State lives in SQLite (DATA_DIR/state.db) unless ``--store`` names etcd. Several api servers
may share one etcd; what they must then share besides it is the cluster's identity: the CA
(pki/ca.crt, ca.key) and the tokens (tokens.json, admin-token, node-token). ``--shared-dir DIR``
(default: the data dir) says where those live: a second server on the same machine, or on a
shared filesystem, points at the first one's data dir (or at a copy of those files). The CA is
copied into the server's own DATA_DIR/pki, where each server issues its own serving certificate;
tokens are read from the shared tokens.json (re-read on an unknown token, so a token one server
makes works at every server). Service IP and node port claims already live in the store.
The store is opened before anything is written, so an unreachable etcd leaves no files behind.

The scheduler and the controllers run once per cluster: with ``--leader-elect`` (the default)
a server runs them only while it holds the Lease kube-system/dockyard-controllers (see
ElectedLoops and dockyard.client.leader_election); the agent and proxy are per node and always
run. A lone server finds the Lease free and starts its loops before it reports ready.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import gc
import ipaddress
import logging
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from dockyard.api import app_keys, service_ips
from dockyard.api.admission import DefaultTolerationSeconds
from dockyard.api.app import ApiConfig, build_app
from dockyard.api.tls import ca_bundle, ensure_pki, server_ssl_context
from dockyard.api.tokens import TokenFile
from dockyard.client.api import ApiClient
from dockyard.client.config import ClientConfig
from dockyard.client.leader_election import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    LeaderElectionConfig,
    LeaderElector,
    default_identity,
)
from dockyard.controllers.manager import ControllerManager, ControllerOptions
from dockyard.store.base import Store
from dockyard.store.opening import EtcdTLS, is_etcd, open_store
from dockyard.store.sqlite import SQLiteStore

log = logging.getLogger("dockyard.server")
# Open watches are long requests: on shutdown, give them this long, then close them.
SHUTDOWN_SECONDS = 2.0
# The Lease (in kube-system) whose holder runs the scheduler and controllers.
LEADER_LEASE = "dockyard-controllers"


@dataclass
class LeaderElectionSettings:
    """--leader-elect and its three durations (seconds; Kubernetes' defaults)."""

    enabled: bool = True
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD


@dataclass
class ServerOptions:
    """What `dockyard server` was asked for."""

    data_dir: Path
    listen: str = "127.0.0.1"
    port: int = 6443
    no_agent: bool = False
    no_scheduler: bool = False
    no_controllers: bool = False
    watch_history_seconds: float = 300.0
    service_cidr: str = "10.96.0.0/16"
    # --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds
    default_toleration_seconds: DefaultTolerationSeconds = field(
        default_factory=DefaultTolerationSeconds)
    cluster_domain: str = "cluster.local"
    cluster_dns: str = ""  # empty: the pod bridge's gateway (first address of the pod CIDR)
    no_proxy: bool = False
    tls_sans: list[str] = field(default_factory=list)
    controllers: ControllerOptions = field(default_factory=ControllerOptions)
    agent: AgentSettings = field(default_factory=lambda: AgentSettings())
    store: str = ""  # empty: SQLite at DATA_DIR/state.db; else see dockyard.store.opening
    etcd_tls: EtcdTLS = field(default_factory=EtcdTLS)
    shared_dir: Path | None = None  # where the CA and tokens live (None: the data dir)
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)


@dataclass
class AgentSettings:
    """How the local agent runs (see dockyard.agent.options.AgentOptions)."""

    node_name: str = ""  # empty: the machine's hostname
    run_dir: Path = Path("/run/dockyard")
    bridge: str = "dockyard0"
    pod_cidr: str = "10.88.0.0/16"
    node_ip: str = ""
    port: int = 10250
    reserved_cpu: str = "0"
    reserved_memory: str = "0"
    allowed_host_paths: list[Path] = field(default_factory=list)


def certificate_names(options: ServerOptions) -> list[str]:
    """Return the names the serving certificate must cover: the listen address, --tls-san,
    and, when listening on every address, this machine's own addresses (agents dial them)."""
    names = [options.listen, *options.tls_sans]
    if options.listen in ("0.0.0.0", "::"):
        with contextlib.suppress(OSError):
            for info in socket.getaddrinfo(socket.gethostname(), None):
                names.append(str(info[4][0]))
    return names


def kubeconfig_path(data_dir: Path) -> Path:
    """Return where the admin kubeconfig of a data dir lives."""
    return data_dir / "kubeconfig"


class DataDirInUseError(ValueError):
    """Another running server holds the data dir."""


def lock_data_dir(data_dir: Path) -> int:
    """Hold DATA_DIR/server.lock for this process's life; return its fd.

    One server per data dir: its leader identity, kubeconfig, serving certificate and agent
    state are its own. SQLite's own lock covers the default store; on etcd nothing else
    would stop two servers on one data dir from both leading under one identity.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(data_dir / "server.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataDirInUseError(
            f"data dir {data_dir} is in use by another dockyard server (give each server "
            "its own --data-dir; share the CA and tokens with --shared-dir)") from None
    return fd


async def run_server(options: ServerOptions) -> None:
    """Run the server until SIGTERM or SIGINT, then release everything it holds."""
    data_dir = options.data_dir.resolve()
    store = await open_server_store(options)  # first: an unreachable etcd writes nothing
    runner: web.AppRunner | None = None
    lock_fd: int | None = None
    try:
        lock_fd = lock_data_dir(data_dir)
        pki, tokens, admin_token = ensure_identity(options)
        app = build_app(ApiConfig(store=store, tokens=tokens, data_dir=data_dir,
                                  default_toleration_seconds=options.default_toleration_seconds))
        service_ips.configure(app[app_keys.STORAGE], options.service_cidr)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, options.listen, options.port,
                           ssl_context=server_ssl_context(pki), backlog=2048)
        await site.start()
        port = _bound_port(runner, options.port)
        host = "127.0.0.1" if options.listen in ("0.0.0.0", "::") else options.listen
        url = f"https://{host}:{port}"
        write_kubeconfig(kubeconfig_path(data_dir), url, ca_bundle(pki), admin_token)
        log.info("dockyard api server listening on %s (kubeconfig %s)", url,
                 kubeconfig_path(data_dir))
        loops = await start_loops(url, pki, admin_token, options)
        # What start-up made (modules, routes, schemas) lives as long as the process: frozen,
        # it leaves the collector's full passes, each of which otherwise stalls requests ~50 ms.
        # Here, not in the app: gc.freeze() is process-wide.
        gc.collect()
        gc.freeze()
        print(f"dockyard server ready at {url}", flush=True)
        try:
            await _wait_for_signal()
        finally:
            await stop_loops(loops)
    finally:
        if runner is not None:
            await runner.cleanup()
        await store.close()
        if lock_fd is not None:
            os.close(lock_fd)


async def open_server_store(options: ServerOptions) -> Store:
    """Open the store the options name; StoreError (nothing written) if it cannot be opened."""
    if not options.store:
        data_dir = options.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return await SQLiteStore.open(data_dir / "state.db",
                                      history_seconds=options.watch_history_seconds)
    if not is_etcd(options.store):
        Path(options.store.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    return await open_store(options.store, history_seconds=options.watch_history_seconds,
                            tls=options.etcd_tls)


def ensure_identity(options: ServerOptions) -> tuple[Path, TokenFile, str]:
    """Return the pki dir, the tokens and the admin token, made on first start (see above)."""
    data_dir = options.data_dir.resolve()
    shared = (options.shared_dir or data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    pki = ensure_shared_pki(data_dir, shared, certificate_names(options))
    tokens = TokenFile(shared)
    admin_token = _ensure_token_file(shared / "admin-token", tokens, "admin")
    _ensure_token_file(shared / "node-token", tokens, "join")
    return pki, tokens, admin_token


def ensure_shared_pki(data_dir: Path, shared: Path, names: list[str]) -> Path:
    """Return DATA_DIR/pki holding the shared dir's CA (made there if missing) and a serving
    certificate of our own; ValueError if DATA_DIR already holds a different CA."""
    if shared == data_dir:
        return ensure_pki(data_dir, names)
    source = shared / "pki"
    if not (source / "ca.crt").exists():
        shared.mkdir(parents=True, exist_ok=True, mode=0o700)
        ensure_pki(shared, names)  # a new cluster: its CA is made in the shared dir
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    if (pki / "ca.crt").exists():
        if (pki / "ca.crt").read_bytes() != (source / "ca.crt").read_bytes():
            raise ValueError(f"{pki / 'ca.crt'} is another CA than {source / 'ca.crt'}: remove "
                             f"{pki} to use the shared one")
    else:
        for name in ("ca.key", "ca.crt"):  # the key first: ca.crt present means both are
            tmp = pki / (name + ".tmp")
            shutil.copyfile(source / name, tmp)
            os.chmod(tmp, 0o600 if name.endswith(".key") else 0o644)
            os.replace(tmp, pki / name)
    return ensure_pki(data_dir, names)


@dataclass
class Loops:
    """The in-process loops and the client they share."""

    api: ApiClient
    running: list[Any] = field(default_factory=list)


async def start_loops(url: str, pki: Path, token: str, options: ServerOptions) -> Loops:
    """Start the loops against this server over loopback HTTPS (the scheduler and controllers
    behind the leader election unless it is off)."""
    config = ClientConfig(server=url, token=token, ca_data=ca_bundle(pki), ca_file=None)
    loops = Loops(ApiClient(config, user_agent="dockyard-server"))
    if not (options.no_scheduler and options.no_controllers):
        cluster_loops = ClusterLoops(loops.api, options)
        if options.leader_election.enabled:
            elected = ElectedLoops(loops.api, options.leader_election, cluster_loops,
                                   leader_identity(options.data_dir.resolve()))
            await elected.start()
            loops.running.append(elected)
        else:
            await cluster_loops.start()
            loops.running.append(cluster_loops)
    if not options.no_agent:
        loops.running.append(await _start_agent(url, pki, token, options))
        if not options.no_proxy:
            loops.running.append(await _start_node_proxy(loops.api, options))
    return loops


def leader_identity(data_dir: Path) -> str:
    """Return this data dir's holder identity (hostname_uuid), made on first start.

    Kept in DATA_DIR/leader-identity, so a server restarted after a crash finds the Lease
    still naming it and leads again at once, instead of waiting out its own dead term (client-go
    makes a fresh identity per process; a data dir serves one process at a time, as its
    kubeconfig, serving certificate and agent state already require). The file also records
    the host and the data dir's path: a data dir copied elsewhere gets an identity of its own,
    so two servers never share one.
    """
    path = data_dir / "leader-identity"
    place = f"{socket.gethostname().lower()}:{data_dir}"
    with contextlib.suppress(OSError, ValueError):
        identity, kept_place = path.read_text().splitlines()[:2]
        if identity and kept_place == place:
            return identity
    identity = default_identity()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{identity}\n{place}\n")
    os.replace(tmp, path)
    return identity


class ClusterLoops:
    """The scheduler and the controllers: one set per cluster (the agent and proxy are per node).

    Each start() builds them afresh, so a server that leads again after a lost term starts
    from new informer caches rather than the ones it had before another server led.
    """

    def __init__(self, api: ApiClient, options: ServerOptions) -> None:
        self.api = api
        self.options = options
        self.running: list[Any] = []

    async def start(self) -> None:
        """Start the scheduler and the controllers the options ask for."""
        if not self.options.no_scheduler:
            from dockyard.scheduler.loop import SchedulerLoop  # numpy: only when scheduling

            scheduler = SchedulerLoop(self.api)
            self.running.append(scheduler)  # before start: a cancelled start is still stopped
            await scheduler.start()
        if not self.options.no_controllers:
            controllers = ControllerManager(self.api, self.options.controllers)
            self.running.append(controllers)
            await controllers.start()

    async def stop(self) -> None:
        """Stop what start() started, in reverse order (safe to call again after a cancel)."""
        while self.running:
            with contextlib.suppress(Exception):
                await self.running[-1].stop()
            self.running.pop()  # only once stopped: a stop cut short is finished next call


class ElectedLoops:
    """Runs ClusterLoops only while this server holds the Lease LEADER_LEASE in kube-system.

    One Lease covers the scheduler and the controllers (they run in one process here, so two
    Leases would only let them split across servers for no gain). On a lost term the loops are
    stopped and the server campaigns again, instead of exiting as kube-controller-manager does:
    the api server, agent and proxy in this process keep serving, and the next term starts
    fresh loops (see ClusterLoops).
    """

    def __init__(self, api: ApiClient, settings: LeaderElectionSettings, loops: ClusterLoops,
                 identity: str) -> None:  # fmt: skip
        self.loops = loops
        self.config = LeaderElectionConfig(
            lease_name=LEADER_LEASE, identity=identity, namespace="kube-system",
            lease_duration=settings.lease_duration, renew_deadline=settings.renew_deadline,
            retry_period=settings.retry_period)
        self.elector = LeaderElector(api, self.config, self._started, self._stopped)
        self._started_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Campaign once; if the Lease is ours, return once the loops have started.

        So a lone server (nobody holds the Lease) starts its loops at once, as without the
        election; a server that lost the first try goes on campaigning in the background.
        """
        log.info("leader election: campaigning for lease kube-system/%s as %s", LEADER_LEASE,
                 self.config.identity)
        self._task = asyncio.create_task(self.elector.run(), name="leader-election")
        attempted = asyncio.create_task(self.elector.attempted.wait())
        await asyncio.wait([attempted, self._task], return_when=asyncio.FIRST_COMPLETED)
        attempted.cancel()
        if self.elector.is_leader:
            started = asyncio.create_task(self._started_event.wait())
            await asyncio.wait([started, self._task], return_when=asyncio.FIRST_COMPLETED)
            started.cancel()

    async def stop(self) -> None:
        """Stop leading (the loops first), then release the Lease for the next server."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        # A step-down that the cancel cut short may have left a loop running.
        await self.loops.stop()

    async def _started(self) -> None:
        log.info("leader election: leading; starting the scheduler and controllers")
        try:
            await self.loops.start()
        finally:
            self._started_event.set()

    async def _stopped(self) -> None:
        log.info("leader election: not leading; stopping the scheduler and controllers")
        self._started_event.set()  # a term cut short before _started ran must not hang start()
        await self.loops.stop()


def cluster_dns_address(options: ServerOptions) -> str:
    """Return the cluster DNS address pods get (default: the pod bridge's gateway)."""
    if options.cluster_dns:
        return options.cluster_dns
    return str(next(ipaddress.ip_network(options.agent.pod_cidr, strict=False).hosts()))


async def _start_node_proxy(api: ApiClient, options: ServerOptions) -> Any:
    """Start this node's service proxy and cluster DNS (they stop together)."""
    from dockyard.proxy.node import NodeProxy

    settings = options.agent
    node = NodeProxy(api, node_name=settings.node_name or socket.gethostname().lower(),
                     pod_cidr=settings.pod_cidr, bridge=settings.bridge,
                     cluster_domain=options.cluster_domain,
                     dns_address=cluster_dns_address(options))
    await node.start()
    return node


async def _start_agent(url: str, pki: Path, token: str, options: ServerOptions) -> Any:
    """Start the local agent; it trades the admin token for its own node token once."""
    from dockyard.agent.agent import Agent
    from dockyard.agent.options import AgentOptions

    settings = options.agent
    agent = Agent(AgentOptions(
        node_name=settings.node_name or socket.gethostname().lower(),
        data_dir=options.data_dir.resolve(), run_dir=settings.run_dir, bridge=settings.bridge,
        pod_cidr=settings.pod_cidr, node_ip=settings.node_ip, port=settings.port,
        reserved_cpu=settings.reserved_cpu, reserved_memory=settings.reserved_memory,
        allowed_host_paths=settings.allowed_host_paths,
        cluster_dns=cluster_dns_address(options), cluster_domain=options.cluster_domain,
    ), url, token, ca_data=ca_bundle(pki))  # fmt: skip
    await agent.start()
    return agent


async def stop_loops(loops: Loops) -> None:
    """Stop the loops in reverse order, then close their client."""
    for loop in reversed(loops.running):
        with contextlib.suppress(Exception):
            await loop.stop()
    await loops.api.close()


def write_kubeconfig(path: Path, url: str, ca_pem: bytes, token: str) -> None:
    """Write a kubeconfig for the admin that kubectl and the Python client accept unchanged."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dockyard", "cluster": {
            "server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": "dockyard-admin", "user": {"token": token}}],
        "contexts": [{"name": "dockyard", "context": {
            "cluster": "dockyard", "user": "dockyard-admin", "namespace": "default"}}],
        "current-context": "dockyard",
        "preferences": {},
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    os.replace(tmp, path)


def _ensure_token_file(path: Path, tokens: TokenFile, kind: str) -> str:
    if path.exists():
        return path.read_text().strip()
    token = tokens.create("admin" if kind == "admin" else "join")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


async def _wait_for_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
