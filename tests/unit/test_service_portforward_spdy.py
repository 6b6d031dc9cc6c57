"""SPDY/3.1 server framing for port-forward: a client built from the same frame helpers with
its own zlib context (as kubectl's spdystream has) opens streams, sends data, pings."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib

import pytest

from dockyard.api.spdy import (
    DICTIONARY,
    FLAG_FIN,
    PING,
    SYN_REPLY,
    SYN_STREAM,
    SpdySession,
    SpdyStream,
    control_frame,
    data_frame,
    decode_headers,
    encode_headers,
)

pytestmark = pytest.mark.unit


def test_dictionary_is_spdy3s() -> None:
    # The SPDY/3 draft's dictionary is 1423 bytes; this digest is of the bytes kubectl carries.
    assert len(DICTIONARY) == 1423
    assert hashlib.sha256(DICTIONARY).hexdigest() == (
        "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02")


def test_header_block_round_trip() -> None:
    headers = {"streamtype": "data", "port": "8080", "requestid": "0"}
    assert decode_headers(encode_headers(headers)) == headers


async def test_session_replies_relays_and_pings() -> None:
    to_server: asyncio.Queue[bytes] = asyncio.Queue()
    from_server = bytearray()
    seen: list[tuple[dict[str, str], list[bytes | None]]] = []

    async def write(frame: bytes) -> None:
        from_server.extend(frame)

    async def on_stream(stream: SpdyStream) -> None:
        chunks: list[bytes | None] = []
        seen.append((stream.headers, chunks))
        while (chunk := await stream.inbound.get()) is not None:
            chunks.append(chunk)
            await stream.send(chunk.upper())
        chunks.append(None)
        await stream.close()

    session = SpdySession(to_server.get, write, on_stream)
    serving = asyncio.create_task(session.serve())
    deflate = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
    for stream_id, kind in ((1, "error"), (3, "data")):
        block = deflate.compress(encode_headers({"streamtype": kind, "port": "80",
                                                 "requestid": "0"}))
        block += deflate.flush(zlib.Z_SYNC_FLUSH)
        payload = struct.pack("!IIBB", stream_id, 0, 0, 0) + block
        await to_server.put(control_frame(SYN_STREAM, 0, payload))
    await to_server.put(data_frame(3, b"hello")[:7])  # frames may arrive split
    await to_server.put(data_frame(3, b"hello")[7:] + data_frame(3, b"", fin=True))
    await to_server.put(control_frame(PING, 0, struct.pack("!I", 1)))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if len(seen) == 2 and seen[1][1][-1:] == [None]:
            break
    await to_server.put(b"")
    await serving
    assert [h["streamtype"] for h, _ in seen] == ["error", "data"]
    assert seen[1][1] == [b"hello", None]
    frames = parse(bytes(from_server))
    inflate = zlib.decompressobj(zdict=DICTIONARY)
    replies = [f for f in frames if f[0] == ("control", SYN_REPLY)]
    assert [struct.unpack_from("!I", p)[0] for _, _, p in replies] == [1, 3]
    assert decode_headers(inflate.decompress(replies[0][2][4:])) == {}
    assert (("data", 3), 0, b"HELLO") in frames and (("data", 3), FLAG_FIN, b"") in frames
    assert (("control", PING), 0, struct.pack("!I", 1)) in frames


def parse(wire: bytes) -> list[tuple[tuple[str, int], int, bytes]]:
    out, pos = [], 0
    while pos < len(wire):
        word, length_flags = struct.unpack_from("!II", wire, pos)
        length = length_flags & 0xFFFFFF
        payload = wire[pos + 8: pos + 8 + length]
        kind = ("control", word & 0xFFFF) if word & 0x80000000 else ("data", word)
        out.append((kind, length_flags >> 24, payload))
        pos += 8 + length
    return out
