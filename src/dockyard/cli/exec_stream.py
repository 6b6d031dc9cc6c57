"""The client side of pods/exec and pods/attach: WebSocket sessions in `v5.channel.k8s.io`.

Frames are binary, the first byte the channel: 0 stdin, 1 stdout, 2 stderr, 3 status (a
``metav1.Status``), 4 resize (``{"Width","Height"}``); ``\\xff\\x00`` closes stdin (v5). The
session ends with the status frame. For exec: Success → exit 0, NonZeroExitCode → the code in
``details.causes`` (ExitCode), any other failure (container not running, exec could not start)
→ 126, Docker's "cannot invoke" code. For attach the status only says whether the session
worked: the container's exit code is in its pod's status.

With ``tty`` and a terminal on stdin, the terminal is put in raw mode for the session (and
restored on every exit path), so keys like Ctrl-C reach the container's shell; its size is sent
at the start and on every SIGWINCH.

Detach keys (Docker's Ctrl-P Ctrl-Q, see detach_keys.py) are recognised here, on the client,
for attach sessions with a terminal and stdin: the typed sequence is not sent; the WebSocket is
closed WITHOUT the stdin close frame, so the container (and its stdin, without stdinOnce) keeps
running, and `attach_to_pod` raises `Detached` once the terminal is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
import termios
import tty as ttymod
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import aiohttp

from dockyard.cli.detach_keys import DetachRecognizer
from dockyard.cli.kubeargs import CliError
from dockyard.client import ApiClient
from dockyard.client.api import resource_path

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CANNOT_INVOKE = 126
DETACH_CLOSE_SECONDS = 2.0  # how long a detach waits for the server to answer our close


class Detached(Exception):
    """The detach keys were typed: the session ended, the container keeps running."""


async def exec_in_pod(api: ApiClient, namespace: str, pod: str, container: str | None,
                      command: list[str], stdin: bool, tty: bool) -> int:
    """Run a command in a pod's container, relaying stdio; return its exit code."""
    params: list[tuple[str, str]] = [("command", c) for c in command]
    return exit_code(await _stream(api, "exec", namespace, pod, container, stdin, tty, params))


async def attach_to_pod(api: ApiClient, namespace: str, pod: str, container: str | None,
                        stdin: bool, tty: bool, output: bool = True,
                        detach_keys: bytes = b"") -> dict[str, Any]:  # fmt: skip
    """Attach to a pod's running container, relaying stdio; return the session's status.

    Without `output` only stdin is relayed (the caller shows the output another way). With
    `detach_keys` (b"": none), a terminal and stdin, typing them raises Detached.
    """
    keys = detach_keys if stdin and tty else b""  # Docker reads them only in -it sessions
    return await _stream(api, "attach", namespace, pod, container, stdin, tty, [], output, keys)


async def _stream(api: ApiClient, kind: str, namespace: str, pod: str, container: str | None,
                  stdin: bool, tty: bool, params: list[tuple[str, str]],
                  output: bool = True, detach_keys: bytes = b"") -> dict[str, Any]:  # fmt: skip
    params = [*params, ("stdout", str(output).lower()),
              ("stderr", str(output and not tty).lower())]  # fmt: skip
    if container:
        params.append(("container", container))
    if stdin:
        params.append(("stdin", "true"))
    if tty:
        params.append(("tty", "true"))
    url = api.config.server + resource_path("v1", "pods", namespace, pod, kind)
    try:
        ws = await api.session().ws_connect(url, params=params, protocols=PROTOCOLS,
                                            max_msg_size=0)
    except aiohttp.WSServerHandshakeError as e:
        raise CliError(f"{kind} to {pod} refused by the server: {e.status} {e.message}") from None
    keys = DetachRecognizer(detach_keys)
    async with ws:
        if kind == "attach" and tty and stdin and sys.stdin.isatty():
            # what the shell printed before we attached is gone (kubectl says the same)
            print("If you don't see a command prompt, try pressing enter.", file=sys.stderr,
                  flush=True)
        with _raw_terminal(tty and stdin), _resizes(ws, tty):
            status = await _session(ws, stdin, keys)
    if keys.detached:  # raised here, with the terminal restored, so the caller can print
        raise Detached()
    return status


