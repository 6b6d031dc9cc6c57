"""SQLite-specific Store behaviour: durability across kill -9, one process per file, the file."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.store.base import KeyValue, StoreError, WatchEvent
from dockyard.store.opening import open_store
from dockyard.store.sqlite import SQLiteStore

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from dockyard.store.sqlite import SQLiteStore

    async def main() -> None:
        store = await SQLiteStore.open(Path(sys.argv[1]), synchronous=sys.argv[2])
        async def worker(w: int) -> None:
            i = 0
            while True:
                kv = await store.create(f"/registry/pods/default/w{w}-{i}", b"v" * 512)
                print(kv.key, kv.mod_revision, flush=True)
                i += 1
        await asyncio.gather(*(worker(w) for w in range(20)))

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_acknowledged_writes_survive_sigkill(tmp_path: Path, synchronous: str) -> None:
    path = tmp_path / "store.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), synchronous],
        stdout=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, int] = {}
    try:
        assert proc.stdout is not None
        while len(acked) < 500:
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, "the writer exited before acknowledging 500 writes"
            key, revision = line.split()
            acked[key] = int(revision)
        os.kill(proc.pid, signal.SIGKILL)
        # Whole lines already in the pipe were acknowledged before the kill: they count too.
        # A line cut by the kill is not a whole acknowledgement.
        for line in proc.stdout.read().splitlines(keepends=True):
            fields = line.split()
            if line.endswith("\n") and len(fields) == 2:
                acked[fields[0]] = int(fields[1])
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    async with await SQLiteStore.open(path) as store:
        for key, revision in acked.items():
            kv = await store.get(key)
            assert kv is not None, f"acknowledged {key} lost"
            assert kv.mod_revision == revision
        items, revision, _ = await store.list("/registry/pods/default/")
        # Every committed create is there once, with the revisions 2..revision and no hole.
        assert sorted(kv.mod_revision for kv in items) == list(range(2, revision + 1))
        assert revision >= max(acked.values())
        after = await store.create("/registry/pods/default/after", b"x")
        assert after.mod_revision == revision + 1


async def test_second_open_of_same_file_is_refused(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db"):
        with pytest.raises(StoreError, match="already open"):
            await SQLiteStore.open(tmp_path / "store.db")


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "store.db")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.create("/a", b"1")
    with pytest.raises(StoreError, match="closed"):
        await store.get("/a")
    assert [e async for e in store.watch("/", 1)] == []


async def test_bad_keys_and_values_are_refused(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        with pytest.raises(StoreError, match="non-empty"):
            await store.create("", b"1")
        with pytest.raises(StoreError, match="must be bytes"):
            await store.create("/a", "text")  # type: ignore[arg-type]
        assert await store.current_revision() == 1


async def test_open_creates_parent_dirs_and_a_wal_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "store.db"
    async with await SQLiteStore.open(path) as store:
        await store.create("/a", b"1")
        assert path.exists()
        assert Path(f"{path}-wal").exists()


async def test_compaction_keeps_only_recent_history(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db", history_seconds=0.4) as store:
        await store.create("/a", b"1")
        await asyncio.sleep(1.5)
        late = await store.create("/b", b"1")
        stats = await store.stats()
        assert stats["compacted_revision"] >= 2
        # The write made just now is still in history: a watch from before it replays it.
        first = await anext(aiter(store.watch("/", late.mod_revision - 1)))
        assert first.kv == late


async def test_slow_watcher_is_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.store import sqlite

    monkeypatch.setattr(sqlite, "WATCH_QUEUE_LIMIT", 5)
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        stream = aiter(store.watch("/", 1))
        first = asyncio.ensure_future(anext(stream))
        await store.create("/k0", b"v")
        assert (await first).kv.key == "/k0"
        for i in range(1, 10):
            await store.create(f"/k{i}", b"v")
        with pytest.raises(StoreError, match="behind"):
            await anext(stream)
        assert store.watcher_count() == 0


async def test_writes_in_one_group_commit_see_each_other(tmp_path: Path) -> None:
    # Submitted together, these land in one batch; each is decided after the one before it:
    # create (rev 2), CAS on rev 2 (rev 3), stale CAS on rev 2 (conflict), delete (rev 4),
    # create again (rev 5), create of a taken key (already exists).
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        results = await asyncio.gather(
            store.create("/k", b"1"),
            store.update("/k", b"2", 2),
            store.update("/k", b"stale", 2),
            store.delete("/k", 3),
            store.create("/k", b"3"),
            store.create("/k", b"4"),
            return_exceptions=True,
        )
        kinds = [r.mod_revision if isinstance(r, KeyValue) else type(r).__name__ for r in results]
        assert kinds == [2, 3, "ConflictError", 4, 5, "AlreadyExistsError"]
        assert await store.get("/k") == KeyValue("/k", b"3", 5, 5)
        stats = await store.stats()
        assert (stats["keys"], stats["revision"]) == (1, 5)
        events = [e async for e in _take(store.watch("/", 1), 4)]
        assert [(e.type, e.revision) for e in events] == [
            ("PUT", 2), ("PUT", 3), ("DELETE", 4), ("PUT", 5)
        ]
        assert events[1].prev == KeyValue("/k", b"1", 2, 2)
        assert events[3].prev is None


async def _take(stream: AsyncIterator[WatchEvent], n: int) -> AsyncIterator[WatchEvent]:
    async for event in stream:
        yield event
        n -= 1
        if n == 0:
            return


async def test_sqlite_failure_fails_the_batch_and_stores_nothing(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        await store.create("/a", b"1")
        # A value SQLite cannot bind (smuggled past the type check) fails its whole batch.
        with pytest.raises(StoreError, match="nothing stored"):
            await store._write("create", "/b", [1])  # type: ignore[arg-type]
        assert await store.get("/b") is None
        assert await store.current_revision() == 2
        assert (await store.create("/c", b"1")).mod_revision == 3


async def test_a_file_that_is_not_a_store_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(StoreError, match="cannot be opened as a store"):
        await SQLiteStore.open(path)
    assert path.read_bytes() == b"not a database, " * 100
    # The lock was released: a second try fails the same way, not with "already open".
    with pytest.raises(StoreError, match="cannot be opened as a store"):
        await SQLiteStore.open(path)


async def test_a_dropped_watch_is_forgotten(tmp_path: Path) -> None:
    async with await SQLiteStore.open(tmp_path / "store.db") as store:
        stream = aiter(store.watch("/", 1))
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        assert store.watcher_count() == 1
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        del stream, waiting
        for _ in range(50):  # the loop lets go of the cancelled task within a few turns
            await asyncio.sleep(0.01)
            gc.collect()
            if store.watcher_count() == 0:
                break
        assert store.watcher_count() == 0


async def test_open_store_picks_the_backend_from_the_spec(tmp_path: Path) -> None:
    store = await open_store(str(tmp_path / "state.db"))
    assert isinstance(store, SQLiteStore)
    await store.close()
    store = await open_store(f"sqlite://{tmp_path / 'other.db'}")
    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "other.db"
    await store.close()
    with pytest.raises(StoreError, match="no store given"):
        await open_store("")
    port = _free_port()  # nothing listens there: a clear StoreError, not a hang
    with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
        await open_store(f"etcd://127.0.0.1:{port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_wal_is_emptied_once_it_grows_past_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dockyard.store import sqlite_writer

    monkeypatch.setattr(sqlite_writer, "WAL_TRUNCATE_FRAMES", 10)
    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_SECONDS", 0.05)
    path = tmp_path / "store.db"
    async with await SQLiteStore.open(path) as store:
        await asyncio.gather(*(store.create(f"/k{i}", b"v" * 4096) for i in range(200)))
        wal = Path(f"{path}-wal")
        for _ in range(100):
            if wal.stat().st_size == 0:
                break
            await asyncio.sleep(0.05)
        assert wal.stat().st_size == 0
        items, _, _ = await store.list("/")
        assert len(items) == 200
        await store.create("/after", b"v")
        assert await store.get("/after") is not None
