"""pods/log, pods/exec and pods/attach: the api server's side of talking to a node's agent.

The api server finds the pod's node, reads the agent's address (InternalIP and
status.daemonEndpoints.kubeletEndpoint.Port) and its serving certificate (annotation
`dockyard.io/serving-cert`, writable only by that node and admins), and calls the agent over
TLS trusting exactly that certificate, presenting a client certificate signed by the cluster CA
(CN system:dockyard:apiserver; made on first start under DATA_DIR/pki). The agent accepts no
other caller, so node tokens and users never reach an agent directly: every request is
authenticated and authorized here first (pods/log: get; pods/exec and pods/attach: create,
as Kubernetes).

- logs: `GET .../pods/P/log?container&follow&tailLines&previous&timestamps&sinceSeconds&
  limitBytes` → text/plain, streamed while following.
- exec: WebSocket only (`v5.channel.k8s.io`, also v4): frames are relayed both ways unchanged
  between kubectl and the agent. kubectl 1.29 and older speak only SPDY, which is not served:
  they get a 400 Status saying to use kubectl 1.30 or newer.
- attach: the same relay, `stdin&stdout&stderr&tty` passed on, to the agent's /attach.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.api import app_keys, status
from dockyard.api.authz import authorize
from dockyard.api.handlers import ResourceHandlers
from dockyard.api.requests import Target
from dockyard.api.storage import ResourceStorage
from dockyard.api.tokens import User
from dockyard.objects.resources import lookup

CLIENT_NAME = "system:dockyard:apiserver"  # the agent checks this (agent/identity.py)
CERT_ANNOTATION = "dockyard.io/serving-cert"
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
LOG_QUERY = ("follow", "tailLines", "previous", "timestamps", "sinceSeconds", "limitBytes")
CONNECT_TIMEOUT = 10.0


def client_certificate(pki: Path) -> tuple[Path, Path]:
    """Return (cert, key) the api server presents to agents, signing it with the CA once."""
    cert_path, key_path = pki / "agent-client.crt", pki / "agent-client.key"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CLIENT_NAME)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()), 0o600)  # fmt: skip
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    tmp.replace(path)


class AgentDialer:
    """Opens connections to agents: TLS pinned to each agent's certificate, with our client cert."""

    def __init__(self, storage: ResourceStorage, pki: Path) -> None:
        self.storage = storage
        self.pki = pki
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """Return the shared client session."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT))
        return self._session

    async def close(self) -> None:
        """Close the session."""
        if self._session is not None:
            await self._session.close()

    def _context(self, pem: str) -> ssl.SSLContext:
        context = self._contexts.get(pem)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False  # the pinned certificate is the identity
            context.load_verify_locations(cadata=pem)
            cert, key = client_certificate(self.pki)
            context.load_cert_chain(cert, key)
            self._contexts[pem] = context
        return context

    async def endpoint(self, node_name: str) -> tuple[str, ssl.SSLContext]:
        """Return (base URL, TLS context) of a node's agent, or raise 503 naming the problem."""
        nodes = lookup("", "v1", "nodes")
        assert nodes is not None
        try:
            node = await self.storage.get(nodes, None, node_name)
        except status.StatusError:
            raise _unavailable(f"node {node_name} is not registered") from None
        pem = (node["metadata"].get("annotations") or {}).get(CERT_ANNOTATION)
        st = node.get("status") or {}
        port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        address = next((a["address"] for a in st.get("addresses") or []
                        if a.get("type") == "InternalIP"), None)  # fmt: skip
        if not pem or not port or not address:
            raise _unavailable(f"node {node_name} has no agent endpoint (is its agent running?)")
        host = f"[{address}]" if ":" in address else address
        return f"https://{host}:{port}", self._context(pem)


def _unavailable(message: str) -> status.StatusError:
    return status.StatusError(503, "ServiceUnavailable", message)


async def _bound_pod(request: web.Request, target: Target, user: User,
                     verb: str) -> tuple[dict[str, Any], str]:  # fmt: skip
    """Authorize, read the pod, and return it with the container the request means."""
    assert target.name is not None and target.subresource is not None
    authorize(user, verb, "pods", target.subresource, target.namespace, target.name)
    storage: ResourceStorage = request.app[app_keys.STORAGE]
    pod = await storage.get(target.info, target.namespace, target.name)
    if not (pod.get("spec") or {}).get("nodeName"):
        raise status.bad_request(f"pod {target.name} does not have a host assigned")
    spec = pod["spec"]
    names = [c["name"] for c in spec.get("containers") or []]
    every = names + [c["name"] for c in spec.get("initContainers") or []]
    container = request.query.get("container", "")
    if not container:
        default = (pod["metadata"].get("annotations") or {}).get(
            "kubectl.kubernetes.io/default-container")
        if default in names:
            container = str(default)
        elif len(names) == 1:
            container = names[0]
        else:
            raise status.bad_request(f"a container name must be specified for pod {target.name}, "
                                     f"choose one of: [{' '.join(names)}]")  # fmt: skip
    if container not in every:
        raise status.bad_request(f"container {container} is not valid for pod {target.name}")
    return pod, container


