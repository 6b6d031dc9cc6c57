"""The compaction timer outlives a failed tick, whatever the failure was."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.store.history import CompactionTimer

pytestmark = pytest.mark.unit


class FlakyStore:
    """Fails its first revision read with a non-store error (a timeout), then answers."""

    def __init__(self) -> None:
        self.revision = 10
        self.reads = 0
        self.compacted_to: list[int] = []

    async def current_revision(self) -> int:
        self.reads += 1
        if self.reads == 1:
            raise TimeoutError("etcd did not answer")
        self.revision += 1
        return self.revision

    async def compact(self, revision: int) -> int:
        self.compacted_to.append(revision)
        return revision


async def test_a_timeout_in_one_tick_does_not_end_compaction() -> None:
    store = FlakyStore()
    timer = CompactionTimer(store, history_seconds=0.02, revision=10, compacted=0,
                            name="test-compaction")
    try:
        for _ in range(200):
            if store.compacted_to:
                break
            await asyncio.sleep(0.01)
    finally:
        await timer.stop()
    assert store.reads >= 2 and store.compacted_to
