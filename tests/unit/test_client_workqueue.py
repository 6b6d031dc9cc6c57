"""WorkQueue semantics as client-go's: dedup, one worker per key, delays, backoff, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.client.workqueue import (
    ExponentialRateLimiter,
    RequeueAfter,
    ShutDown,
    WorkQueue,
    run_workers,
)

pytestmark = pytest.mark.unit


async def test_keys_are_deduplicated_while_queued() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get(), await q.get(), await q.get()] == ["a", "b", "c"]


async def test_key_in_processing_waits_for_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # changed again while a worker holds it
    q.add("a")
    assert len(q) == 0  # not handed to a second worker
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_get_waits_for_add() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_shutdown_drains_then_raises_and_wakes_waiters() -> None:
    q = WorkQueue()
    q.add("a")
    waiter_q = WorkQueue()
    waiter = asyncio.create_task(waiter_q.get())
    await asyncio.sleep(0)
    q.shut_down()
    waiter_q.shut_down()
    q.add("b")  # ignored after shutdown
    assert await q.get() == "a"
    with pytest.raises(ShutDown):
        await q.get()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)


async def test_add_after_delays_and_earliest_wins() -> None:
    q = WorkQueue()
    q.add_after("k", 0.05)
    q.add_after("k", 10)  # a later time for a waiting key keeps the earlier one
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    q.add_after("z", 10)
    q.add_after("z", 0.01)  # an earlier time replaces the later one
    assert await asyncio.wait_for(q.get(), 1) == "z"


async def test_shutdown_cancels_delayed_adds() -> None:
    q = WorkQueue()
    q.add_after("k", 0.01)
    q.shut_down()
    await asyncio.sleep(0.03)
    assert len(q) == 0


def test_rate_limiter_doubles_from_5ms_to_1000s_and_forget_resets() -> None:
    rl = ExponentialRateLimiter()
    delays = [rl.when("k") for _ in range(20)]
    # 0.005 * 2**n: 5 ms, 10 ms, 20 ms ... 2**17 * 5 ms = 655.36 s, then the 1000 s cap.
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[17] == pytest.approx(655.36)
    assert delays[18] == delays[19] == 1000.0
    assert rl.num_requeues("k") == 20
    assert rl.when("other") == 0.005  # per key
    rl.forget("k")
    assert rl.num_requeues("k") == 0 and rl.when("k") == 0.005
    limited = ExponentialRateLimiter(1, 3)
    assert [limited.when("x") for _ in range(4)] == [1, 2, 3, 3]
    for _ in range(100):
        rl.when("huge")  # far past the cap: no overflow
    assert rl.when("huge") == 1000.0


async def test_add_rate_limited_uses_backoff() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=0.05)
    q.add_rate_limited("k")
    assert len(q) == 0 and q.num_requeues("k") == 1
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_run_workers_retries_failures_with_backoff_and_forgets_on_success() -> None:
    q = WorkQueue(name="test", base_delay=0.001, max_delay=0.01)
    attempts: dict[str, int] = {}

    async def reconcile(key: str) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        if key == "flaky" and attempts[key] < 3:
            raise RuntimeError("not yet")
        if all(attempts.get(k, 0) >= n for k, n in (("flaky", 3), ("ok", 1))):
            q.shut_down()

    q.add("ok")
    q.add("flaky")
    await asyncio.wait_for(run_workers(q, reconcile, workers=2), 5)
    assert attempts == {"ok": 1, "flaky": 3}
    assert q.num_requeues("flaky") == 0  # forgotten after the success


async def test_run_workers_never_runs_one_key_concurrently() -> None:
    q = WorkQueue()
    running: set[str] = set()
    overlaps = 0
    runs = 0

    async def reconcile(key: str) -> None:
        nonlocal overlaps, runs
        if key in running:
            overlaps += 1
        running.add(key)
        q.add(key)  # the object changes while being reconciled
        await asyncio.sleep(0.001)
        running.discard(key)
        runs += 1
        if runs >= 20:
            q.shut_down()

    q.add("same")
    await asyncio.wait_for(run_workers(q, reconcile, workers=4), 5)
    assert overlaps == 0 and runs >= 20


async def test_requeue_after_is_not_a_failure() -> None:
    q = WorkQueue()
    calls = 0

    async def reconcile(key: str) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RequeueAfter(0.01, "waiting for a timer")
        q.shut_down()

    q.add("k")
    await asyncio.wait_for(run_workers(q, reconcile, workers=1), 5)
    assert calls == 2 and q.num_requeues("k") == 0
