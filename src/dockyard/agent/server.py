"""The agent's HTTPS endpoint, which the api server calls for logs, exec and usage figures.

Routes (the kubelet's, simplified):
- GET /containerLogs/{namespace}/{pod}/{container}?follow&tailLines&previous&timestamps&sinceSeconds
  → text/plain, streamed while following;
- GET /exec/{namespace}/{pod}/{container}?command=..&stdin&stdout&stderr&tty → WebSocket with
  the `v5.channel.k8s.io` (or v4) subprotocol: frames start with a channel byte, 0 stdin,
  1 stdout, 2 stderr, 3 status (metav1.Status JSON, NonZeroExitCode with the exit code),
  4 resize; v5's 255 closes a channel (`\\xff\\x00`: stdin EOF);
- GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty → the same channels, to
  the container's own stdio through conmon (the kubelet's attach): the terminal is the one the
  container was created with (spec tty), whatever the request says; stdin needs spec stdin;
  stdin EOF closes the container's stdin with stdinOnce (the session then lasts until its
  output ends) and ends the session without it (CRI-O's rule); channel 4 resizes its terminal;
  the status is Success when the container's output ends or the client leaves;
- GET /portForward/{namespace}/{pod}?port=N → WebSocket of raw bytes to 127.0.0.1:N in the
  pod's network namespace; an empty binary message ends a direction, a text message is an error;
- GET /stats/summary → JSON usage (agent/stats.py);  GET /healthz.

Security: TLS with the agent's self-signed certificate (published in its Node, pinned by the
api server); every request must present a client certificate signed by the cluster CA whose
common name is the api server's (identity.API_SERVER_CLIENT_NAME). Nothing else may call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from dockyard.agent.identity import API_SERVER_CLIENT_NAME
from dockyard.runtime import AttachSession, ExecProcess
from dockyard.runtime.exec import resize_pty

if TYPE_CHECKING:
    from dockyard.agent.agent import Agent

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class AgentServer:
    """The agent's HTTPS server."""

    def __init__(self, agent: Agent, cert: Path, key: Path, ca_data: bytes | None) -> None:
        self.agent = agent
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.verify_mode = ssl.CERT_REQUIRED
        if ca_data:
            self.context.load_verify_locations(cadata=ca_data.decode())
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/stats/summary", self._stats)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: a free port); return the port."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=self.context)
        await site.start()
        for address in self.runner.addresses:
            if isinstance(address, tuple):
                return int(address[1])
        return port

    async def stop(self) -> None:
        """Stop listening."""
        await self.runner.cleanup()

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport else None
        names = [v for rdn in (cert or {}).get("subject", ()) for k, v in rdn
                 if k == "commonName"]  # fmt: skip
        if API_SERVER_CLIENT_NAME not in names:
            raise web.HTTPForbidden(text="only the api server may call the agent")
        response: web.StreamResponse = await handler(request)
        return response

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(await self.agent.stats.summary())

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod_name = request.match_info["namespace"], request.match_info["pod"]
        q = request.query
        previous = q.get("previous") == "true"
        try:
            _, status = await self.agent.container_of(ns, pod_name, request.match_info["container"])
        except (LookupError, ValueError) as e:
            raise web.HTTPBadRequest(text=str(e)) from None
        tail = int(q["tailLines"]) if q.get("tailLines") else None
        since = None
        if q.get("sinceSeconds"):
            since = datetime.now(UTC) - timedelta(seconds=int(q["sinceSeconds"]))
        timestamps = q.get("timestamps") == "true"
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        try:
            records = self.agent.runtime.read_logs(
                status.id, follow=q.get("follow") == "true" and not previous, tail=tail,
                since=since, previous=previous)  # fmt: skip
            first = await anext(records, None)
        except LookupError as e:
            raise web.HTTPBadRequest(text=f'previous terminated container "{status.name}" in '
                                     f'pod "{pod_name}" not found' if previous else str(e)) from e
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent = 0
        record = first
        while record is not None:
            line = record.message + b"\n"
            if timestamps:
                line = record.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b" " + line
            if limit is not None and sent + len(line) > limit:
                await response.write(line[: limit - sent])
                break
            await response.write(line)
            sent += len(line)
            record = await anext(records, None)
        await response.write_eof()
        return response

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        try:
            port = int(request.query.get("port", ""))
            pod = self.agent.pod_by_name(namespace, name)
            sandbox = self.agent.sandbox_of(pod["metadata"]["uid"]) if pod else None
            if sandbox is None:
                raise LookupError(f'pod "{name}" has no sandbox on this node')
            reader, writer = await self.agent.runtime.port_forward(sandbox.id, port)
        except Exception as e:
            await ws.send_str(f"{type(e).__name__}: {e}")
            await ws.close()
            return ws
        await _forward(ws, reader, writer)
        await ws.close()
        return ws

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        q = request.query
        command = q.getall("command", [])
        stdin, tty = q.get("stdin") == "true", q.get("tty") == "true"
        try:
            if not command:
                raise ValueError("exec: a command is required")
            _, status = await self.agent.container_of(request.match_info["namespace"],
                                                      request.match_info["pod"],
                                                      request.match_info["container"])
            if status.state != "running":
                raise ValueError(f"container {status.name} is not running")
            process = await self.agent.runtime.exec(status.id, command, stdin=stdin, tty=tty)
        except Exception as e:
            await _send_status(ws, _failure(str(e) or type(e).__name__))
            await ws.close()
            return ws
        await _pump(ws, process, stdin, tty)
        code = await process.wait()
        await _send_status(ws, _exit_status(command, code))
        await ws.close()
        return ws

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0)
        await ws.prepare(request)
        try:
            session, options = await self._open_attach(request)
        except Exception as e:
            await _send_status(ws, _failure(str(e) or type(e).__name__))
            await ws.close()
            return ws
        try:
            await _pump_attach(ws, session, options, self.agent.runtime.resize_tty)
        finally:
            session.close()
        await _send_status(ws, {"metadata": {}, "status": "Success"})
        await ws.close()
        return ws

    async def _open_attach(self, request: web.Request) -> tuple[AttachSession, AttachOptions]:
        """Check the request against the container's spec and connect to its stdio."""
        q = request.query
        pod, status = await self.agent.container_of(request.match_info["namespace"],
                                                    request.match_info["pod"],
                                                    request.match_info["container"])
        every = [*(pod["spec"].get("containers") or []),
                 *(pod["spec"].get("initContainers") or [])]
        spec = next(c for c in every if c["name"] == status.name)
        stdin = q.get("stdin") == "true"
        if stdin and not spec.get("stdin"):
            raise ValueError(f"container {status.name} was not created with stdin "
                             "(spec.containers[].stdin: true): there is no stdin to attach to")
        if status.state != "running":
            raise ValueError(f"container {status.name} is not running")
        options = AttachOptions(
            container_id=status.id, stdin=stdin, stdout=q.get("stdout") == "true",
            stderr=q.get("stderr") == "true", tty=bool(spec.get("tty")),
            stdin_once=bool(spec.get("stdinOnce")))  # fmt: skip
        return await self.agent.runtime.attach(status.id), options


