"""Attach to a running container's stdio through conmon's attach socket (kubectl attach).

conmon (started with --full-attach) listens on `<bundle>/attach`, a SOCK_SEQPACKET socket.
Each packet it sends is one chunk of output, its first byte naming the stream (2 stdout,
3 stderr); what we send is written to the container's stdin as is. Shutting down our write
side closes the container's stdin (Kubernetes' stdinOnce), when it was created with stdin.

Invariants:
- The socket path can exceed the 108 bytes of sun_path, so we connect through
  /proc/self/fd/<dir fd>/attach, as conmon binds it.
- Only output written after the attach is seen; earlier output is in the log.
- conmon reads one packet into a 32 KiB buffer and drops what does not fit, so stdin goes
  out in packets of at most STDIN_PACKET_BYTES.
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

STREAMS = {2: "stdout", 3: "stderr"}
PACKET_BYTES = 32 * 1024
STDIN_PACKET_BYTES = 16 * 1024


class AttachError(RuntimeError):
    """The container's attach socket is not there (not running, or not ours)."""


class AttachSession:
    """One attachment: read output chunks, write stdin, close."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    async def read(self) -> tuple[str, bytes] | None:
        """Return the next (stream, data) chunk, or None once the container's output ends."""
        loop = asyncio.get_running_loop()
        while True:
            packet = await loop.sock_recv(self._sock, PACKET_BYTES)
            if not packet:
                return None
            stream = STREAMS.get(packet[0])
            if stream is not None:
                return stream, packet[1:]

    async def write(self, data: bytes) -> None:
        """Send bytes to the container's stdin."""
        loop = asyncio.get_running_loop()
        for start in range(0, len(data), STDIN_PACKET_BYTES):
            await loop.sock_sendall(self._sock, data[start:start + STDIN_PACKET_BYTES])

    def close_stdin(self) -> None:
        """Close the container's stdin (it sees end of file)."""
        self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Detach; the container keeps running."""
        self._sock.close()


def attach(bundle: Path) -> AttachSession:
    """Connect to conmon's attach socket in `bundle`."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        sock.close()
        raise AttachError(f"no attach socket in {bundle}") from None
    try:
        sock.connect(f"/proc/self/fd/{dir_fd}/attach")
    except OSError as e:
        sock.close()
        raise AttachError(f"cannot attach: {e.strerror}") from None
    finally:
        os.close(dir_fd)
    sock.setblocking(False)
    return AttachSession(sock)
