"""The attach session's rules, without processes: conmon's stdin flags, and the agent's relay
between channel frames and a container's stdio (which stream goes where, what stdin EOF does
with and without stdinOnce, resizes). The real relay over conmon is proved in
tests/e2e/test_attach.py; here FakeAttachSession and FakeWebSocket stand in for both ends.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import WSMessage, WSMsgType

from dockyard.agent.server import CLOSE, RESIZE, STDIN, AttachOptions, _pump_attach
from dockyard.runtime.monitor import MonitorPaths, conmon_argv

pytestmark = pytest.mark.unit


class FakeAttachSession:
    """Container stdio: `chunks` come out once `gate` is set (at once if no gate)."""

    def __init__(self, chunks: list[tuple[str, bytes]], ends: bool = True,
                 gate: asyncio.Event | None = None) -> None:  # fmt: skip
        self.chunks, self.ends, self.gate = list(chunks), ends, gate
        self.written: list[bytes] = []
        self.stdin_closed = False

    async def read(self) -> tuple[str, bytes] | None:
        if self.gate is not None:
            await self.gate.wait()
        if self.chunks:
            return self.chunks.pop(0)
        if not self.ends:
            await asyncio.Event().wait()  # output never ends: the client must end the session
        return None

    async def write(self, data: bytes) -> None:
        self.written.append(data)

    def close_stdin(self) -> None:
        self.stdin_closed = True
        if self.gate is not None:
            self.gate.set()


class FakeWebSocket:
    """The client's side: frames it sends, then it leaves (or stays, with `stays`)."""

    ws_protocol = "v5.channel.k8s.io"

    def __init__(self, frames: list[bytes], stays: bool = False) -> None:
        self.frames, self.stays = frames, stays
        self.sent: list[bytes] = []

    async def send_bytes(self, data: bytes) -> None:
        self.sent.append(data)

    async def __aiter__(self) -> AsyncIterator[WSMessage]:
        for frame in self.frames:
            yield WSMessage(WSMsgType.BINARY, frame, None)
        if self.stays:
            await asyncio.Event().wait()


def options(**kw: Any) -> AttachOptions:
    base: dict[str, Any] = dict(container_id="c1", stdin=True, stdout=True, stderr=True,
                                tty=False, stdin_once=True)  # fmt: skip
    return AttachOptions(**{**base, **kw})


async def pump(ws: FakeWebSocket, session: FakeAttachSession, opts: AttachOptions,
               resizes: list[tuple[str, int, int]] | None = None) -> None:  # fmt: skip
    async def resize(cid: str, rows: int, cols: int) -> None:
        (resizes if resizes is not None else []).append((cid, rows, cols))

    await asyncio.wait_for(_pump_attach(ws, session, opts, resize), 5)  # type: ignore[arg-type]


def test_conmon_keeps_stdin_open_only_without_stdin_once(tmp_path: Path) -> None:
    paths = MonitorPaths(bundle=tmp_path / "b", persist_dir=tmp_path / "p",
                         exit_dir=tmp_path / "e", log_path=tmp_path / "0.log")  # fmt: skip

    def argv(**kw: Any) -> list[str]:
        return conmon_argv("abc", "sh", paths, tmp_path / "runc", "runc", log_size_max=0, **kw)

    assert {"-t", "-i"} <= set(argv(tty=True, stdin=True))
    assert "--leave-stdin-open" not in argv(tty=True, stdin=True)  # stdinOnce: the default
    assert "--leave-stdin-open" in argv(tty=False, stdin=True, stdin_once=False)
    assert "--leave-stdin-open" not in argv(tty=False, stdin=False, stdin_once=False)


async def test_output_goes_to_the_channels_asked_for() -> None:
    chunks = [("stdout", b"out"), ("stderr", b"err")]
    ws = FakeWebSocket([], stays=True)
    await pump(ws, FakeAttachSession(chunks), options())
    assert ws.sent == [b"\x01out", b"\x02err"]
    ws = FakeWebSocket([], stays=True)
    await pump(ws, FakeAttachSession(chunks), options(stderr=False))
    assert ws.sent == [b"\x01out"]  # stderr not asked for: dropped, as the kubelet does
    ws = FakeWebSocket([], stays=True)
    await pump(ws, FakeAttachSession(chunks), options(tty=True, stderr=False))
    assert ws.sent == [b"\x01out", b"\x01err"]  # one terminal: everything is stdout


async def test_stdin_eof_with_stdin_once_closes_stdin_and_waits_for_output() -> None:
    gate = asyncio.Event()
    session = FakeAttachSession([("stdout", b"typed")], gate=gate)
    ws = FakeWebSocket([bytes([STDIN]) + b"typed", bytes([CLOSE, STDIN])], stays=True)
    await pump(ws, session, options())
    assert session.written == [b"typed"] and session.stdin_closed
    assert ws.sent == [b"\x01typed"]  # the output that followed the EOF still came


async def test_stdin_eof_without_stdin_once_ends_the_session() -> None:
    session = FakeAttachSession([], ends=False)
    ws = FakeWebSocket([bytes([STDIN]) + b"x", bytes([CLOSE, STDIN])], stays=True)
    await pump(ws, session, options(stdin_once=False))
    assert session.written == [b"x"] and not session.stdin_closed


async def test_stdin_is_ignored_when_not_asked_for_and_resize_needs_a_tty() -> None:
    session = FakeAttachSession([], ends=False)
    size = bytes([RESIZE]) + json.dumps({"Width": 120, "Height": 40}).encode()
    resizes: list[tuple[str, int, int]] = []
    await pump(FakeWebSocket([bytes([STDIN]) + b"x", size]), session, options(stdin=False),
               resizes)  # fmt: skip
    assert session.written == [] and resizes == []
    await pump(FakeWebSocket([size, bytes([RESIZE]) + b"junk"]), session, options(tty=True),
               resizes)  # fmt: skip
    assert resizes == [("c1", 40, 120)]  # a bad frame is skipped; the client leaving ends it