def _dialer(request: web.Request) -> AgentDialer:
    dialer: AgentDialer = request.app[app_keys.AGENT_DIALER]
    return dialer


async def handle_log(request: web.Request, target: Target, user: User) -> web.StreamResponse:
    """Serve GET pods/log by streaming the agent's answer."""
    pod, container = await _bound_pod(request, target, user, "get")
    base, context = await _dialer(request).endpoint(pod["spec"]["nodeName"])
    url = f"{base}/containerLogs/{target.namespace}/{target.name}/{container}"
    params = {k: request.query[k] for k in LOG_QUERY if k in request.query}
    try:
        async with _dialer(request).session().get(url, params=params, ssl=context) as upstream:
            if upstream.status != 200:
                text = (await upstream.text()).strip()
                raise status.bad_request(text or f"the agent answered {upstream.status}")
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (aiohttp.ClientConnectionError, ssl.SSLError, TimeoutError) as e:
        raise _unavailable(f"cannot reach the agent of node {pod['spec']['nodeName']}: {e}") from e


async def handle_exec(request: web.Request, target: Target, user: User) -> web.StreamResponse:
    """Serve pods/exec: relay a WebSocket session between the client and the agent."""
    return await _stream(request, target, user, "exec",
                         ("command", "stdin", "stdout", "stderr", "tty"))  # fmt: skip


async def handle_attach(request: web.Request, target: Target, user: User) -> web.StreamResponse:
    """Serve pods/attach: relay a WebSocket session to the container's own stdio."""
    return await _stream(request, target, user, "attach", ("stdin", "stdout", "stderr", "tty"))


async def _stream(request: web.Request, target: Target, user: User, kind: str,
                  query: tuple[str, ...]) -> web.StreamResponse:  # fmt: skip
    """Authorize (create on pods/KIND), dial the pod's agent and relay frames both ways."""
    pod, container = await _bound_pod(request, target, user, "create")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request(f"dockyard serves {kind} over WebSocket (v5.channel.k8s.io) "
                                 "only; SPDY is not supported: use kubectl 1.30 or newer")
    base, context = await _dialer(request).endpoint(pod["spec"]["nodeName"])
    client = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
    ready = client.can_prepare(request)
    if not ready.ok or not ready.protocol:
        raise status.bad_request(f"{kind} needs the WebSocket subprotocol v5.channel.k8s.io or "
                                 "v4.channel.k8s.io")  # fmt: skip
    params = [(k, v) for k, v in request.query.items() if k in query]
    url = f"{base}/{kind}/{target.namespace}/{target.name}/{container}"
    try:
        upstream = await _dialer(request).session().ws_connect(
            url, params=params, ssl=context, protocols=(ready.protocol,), max_msg_size=0)
    except (aiohttp.ClientError, ssl.SSLError, TimeoutError) as e:
        raise _unavailable(f"cannot reach the agent of node {pod['spec']['nodeName']}: {e}") from e
    await client.prepare(request)
    try:
        await _relay(client, upstream)
    finally:
        await upstream.close()
        await client.close()
    return client


async def _relay(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    async def down() -> None:
        async for msg in upstream:
            if msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)

    async def up() -> None:
        async for msg in client:
            if msg.type == WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await upstream.send_str(msg.data)

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    # The agent ends the session (after the status frame); a client that leaves ends it too.
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(Exception):
        await asyncio.gather(*tasks, return_exceptions=True)


def register(app: web.Application, resources: ResourceHandlers, pki: Path) -> None:
    """Serve pods/log, pods/exec and pods/attach in this application."""
    app[app_keys.AGENT_DIALER] = AgentDialer(app[app_keys.STORAGE], pki)
    resources.subresource_handlers[("pods", "log")] = handle_log
    resources.subresource_handlers[("pods", "exec")] = handle_exec
    resources.subresource_handlers[("pods", "attach")] = handle_attach
    resources.available_subresources.add("attach")

    async def close(app: web.Application) -> None:
        await app[app_keys.AGENT_DIALER].close()

    app.on_cleanup.append(close)
