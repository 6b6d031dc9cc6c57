"""pods/portforward: kubectl port-forward through the api server to the pod's node agent.

kubectl 1.30+ opens a WebSocket with subprotocol ``SPDY/3.1+portforward.k8s.io`` and speaks
SPDY/3.1 inside its binary messages (``api/spdy.py``). For each local connection it opens an
``error`` stream and a ``data`` stream carrying the same ``requestID`` and the pod ``port``; we
connect the data stream to the agent's ``/portForward/{namespace}/{pod}?port=N`` WebSocket
(raw bytes; an empty binary message is end-of-stream both ways; a text message is an error),
and the agent opens 127.0.0.1:port inside the pod's network namespace, as the kubelet does.
Errors reach kubectl as text on the error stream.

Authorization is Kubernetes': ``create`` on ``pods/portforward``. kubectl 1.29 and older
(SPDY over an HTTP upgrade) get a 400 Status saying to use kubectl 1.30 or newer.

Invariants: one agent connection per data stream, closed when either side ends; a session
that ends (kubectl quits) cancels every relay it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aiohttp
from aiohttp import WSMsgType, web

from dockyard.api import app_keys, status
from dockyard.api.authz import authorize
from dockyard.api.handlers import ResourceHandlers
from dockyard.api.node_proxy import AgentDialer
from dockyard.api.requests import Target
from dockyard.api.spdy import SpdySession, SpdyStream
from dockyard.api.storage import ResourceStorage
from dockyard.api.tokens import User

TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"


async def handle_port_forward(request: web.Request, target: Target,
                              user: User) -> web.StreamResponse:  # fmt: skip
    """Serve pods/portforward over a WebSocket-tunnelled SPDY session."""
    assert target.name is not None
    authorize(user, "create", "pods", "portforward", target.namespace, target.name)
    storage: ResourceStorage = request.app[app_keys.STORAGE]
    pod = await storage.get(target.info, target.namespace, target.name)
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise status.bad_request(f"pod {target.name} does not have a host assigned")
    if (pod.get("status") or {}).get("phase") != "Running":
        raise status.bad_request(f"pod {target.name} is not running")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise status.bad_request("dockyard serves port-forward over WebSocket "
                                 f"({TUNNEL_PROTOCOL}) only: use kubectl 1.30 or newer")
    ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), max_msg_size=0)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol != TUNNEL_PROTOCOL:
        raise status.bad_request(f"port-forward needs the WebSocket subprotocol {TUNNEL_PROTOCOL}")
    dialer: AgentDialer = request.app[app_keys.AGENT_DIALER]
    base, context = await dialer.endpoint(node)
    await ws.prepare(request)
    forwarder = _Forwarder(dialer, f"{base}/portForward/{target.namespace}/{target.name}",
                           context)
    session = SpdySession(lambda: _read(ws), ws.send_bytes, forwarder.on_stream)
    try:
        await session.serve()
    finally:
        await ws.close()
    return ws


async def _read(ws: web.WebSocketResponse) -> bytes:
    """Return the next binary message's bytes (b"" once the WebSocket is closed)."""
    while True:
        msg = await ws.receive()
        if msg.type == WSMsgType.BINARY:
            if msg.data:
                return bytes(msg.data)
            continue
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return b""


class _Forwarder:
    """Pairs each requestID's error and data streams and relays the data stream."""

    def __init__(self, dialer: AgentDialer, url: str, context: ssl.SSLContext) -> None:
        self.dialer = dialer
        self.url = url
        self.context = context
        self.errors: dict[str, SpdyStream] = {}

    async def on_stream(self, stream: SpdyStream) -> None:
        kind = stream.headers.get("streamtype", "")
        request_id = stream.headers.get("requestid", "")
        if kind == "error":
            self.errors[request_id] = stream
            return
        if kind != "data":
            await stream.reset()
            return
        error = self.errors.pop(request_id, None)
        try:
            port = int(stream.headers.get("port", ""))
            await self._relay(stream, port)
        except Exception as e:  # noqa: BLE001 - any failure is reported to kubectl
            if error is not None:
                with contextlib.suppress(Exception):
                    await error.send(f"error forwarding port: {e}".encode())
        finally:
            with contextlib.suppress(Exception):
                await stream.close()
            if error is not None:
                with contextlib.suppress(Exception):
                    await error.close()

    async def _relay(self, stream: SpdyStream, port: int) -> None:
        try:
            agent = await self.dialer.session().ws_connect(
                self.url, params={"port": str(port)}, ssl=self.context, max_msg_size=0)
        except (aiohttp.ClientError, ssl.SSLError, TimeoutError) as e:
            raise RuntimeError(f"cannot reach the pod's agent: {e}") from e
        try:
            await _pump(stream, agent)
        finally:
            await agent.close()


async def _pump(stream: SpdyStream, agent: aiohttp.ClientWebSocketResponse) -> None:
    async def up() -> None:
        while (data := await stream.inbound.get()) is not None:
            await agent.send_bytes(data)
        await agent.send_bytes(b"")  # end of stream: the agent half-closes toward the pod

    async def down() -> None:
        async for msg in agent:
            if msg.type == WSMsgType.TEXT:
                raise RuntimeError(msg.data)
            if msg.type != WSMsgType.BINARY:
                break
            if not msg.data:
                return
            await stream.send(msg.data)

    upward = asyncio.create_task(up())
    try:
        await down()
    finally:
        upward.cancel()
        await asyncio.gather(upward, return_exceptions=True)


def register(resources: ResourceHandlers) -> None:
    """Serve pods/portforward (needs node_proxy's agent dialer in the application)."""
    resources.subresource_handlers[("pods", "portforward")] = handle_port_forward
