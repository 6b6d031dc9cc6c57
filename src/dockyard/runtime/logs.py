"""Container logs in the CRI format: parse, read (tail, since, follow) and rotate.

Format (Kubernetes' CRI, written by conmon): one record per line,
`<RFC3339Nano time> <stdout|stderr> <F|P> <message>`, where P marks a partial line whose
rest follows in the next record(s) and F ends it. conmon writes the time with a numeric
offset (`+00:00`); `Z` is accepted too.

Rotation (kubelet's container log manager does this; here `rotate`): when the live file
passes `max_bytes`, it is renamed `<log>.1` (older ones shift to `.2` ... `.<keep-1>`, the
oldest dropped) and conmon is told to reopen, so at most `keep` files exist per container.

Invariants:
- Readers see whole lines only: partial records are joined before they are returned.
- Rotated files are read oldest first, so `tail` and `since` span a rotation.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

FOLLOW_POLL_SECONDS = 0.1


class LogFormatError(ValueError):
    """A line is not in the CRI log format."""


@dataclass(frozen=True)
class LogRecord:
    """One whole line a container wrote: when, on which stream, what."""

    time: datetime
    stream: str
    message: bytes

    def to_cri(self) -> bytes:
        """Return the record as one CRI log line (time in UTC with Z)."""
        stamp = self.time.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"
        return stamp.encode() + b" " + self.stream.encode() + b" F " + self.message + b"\n"


def parse_time(text: str) -> datetime:
    """Parse an RFC3339Nano time (nanoseconds cut to microseconds, Z or offset)."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    main, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = main + "." + (digits + "000000")[:6] + rest[len(digits):]
    return datetime.fromisoformat(text)


def parse_line(line: bytes) -> tuple[datetime, str, bool, bytes]:
    """Return (time, stream, is_full, message) of one CRI log line (newline stripped)."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr") or parts[2] not in (b"F", b"P"):
        raise LogFormatError(f"not a CRI log line: {line[:80]!r}")
    try:
        when = parse_time(parts[0].decode())
    except ValueError as e:
        raise LogFormatError(f"bad time in CRI log line: {line[:80]!r}") from e
    return when, parts[1].decode(), parts[2] == b"F", parts[3] if len(parts) > 3 else b""


class _Joiner:
    """Joins partial (P) records per stream into whole lines."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[datetime, bytearray]] = {}

    def feed(self, line: bytes) -> LogRecord | None:
        try:
            when, stream, full, message = parse_line(line)
        except LogFormatError:
            return None  # a torn line from a crash: skipped, as the kubelet does
        started, buf = self.pending.pop(stream, (when, bytearray()))
        buf += message
        if not full:
            self.pending[stream] = (started, buf)
            return None
        return LogRecord(started, stream, bytes(buf))


def log_files(log_path: Path, keep: int) -> list[Path]:
    """Return the existing files of one log, oldest first (`.N` ... `.1`, then live)."""
    files = [log_path.with_name(f"{log_path.name}.{i}") for i in range(keep, 0, -1)]
    files.append(log_path)
    return [f for f in files if f.exists()]


def _records(paths: Iterable[Path]) -> Iterator[LogRecord]:
    joiner = _Joiner()
    for path in paths:
        try:
            with open(path, "rb") as f:
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # being written; a follower picks it up later
                    record = joiner.feed(line)
                    if record is not None:
                        yield record
        except FileNotFoundError:
            continue


def read(log_path: Path, keep: int, tail: int | None = None,
         since: datetime | None = None) -> list[LogRecord]:  # fmt: skip
    """Return the whole lines of a log (across rotations), filtered by since, last `tail`."""
    records: Iterable[LogRecord] = _records(log_files(log_path, keep))
    if since is not None:
        records = (r for r in records if r.time >= since)
    if tail is not None:
        return list(deque(records, maxlen=max(0, tail)))
    return list(records)


async def follow(
    log_path: Path, keep: int, *, tail: int | None, since: datetime | None,
    running: Callable[[], bool],
) -> AsyncIterator[LogRecord]:  # fmt: skip
    """Yield existing lines, then new ones as written, until `running()` turns False."""
    f, inode = _open(log_path, at_end=False)
    joiner = _Joiner()
    older = log_files(log_path, keep)[:-1] if f else log_files(log_path, keep)
    existing: list[LogRecord] | None = list(_records(older))
    buf = b""
    try:
        while True:
            alive = running()
            chunk = f.read() if f else b""
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                fresh = [r for r in (joiner.feed(line + b"\n") for line in lines) if r]
                if existing is not None:
                    fresh = _filter(existing + fresh, tail, since)
                    existing = None
                elif since is not None:
                    fresh = [r for r in fresh if r.time >= since]
                for record in fresh:
                    yield record
                continue
            if existing is not None:
                for record in _filter(existing, tail, since):
                    yield record
                existing = None
            if _rotated(log_path, inode):
                if f:
                    f.close()
                f, inode = _open(log_path, at_end=False)
                continue
            if not alive:
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        if f:
            f.close()


def _filter(records: list[LogRecord], tail: int | None, since: datetime | None) -> list[LogRecord]:
    if since is not None:
        records = [r for r in records if r.time >= since]
    if tail is not None:
        records = records[-tail:] if tail > 0 else []
    return records


def _open(path: Path, at_end: bool) -> tuple[IO[bytes] | None, int]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the follower
    except FileNotFoundError:
        return None, -1
    if at_end:
        f.seek(0, os.SEEK_END)
    return f, os.fstat(f.fileno()).st_ino


def _rotated(path: Path, inode: int) -> bool:
    try:
        return os.stat(path).st_ino != inode
    except FileNotFoundError:
        return False


def rotate(log_path: Path, max_bytes: int, keep: int, reopen: Callable[[], bool]) -> bool:
    """Rotate the log if its live file passed max_bytes; return True if it did."""
    try:
        if os.stat(log_path).st_size <= max_bytes:
            return False
    except FileNotFoundError:
        return False
    oldest = log_path.with_name(f"{log_path.name}.{max(1, keep - 1)}")
    oldest.unlink(missing_ok=True)
    for i in range(keep - 2, 0, -1):
        src = log_path.with_name(f"{log_path.name}.{i}")
        if src.exists():
            src.rename(log_path.with_name(f"{log_path.name}.{i + 1}"))
    log_path.rename(log_path.with_name(f"{log_path.name}.1"))
    if not reopen():
        log_path.touch()  # conmon is gone: keep a live file for readers
    return True
