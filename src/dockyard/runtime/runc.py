"""runc, the OCI runtime, driven as a subprocess: `runc --root RUN_DIR/runc <verb>`.

runc itself creates containers through conmon (see monitor.py), so this module has the verbs
we call directly: state, start, kill, delete, list, and the argv of exec.

Invariants:
- Every call uses our own `--root`, so side-by-side runtimes never see each other's
  containers.
- A container runc does not know is reported as None by `state` (not an error): it is how an
  exited-and-deleted container looks.
- Errors carry runc's own message (its stderr), trimmed of its logrus prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import time
from pathlib import Path
from typing import Any

RUNC_TIMEOUT = 60.0
EXEC_FIFO_WAIT = 2.0
_NOT_EXIST = re.compile(r"does not exist|not found|no such file", re.IGNORECASE)
_LOGRUS = re.compile(r'time="[^"]*" level=\w+ msg="(.*)"')


class RuncError(RuntimeError):
    """runc failed; the message is runc's."""


class ContainerNotFound(RuncError):
    """runc does not know the container."""


class Runc:
    """One runc state root: the verbs dockyard calls directly."""

    def __init__(self, root: Path, binary: str = "runc") -> None:
        self.root = root
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        """Return the full argv of a runc call under our root."""
        return [self.binary, "--root", str(self.root), *args]

    async def run(self, *args: str, timeout: float = RUNC_TIMEOUT) -> str:
        """Run one runc verb; return its stdout or raise RuncError with its message."""
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuncError(f"runc {args[0]}: timed out after {timeout}s") from None
        if proc.returncode != 0:
            message = clean_message(err.decode(errors="replace"))
            cls = ContainerNotFound if _NOT_EXIST.search(message) else RuncError
            raise cls(f"runc {args[0]}: {message}")
        return out.decode(errors="replace")

    async def state(self, container_id: str) -> dict[str, Any] | None:
        """Return runc's state of a container, or None if runc does not know it."""
        try:
            return dict(json.loads(await self.run("state", container_id)))
        except ContainerNotFound:
            return None

    async def start(self, container_id: str) -> None:
        """Start a created container's process."""
        if not await asyncio.to_thread(self._open_exec_fifo, container_id):
            await self.run("start", container_id)

    def _open_exec_fifo(self, container_id: str) -> bool:
        """Do what `runc start` does, without its ~15-40 ms process start; False: not done.

        runc's init waits in open(2) of `<root>/<id>/exec.fifo` for writing; `runc start`
        opens it for reading, reads the "0" init then writes, and removes the fifo (runc
        reports a container without one as running). We have no poststart hooks, the only
        other thing `runc start` does. If no writer shows up, nothing was signalled and the
        caller falls back to `runc start`, which reports what went wrong.
        """
        fifo = self.root / container_id / "exec.fifo"
        try:
            fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            deadline = time.monotonic() + EXEC_FIFO_WAIT
            while time.monotonic() < deadline:
                select.select([fd], [], [], 0.01)
                try:
                    data = os.read(fd, 16)
                except BlockingIOError:  # init opened it and is about to write
                    continue
                if data:
                    fifo.unlink(missing_ok=True)
                    return True
                time.sleep(0.001)  # EOF: init has not opened it yet
            return False
        finally:
            os.close(fd)

    async def kill(self, container_id: str, signal: str, all_processes: bool = False) -> None:
        """Send `signal` to the container's init (or every process with all_processes)."""
        args = ["kill", *(["--all"] if all_processes else []), container_id, signal]
        await self.run(*args)

    async def delete(self, container_id: str, force: bool = False) -> None:
        """Delete the container (force: kill it first); a missing container is fine."""
        try:
            await self.run("delete", *(["--force"] if force else []), container_id)
        except ContainerNotFound:
            return

    async def list_containers(self) -> list[dict[str, Any]]:
        """Return runc's list of containers under our root."""
        out = await self.run("list", "--format", "json")
        data = json.loads(out or "null")
        return list(data or [])

    def exec_argv(self, container_id: str, process_path: Path, pid_file: Path) -> list[str]:
        """Return the argv that runs a process spec in a running container."""
        return self.argv("exec", "--process", str(process_path), "--pid-file", str(pid_file),
                         container_id)  # fmt: skip


def clean_message(stderr: str) -> str:
    """Return runc's error text without logrus decoration."""
    lines = []
    for line in stderr.strip().splitlines():
        match = _LOGRUS.search(line)
        lines.append(match.group(1).replace('\\"', '"') if match else line)
    return "; ".join(line for line in lines if line) or "failed without a message"
