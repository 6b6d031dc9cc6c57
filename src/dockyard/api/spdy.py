"""SPDY/3.1 framing, enough to serve kubectl's port-forward streams (the server side).

kubectl 1.30+ sends port-forward as SPDY/3.1 tunnelled in WebSocket binary messages (subprotocol
``SPDY/3.1+portforward.k8s.io``); older ones upgrade the HTTP connection to SPDY directly.
There is no maintained Python SPDY library (the PyPI ones are unmaintained since 2012-2021),
and the subset needed is small, so it is written here from the SPDY/3.1 draft: frame headers,
SYN_STREAM/SYN_REPLY header blocks (zlib with SPDY's dictionary, one compression context per
direction for the whole session), DATA with FIN, RST_STREAM, PING and GOAWAY. Flow control is
not enforced, as kubectl's spdystream does not enforce it either.

``SpdySession`` reads frames from ``read`` (an awaitable returning bytes, b"" at the end) and
writes frames through ``write``; it calls ``on_stream(stream)`` for every SYN_STREAM after
replying to it. A ``SpdyStream`` has its headers, an inbound byte queue (None marks the peer's
FIN) and ``send``/``close``/``reset``.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9)
FLAG_FIN = 0x01
CANCEL = 5  # RST_STREAM status
MAX_FRAME = 1 << 24

_WORDS = (
    "options|head|post|put|delete|trace|accept|accept-charset|accept-encoding|"
    "accept-language|accept-ranges|age|allow|authorization|cache-control|connection|"
    "content-base|content-encoding|content-language|content-length|content-location|"
    "content-md5|content-range|content-type|date|etag|expect|expires|from|host|"
    "if-match|if-modified-since|if-none-match|if-range|if-unmodified-since|"
    "last-modified|location|max-forwards|pragma|proxy-authenticate|"
    "proxy-authorization|range|referer|retry-after|server|te|trailer|"
    "transfer-encoding|upgrade|user-agent|vary|via|warning|www-authenticate|method|"
    "get|status|200 OK|version|HTTP/1.1|url|public|set-cookie|keep-alive|origin|"
).rstrip("|").split("|")
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502"
    "504505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Re"
    "quest401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Impl"
    "emented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00"
    ":00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,imag"
    "e/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivate"
    "max-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# The SPDY/3 header compression dictionary (1423 bytes), as the draft defines it.
DICTIONARY = b"".join(len(w).to_bytes(4, "big") + w.encode() for w in _WORDS) + _TAIL.encode()


class SpdyError(Exception):
    """The peer broke the protocol."""


def encode_headers(headers: dict[str, str]) -> bytes:
    """Return an uncompressed SPDY/3 header block."""
    out = [struct.pack("!I", len(headers))]
    for name, value in headers.items():
        raw_name, raw_value = name.lower().encode(), value.encode()
        out += [struct.pack("!I", len(raw_name)), raw_name, struct.pack("!I", len(raw_value)),
                raw_value]
    return b"".join(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """Return the headers of an uncompressed SPDY/3 header block (values joined by NUL)."""
    try:
        (count,), pos, headers = struct.unpack_from("!I", block), 4, {}
        for _ in range(count):
            (size,) = struct.unpack_from("!I", block, pos)
            name = block[pos + 4: pos + 4 + size].decode()
            pos += 4 + size
            (size,) = struct.unpack_from("!I", block, pos)
            headers[name] = block[pos + 4: pos + 4 + size].decode()
            pos += 4 + size
    except (struct.error, UnicodeDecodeError) as e:
        raise SpdyError(f"bad header block: {e}") from e
    return headers


def control_frame(kind: int, flags: int, payload: bytes) -> bytes:
    """Return a control frame."""
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def data_frame(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    """Return a DATA frame."""
    flags = FLAG_FIN if fin else 0
    return struct.pack("!II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


@dataclass
class SpdyStream:
    """One stream opened by the peer."""

    session: SpdySession
    id: int
    headers: dict[str, str]
    inbound: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    async def send(self, data: bytes) -> None:
        """Send data on this stream (in frames of at most 64 KiB)."""
        for start in range(0, len(data), 65536):
            await self.session.write(data_frame(self.id, data[start:start + 65536]))

    async def close(self) -> None:
        """Half-close: tell the peer we send no more (DATA with FIN)."""
        if not self.closed:
            self.closed = True
            await self.session.write(data_frame(self.id, b"", fin=True))

    async def reset(self) -> None:
        """Abort the stream (RST_STREAM CANCEL)."""
        self.closed = True
        await self.session.write(control_frame(RST_STREAM, 0, struct.pack("!II", self.id,
                                                                          CANCEL)))


class SpdySession:
    """The server side of one SPDY/3.1 connection."""

    def __init__(self, read: Callable[[], Awaitable[bytes]],
                 write: Callable[[bytes], Awaitable[None]],
                 on_stream: Callable[[SpdyStream], Coroutine[Any, Any, None]]) -> None:  # fmt: skip
        self._read = read
        self._write = write
        self.on_stream = on_stream
        self.streams: dict[int, SpdyStream] = {}
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                         DICTIONARY)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, frame: bytes) -> None:
        """Write one frame (frames never interleave)."""
        async with self._lock:
            await self._write(frame)

    async def _fill(self, size: int) -> bool:
        while len(self._buffer) < size:
            chunk = await self._read()
            if not chunk:
                return False
            self._buffer += chunk
        return True

    async def serve(self) -> None:
        """Read frames until the peer goes away; end every stream's inbound queue then."""
        try:
            while await self._fill(8):
                word, length_flags = struct.unpack_from("!II", self._buffer)
                length = length_flags & 0xFFFFFF
                if not await self._fill(8 + length):
                    break
                payload = bytes(self._buffer[8: 8 + length])
                del self._buffer[: 8 + length]
                flags = length_flags >> 24
                if word & 0x80000000:
                    if not await self._control(word & 0xFFFF, flags, payload):
                        break
                else:
                    await self._data(word & 0x7FFFFFFF, flags, payload)
        finally:
            for stream in self.streams.values():
                stream.inbound.put_nowait(None)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _control(self, kind: int, flags: int, payload: bytes) -> bool:
        if kind == SYN_STREAM:
            stream_id = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = SpdyStream(self, stream_id, headers)
            self.streams[stream_id] = stream
            if flags & FLAG_FIN:
                stream.inbound.put_nowait(None)
            block = self._deflate.compress(encode_headers({}))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            await self.write(control_frame(SYN_REPLY, 0, struct.pack("!I", stream_id) + block))
            task: asyncio.Task[None] = asyncio.create_task(self.on_stream(stream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif kind == RST_STREAM:
            stream_id = struct.unpack_from("!I", payload)[0] & 0x7FFFFFFF
            gone = self.streams.pop(stream_id, None)
            if gone is not None:
                gone.closed = True
                gone.inbound.put_nowait(None)
        elif kind == PING:
            await self.write(control_frame(PING, 0, payload))
        elif kind == GOAWAY:
            return False
        elif kind in (HEADERS, SYN_REPLY):
            self._inflate.decompress(payload[4:])  # keep the shared zlib context in step
        return True  # SETTINGS, WINDOW_UPDATE: nothing to do without flow control

    async def _data(self, stream_id: int, flags: int, payload: bytes) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if payload:
            stream.inbound.put_nowait(payload)
        if flags & FLAG_FIN:
            stream.inbound.put_nowait(None)