async def _session(ws: aiohttp.ClientWebSocketResponse, stdin: bool,
                   keys: DetachRecognizer) -> dict[str, Any]:  # fmt: skip
    feeder = asyncio.create_task(_feed_stdin(ws, keys)) if stdin else None
    status: dict[str, Any] = {}
    try:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDOUT:
                _write(sys.stdout.buffer, data)
            elif channel == STDERR:
                _write(sys.stderr.buffer, data)
            elif channel == STATUS:
                status = json.loads(data or b"{}")
    finally:
        if feeder is not None:
            await _stop_feeder(feeder, keys.detached)
    if keys.detached:
        return status
    if not status:
        raise CliError("the session ended without a status (connection lost?)")
    return status


def _write(stream: Any, data: bytes) -> None:
    stream.write(data)
    stream.flush()


def exit_code(status: dict[str, Any]) -> int:
    """Return the exit code a pods/exec status frame stands for."""
    if not status:
        raise CliError("the exec session ended without a status (connection lost?)")
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
                return int(cause["message"])
    print(f"error: {status.get('message') or status}", file=sys.stderr, flush=True)
    return CANNOT_INVOKE


async def _stop_feeder(feeder: asyncio.Task[None], detached: bool) -> None:
    """End the stdin task; after a detach first let it finish closing the WebSocket."""
    if detached:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(feeder), DETACH_CLOSE_SECONDS)
    feeder.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await feeder


async def _feed_stdin(ws: aiohttp.ClientWebSocketResponse, keys: DetachRecognizer) -> None:
    fd = sys.stdin.fileno()
    async with contextlib.aclosing(_stdin_chunks(fd)) as chunks:
        async for chunk in chunks:
            if data := keys.feed(chunk):
                await ws.send_bytes(bytes([STDIN]) + data)
            if keys.detached:
                # No stdin close frame: the container's stdin stays open for the next attach.
                await ws.close()
                return
    if data := keys.flush():
        await ws.send_bytes(bytes([STDIN]) + data)
    # v5 closes stdin with a CLOSE frame; v4 has none, so the remote stdin stays open.
    if ws.protocol == "v5.channel.k8s.io":
        await ws.send_bytes(bytes([CLOSE, STDIN]))


async def _stdin_chunks(fd: int) -> AsyncGenerator[bytes, None]:
    """Yield what arrives on stdin without a blocking thread (a thread would outlive exit)."""
    if stat.S_ISREG(os.fstat(fd).st_mode):  # epoll refuses regular files: they never block
        data = os.read(fd, 1 << 20)
        while data:
            yield data
            data = os.read(fd, 1 << 20)
        return
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        chunk = os.read(fd, 65536)
        queue.put_nowait(chunk)
        if not chunk:
            loop.remove_reader(fd)

    loop.add_reader(fd, readable)
    try:
        while chunk := await queue.get():
            yield chunk
    finally:
        loop.remove_reader(fd)


@contextlib.contextmanager
def _raw_terminal(wanted: bool) -> Iterator[None]:
    if not wanted or not sys.stdin.isatty():
        yield
        return
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        ttymod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _resizes(ws: aiohttp.ClientWebSocketResponse, wanted: bool) -> Iterator[None]:
    """Send the terminal's size now and whenever it changes (SIGWINCH), while in the block."""
    fd = next((f for f in (sys.stdin.fileno(), sys.stdout.fileno()) if os.isatty(f)), None)
    if not wanted or fd is None:
        yield
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[None]] = set()

    def send() -> None:
        with contextlib.suppress(OSError):
            rows, cols = termios.tcgetwinsize(fd)
            if rows and cols:
                frame = bytes([RESIZE]) + json.dumps({"Width": cols, "Height": rows}).encode()
                task = loop.create_task(ws.send_bytes(frame))
                pending.add(task)
                task.add_done_callback(pending.discard)

    send()
    loop.add_signal_handler(signal.SIGWINCH, send)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)
        for task in pending:
            task.cancel()
