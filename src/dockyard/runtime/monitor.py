"""The per-container monitor: conmon holds a container's stdio, logs and exit code.

Why conmon (CRI-O's and podman's monitor, Debian package `conmon`): it is made exactly for
this. It runs `runc create` itself, daemonizes into its own session (so containers keep
running and logging when dockyard dies), writes stdout/stderr in the CRI log format
(`<RFC3339Nano time> stdout|stderr F|P <message>`), reopens its log on request (so we can
rotate), writes the exit code to an exit file, and writes an `oom` file when the memory
cgroup killed the container. It is written in C: about 2.4 MB RSS per container (0.3 MB of it
private), where a Python monitor would cost ~10 MB each, ~1.1 GB for 110 containers.

Files per container:
- `exit_dir/<id>`: the exit code, written once the container's init has exited.
- `persist_dir/oom`: present when the kernel's OOM killer hit the container's cgroup.
- `persist_dir/conmon.log`: conmon's own errors.
- `bundle/ctl`: a FIFO; the line "2 0 0" makes conmon reopen its log file, "1 ROWS COLS"
  resizes a container's terminal.
- `bundle/attach`: conmon's attach socket (attach.py).

Invariants:
- `spawn` returns only after `runc create` finished: with the container's pid, or with
  MonitorError carrying runc's message (conmon reports either on the sync pipe).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

SPAWN_TIMEOUT = 60.0
REOPEN_LOGS = b"2 0 0\n"  # conmon's REOPEN_LOGS_EVENT with a dummy window size


class MonitorError(RuntimeError):
    """conmon could not create the container; the message is runc's or conmon's."""


@dataclass(frozen=True)
class MonitorPaths:
    """Where one container's monitor keeps its files."""

    bundle: Path
    persist_dir: Path
    exit_dir: Path
    log_path: Path

    @property
    def conmon_pidfile(self) -> Path:
        """Return the file holding conmon's pid."""
        return self.persist_dir / "conmon.pid"

    @property
    def container_pidfile(self) -> Path:
        """Return the file holding the container init's pid."""
        return self.persist_dir / "container.pid"


def conmon_binary() -> str:
    """Return the path of conmon, or raise MonitorError if it is not installed."""
    found = shutil.which("conmon")
    if not found:
        raise MonitorError("conmon is not installed (Debian package `conmon`)")
    return found


def conmon_argv(
    container_id: str, name: str, paths: MonitorPaths, runc_root: Path, runc_binary: str,
    *, tty: bool, stdin: bool, log_size_max: int, stdin_once: bool = True,
) -> list[str]:  # fmt: skip
    """Return the argv that makes conmon create and then watch one container.

    With `stdin_once` (Kubernetes' stdinOnce) the container's stdin closes when the first
    attached client leaves; without it, stdin stays open for the next attach.
    """
    argv = [
        conmon_binary(), "--api-version", "1", "-c", container_id, "-u", container_id,
        "-n", name, "-r", runc_binary, "-b", str(paths.bundle),
        "-p", str(paths.container_pidfile), "-P", str(paths.conmon_pidfile),
        "-l", f"k8s-file:{paths.log_path}", "--exit-dir", str(paths.exit_dir),
        "-0", str(paths.persist_dir), "--runtime-arg", f"--root={runc_root}",
        "--socket-dir-path", str(paths.persist_dir), "--full-attach",
        "--log-level", "error",
    ]  # fmt: skip
    if log_size_max > 0:
        argv += ["--log-size-max", str(log_size_max)]
    if tty:
        argv.append("-t")
    if stdin:
        argv.append("-i")
        if not stdin_once:
            argv.append("--leave-stdin-open")
    return argv


async def spawn(argv: list[str], paths: MonitorPaths) -> int:
    """Start conmon (it daemonizes); return the container's pid once `runc create` is done."""
    read_fd, write_fd = os.pipe()
    os.set_inheritable(write_fd, True)
    log = open(paths.persist_dir / "conmon.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               "_OCI_SYNCPIPE": str(write_fd)}  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            pass_fds=(write_fd,), env=env, start_new_session=True,
            # conmon also drops an `oom` file in its working directory: keep it in the
            # container's own state dir, never wherever our process happens to run.
            cwd=paths.persist_dir,
        )  # fmt: skip
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
        log.close()
    try:
        line = await asyncio.wait_for(_read_line(read_fd), SPAWN_TIMEOUT)
    except TimeoutError:
        raise MonitorError(f"conmon sent nothing within {SPAWN_TIMEOUT}s") from None
    finally:
        os.close(read_fd)
        await proc.wait()  # the parent exits once its daemon child is on its own
    return _parse_sync(line, paths)


async def _read_line(fd: int) -> bytes:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(os.dup(fd), "rb", buffering=0)
    )
    try:
        return await reader.readline()
    finally:
        transport.close()


def _parse_sync(line: bytes, paths: MonitorPaths) -> int:
    try:
        message = json.loads(line)
    except ValueError:
        detail = _tail(paths.persist_dir / "conmon.log")
        raise MonitorError(f"conmon failed before creating the container: {detail}") from None
    pid = int(message.get("data", -1))
    if pid <= 0:
        text = str(message.get("message") or _tail(paths.persist_dir / "conmon.log"))
        raise MonitorError(f"create failed: {_runc_text(text)}")
    return pid


def _runc_text(text: str) -> str:
    marker = 'msg="'
    if marker in text:
        text = text.split(marker, 1)[1].rsplit('"', 1)[0]
    return text.replace('\\"', '"').strip()


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace").strip() or "no message"
    except OSError:
        return "no message"


def exit_code(paths: MonitorPaths, container_id: str) -> int | None:
    """Return the recorded exit code, or None while the container has not exited."""
    try:
        text = (paths.exit_dir / container_id).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def exit_time(paths: MonitorPaths, container_id: str) -> float | None:
    """Return when the exit file was written (epoch seconds), or None."""
    try:
        return (paths.exit_dir / container_id).stat().st_mtime
    except FileNotFoundError:
        return None


def oom_killed(paths: MonitorPaths) -> bool:
    """Return True if conmon saw the memory cgroup's OOM killer hit the container."""
    return (paths.persist_dir / "oom").exists() or (paths.bundle / "oom").exists()


def conmon_pid(paths: MonitorPaths) -> int | None:
    """Return conmon's pid if its pidfile exists."""
    try:
        return int(paths.conmon_pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def reopen_logs(paths: MonitorPaths) -> bool:
    """Ask conmon to reopen its log file (after a rotation); False if it is gone."""
    return _control(paths, REOPEN_LOGS)


def resize_tty(paths: MonitorPaths, rows: int, cols: int) -> bool:
    """Set the terminal size of a container made with a TTY; False if conmon is gone."""
    if not (0 < rows <= 1000 and 0 < cols <= 1000):  # conmon's own bounds
        raise MonitorError(f"terminal size {rows}x{cols} is outside 1..1000")
    return _control(paths, f"1 {rows} {cols}\n".encode())


def _control(paths: MonitorPaths, message: bytes) -> bool:
    try:
        fd = os.open(paths.bundle / "ctl", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:  # ENXIO: no reader, conmon has exited; ENOENT: never started
        return False
    try:
        os.write(fd, message)
    finally:
        os.close(fd)
    return True
