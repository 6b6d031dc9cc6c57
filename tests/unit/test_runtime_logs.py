"""CRI log format: parsing, joining partial lines, tail/since across rotated files, rotation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from dockyard.runtime.logs import LogFormatError, LogRecord, parse_line, parse_time, read, rotate

pytestmark = pytest.mark.unit


def test_parse_time_accepts_z_offsets_and_nanoseconds() -> None:
    want = datetime(2026, 11, 26, 0, 0, 1, 123456, tzinfo=UTC)
    assert parse_time("2026-11-26T00:00:01.123456789Z") == want
    assert parse_time("2026-11-26T00:00:01.123456789+00:00") == want
    assert parse_time("2026-11-26T01:00:01.123456+01:00") == want
    assert parse_time("2026-11-26T00:00:01Z") == want.replace(microsecond=0)


def test_parse_line_and_refusals() -> None:
    when, stream, full, msg = parse_line(b"2026-11-26T00:00:00.000000000Z stderr P part one\n")
    assert (stream, full, msg) == ("stderr", False, b"part one")
    assert parse_line(b"2026-11-26T00:00:00Z stdout F \n")[3] == b""
    for bad in (b"garbage", b"2026-11-26T00:00:00Z stdin F x", b"nope stdout F x"):
        with pytest.raises(LogFormatError):
            parse_line(bad)


def test_record_round_trips_in_cri_format() -> None:
    rec = LogRecord(datetime(2026, 11, 26, tzinfo=UTC), "stdout", b"hello")
    assert rec.to_cri() == b"2026-11-26T00:00:00.000000000Z stdout F hello\n"


def write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_read_joins_partials_spans_rotation_and_filters(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write(log.with_name("0.log.1"), ["2026-11-26T00:00:01Z stdout F old",
                                     "2026-11-26T00:00:02Z stdout P jo"])  # fmt: skip
    write(log, ["2026-11-26T00:00:03Z stderr F err", "2026-11-26T00:00:04Z stdout F ined",
                "torn line", "2026-11-26T00:00:05Z stdout F new"])  # fmt: skip
    msgs = [r.message for r in read(log, keep=3)]
    assert msgs == [b"old", b"err", b"joined", b"new"]  # the partial spans the rotation
    assert [r.message for r in read(log, 3, tail=2)] == [b"joined", b"new"]
    since = datetime(2026, 11, 26, 0, 0, 3, tzinfo=UTC)
    assert [r.message for r in read(log, 3, since=since)] == [b"err", b"new"]  # joined is 00:02
    assert read(log, 3, tail=0) == []


def test_rotate_shifts_and_drops_the_oldest(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    reopened: list[bool] = []

    def reopen() -> bool:
        reopened.append(True)
        log.write_text("")  # conmon would reopen (create) the live file
        return True

    for i in range(4):
        log.write_text(f"{i}" * 100)
        assert rotate(log, max_bytes=50, keep=3, reopen=reopen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.log", "0.log.1", "0.log.2"]
    assert log.with_name("0.log.1").read_text() == "3" * 100
    assert log.with_name("0.log.2").read_text() == "2" * 100
    assert len(reopened) == 4
    assert not rotate(log, max_bytes=50, keep=3, reopen=reopen)  # small: untouched
