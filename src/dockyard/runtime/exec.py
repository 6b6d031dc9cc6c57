"""Commands run in a running container (`runc exec`), collected or streamed.

The process spec is the container's own (user, env, cwd, capabilities, noNewPrivileges) with
a new argv, so an exec never has more power than the container's init.

Invariants:
- `--pid-file` records the exec'd process' host pid: a timeout kills that process itself,
  not just the runc client (whose death would leave the command running in the container).
- The process spec and pid files are removed when the exec ends, whatever the outcome.
- With a TTY, the caller reads and writes `pty_master` (terminal output and input in one
  stream, no separate stderr, as with `kubectl exec -t`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import signal
import struct
import termios
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard.runtime.records import ExecResult
from dockyard.runtime.runc import Runc, clean_message
from dockyard.runtime.spec import exec_process

KILL_WAIT_SECONDS = 5.0


class ExecError(RuntimeError):
    """The command could not be started in the container."""


class ExecProcess:
    """A command running in a container: stdin writer, stdout/stderr readers, wait()."""

    def __init__(self, proc: asyncio.subprocess.Process, files: Sequence[Path],
                 pid_file: Path, pty_master: int | None = None) -> None:  # fmt: skip
        self._proc = proc
        self._files = list(files)
        self._pid_file = pid_file
        self._pty = pty_master
        self.stdin: asyncio.StreamWriter | None = proc.stdin
        self.stdout: asyncio.StreamReader | None = proc.stdout
        self.stderr: asyncio.StreamReader | None = proc.stderr

    @property
    def pty_master(self) -> int | None:
        """Return the terminal's master fd when run with a TTY (read/write the terminal)."""
        return self._pty

    async def wait(self) -> int:
        """Wait for the command to end; return its exit code (128+N if killed by signal N).

        A TTY's master stays open: output the reader has not taken yet is still in it (reads
        end with EIO once drained). `close()` releases it.
        """
        try:
            return await self._proc.wait()
        finally:
            self._remove_files()

    def send_signal(self, signum: int) -> None:
        """Send a signal to the runc client of this exec."""
        self._proc.send_signal(signum)

    async def kill(self) -> None:
        """Kill the command inside the container and wait for it."""
        kill_exec_pid(self._pid_file)
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        await self.wait()
        self.close()

    def close(self) -> None:
        """Release the TTY's master (idempotent); call once its output is read."""
        if self._pty is not None:
            with contextlib.suppress(OSError):
                os.close(self._pty)
            self._pty = None

    def __del__(self) -> None:
        self.close()

    def _remove_files(self) -> None:
        for path in self._files:
            path.unlink(missing_ok=True)


def kill_exec_pid(pid_file: Path) -> None:
    """SIGKILL the exec'd process named in `pid_file`, if it is still there."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _write_process(work_dir: Path, container_spec: Mapping[str, Any], cmd: Sequence[str],
                   tty: bool) -> tuple[Path, Path]:  # fmt: skip
    token = secrets.token_hex(6)
    process_path = work_dir / f"exec-{token}.json"
    pid_file = work_dir / f"exec-{token}.pid"
    process_path.write_text(json.dumps(exec_process(container_spec, cmd, tty)))
    return process_path, pid_file


async def exec_sync(runc: Runc, container_id: str, container_spec: Mapping[str, Any],
                    work_dir: Path, cmd: Sequence[str], timeout: float) -> ExecResult:  # fmt: skip
    """Run `cmd` in the container; return its exit code and output (killed at timeout)."""
    process_path, pid_file = _write_process(work_dir, container_spec, cmd, tty=False)
    try:
        proc = await asyncio.create_subprocess_exec(
            *runc.exec_argv(container_id, process_path, pid_file),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        communicate = asyncio.ensure_future(proc.communicate())
        done, _ = await asyncio.wait({communicate}, timeout=timeout if timeout > 0 else None)
        timed_out = not done
        if timed_out:
            kill_exec_pid(pid_file)
            try:
                await asyncio.wait_for(asyncio.shield(communicate), KILL_WAIT_SECONDS)
            except TimeoutError:
                proc.kill()
        out, err = await communicate
        code = proc.returncode if proc.returncode is not None else -1
        code, err = _runc_failure(code, err)
        return ExecResult(exit_code=code, stdout=out, stderr=err, timed_out=timed_out)
    finally:
        process_path.unlink(missing_ok=True)
        pid_file.unlink(missing_ok=True)


def _runc_failure(code: int, stderr: bytes) -> tuple[int, bytes]:
    """Map runc's own exec failure (255 + its log line) to a shell's 127/126 and its message."""
    if code != 255 or b'level=error msg="exec failed' not in stderr:
        return code, stderr
    message = clean_message(stderr.decode(errors="replace"))
    not_found = "not found" in message or "no such file" in message
    return (127 if not_found else 126), (message + "\n").encode()


async def exec_stream(runc: Runc, container_id: str, container_spec: Mapping[str, Any],
                      work_dir: Path, cmd: Sequence[str], *,
                      stdin: bool, tty: bool) -> ExecProcess:  # fmt: skip
    """Start `cmd` in the container with piped stdio (or a TTY); return the running process."""
    process_path, pid_file = _write_process(work_dir, container_spec, cmd, tty)
    files = [process_path, pid_file]
    if not tty:
        proc = await asyncio.create_subprocess_exec(
            *runc.exec_argv(container_id, process_path, pid_file),
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return ExecProcess(proc, files, pid_file)
    # runc 1.1 passes a console socket only to detached processes, whose exit code would be
    # lost; so runc gets a pty of ours as its stdio and proxies it to the container's pty.
    master, slave = os.openpty()
    try:
        proc = await asyncio.create_subprocess_exec(
            *runc.exec_argv(container_id, process_path, pid_file),
            stdin=slave, stdout=slave, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    return ExecProcess(proc, files, pid_file, pty_master=master)


def resize_pty(process: ExecProcess, rows: int, cols: int) -> None:
    """Set the terminal size of a TTY exec (runc copies it on SIGWINCH)."""
    if process.pty_master is None:
        raise ExecError("resize: the exec has no TTY")
    fcntl.ioctl(process.pty_master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGWINCH)