@dataclass(frozen=True)
class AttachOptions:
    """What an attach session relays: the request's streams, the container spec's terminal."""

    container_id: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    stdin_once: bool


Resizer = Callable[[str, int, int], Awaitable[None]]


async def _pump_attach(ws: web.WebSocketResponse, session: AttachSession, options: AttachOptions,
                       resize: Resizer) -> None:  # fmt: skip
    """Relay until the container's output ends, or the client leaves (or ends stdin)."""
    outbound = asyncio.create_task(_attach_output(ws, session, options))
    inbound = asyncio.create_task(_attach_input(ws, session, options, resize))
    try:
        await asyncio.wait([outbound, inbound], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (outbound, inbound):
            task.cancel()
        await asyncio.gather(outbound, inbound, return_exceptions=True)


async def _attach_output(ws: web.WebSocketResponse, session: AttachSession,
                         options: AttachOptions) -> None:  # fmt: skip
    while (chunk := await session.read()) is not None:
        stream, data = chunk
        # With a terminal conmon has one stream; without one, stderr goes where it was asked.
        if stream == "stderr" and not options.tty:
            if options.stderr:
                await ws.send_bytes(bytes([STDERR]) + data)
        elif options.stdout:
            await ws.send_bytes(bytes([STDOUT]) + data)


async def _attach_input(ws: web.WebSocketResponse, session: AttachSession,
                        options: AttachOptions, resize: Resizer) -> None:  # fmt: skip
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == STDIN and data and options.stdin:
            with contextlib.suppress(OSError):  # stdin already closed: Kubernetes drops it too
                await session.write(data)
        elif channel == CLOSE and v5 and data[:1] == bytes([STDIN]) and options.stdin:
            if options.tty:
                continue  # a terminal's end of input is a key (Ctrl-D), not a close
            if not options.stdin_once:
                return
            with contextlib.suppress(OSError):
                session.close_stdin()
        elif channel == RESIZE and options.tty:
            with contextlib.suppress(Exception):  # a bad size must not end the session
                size = json.loads(data)
                await resize(options.container_id, int(size["Height"]), int(size["Width"]))


async def _forward(ws: web.WebSocketResponse, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:  # fmt: skip
    """Copy bytes between a port-forward WebSocket and the pod's port until both ends finish."""
    async def down() -> None:
        while data := await reader.read(64 * 1024):
            await ws.send_bytes(data)
        await ws.send_bytes(b"")

    downward = asyncio.create_task(down())
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            if not msg.data:
                if writer.can_write_eof():
                    writer.write_eof()
                await downward
                break
            writer.write(msg.data)
            await writer.drain()
    finally:
        downward.cancel()
        await asyncio.gather(downward, return_exceptions=True)
        writer.close()


async def _pump(ws: web.WebSocketResponse, process: ExecProcess, stdin: bool, tty: bool) -> None:
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    readers = []
    if tty and process.pty_master is not None:
        readers.append(asyncio.create_task(_pty_reader(ws, process.pty_master)))
    else:
        if process.stdout is not None:
            readers.append(asyncio.create_task(_reader(ws, process.stdout, STDOUT)))
        if process.stderr is not None:
            readers.append(asyncio.create_task(_reader(ws, process.stderr, STDERR)))
    inbound = asyncio.create_task(_inbound(ws, process, stdin, tty, v5))
    try:
        waiter = asyncio.create_task(process.wait())
        await asyncio.wait([waiter, inbound], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done() and inbound.done():
            # the client went away: the command must not outlive the session
            await process.kill()
        await waiter
        await asyncio.wait(readers, timeout=5)
    finally:
        for task in [*readers, inbound]:
            task.cancel()
        await asyncio.gather(*readers, inbound, return_exceptions=True)


async def _reader(ws: web.WebSocketResponse, stream: asyncio.StreamReader, channel: int) -> None:
    while data := await stream.read(32 * 1024):
        await ws.send_bytes(bytes([channel]) + data)


async def _pty_reader(ws: web.WebSocketResponse, fd: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.run_in_executor(None, os.read, fd, 32 * 1024)
        except OSError:
            return
        if not data:
            return
        await ws.send_bytes(bytes([STDOUT]) + data)


async def _inbound(ws: web.WebSocketResponse, process: ExecProcess, stdin: bool, tty: bool,
                   v5: bool) -> None:  # fmt: skip
    async for msg in ws:
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, data = msg.data[0], msg.data[1:]
        if channel == STDIN and data:
            if tty and process.pty_master is not None:
                os.write(process.pty_master, data)
            elif process.stdin is not None:
                process.stdin.write(data)
                with contextlib.suppress(ConnectionError):
                    await process.stdin.drain()
        elif channel == CLOSE and v5 and data[:1] == bytes([STDIN]):
            if tty and process.pty_master is not None:
                os.write(process.pty_master, b"\x04")
            elif process.stdin is not None:
                process.stdin.close()
        elif channel == RESIZE and tty:
            with contextlib.suppress(Exception):
                size = json.loads(data)
                resize_pty(process, int(size["Height"]), int(size["Width"]))
    _ = stdin


async def _send_status(ws: web.WebSocketResponse, status: dict[str, Any]) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_bytes(bytes([STATUS]) + json.dumps(status).encode())


def _failure(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "code": 500}  # fmt: skip


def _exit_status(command: list[str], code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"{command}, exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}  # fmt: skip
