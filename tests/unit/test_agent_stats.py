"""CPU rates of the stats collector: the change of cumulative cpu seconds over a window."""

from __future__ import annotations

import pytest

from dockyard.agent.stats import MIN_WINDOW, StatsCollector

pytestmark = pytest.mark.unit


def collector() -> StatsCollector:
    return StatsCollector(runtime=None, listing=lambda: None)  # type: ignore[arg-type]


def test_the_first_reading_has_no_rate() -> None:
    assert collector().rate("c", 100.0, 5.0) == (0, 0.0)


def test_rate_is_cpu_seconds_over_the_window_in_nanocores() -> None:
    stats = collector()
    stats.rate("c", 100.0, 5.0)
    assert stats.rate("c", 102.0, 6.0) == (500_000_000, 2.0)


def test_a_burst_of_requests_keeps_a_base_old_enough_to_diff_with() -> None:
    stats = collector()
    stats.rate("c", 100.0, 0.0)
    for step in range(1, 8):  # seven requests within MIN_WINDOW of each other
        at = 110.0 + step * MIN_WINDOW / 10
        rate, window = stats.rate("c", at, (at - 100.0) * 0.25)
        assert rate == pytest.approx(250_000_000, rel=1e-6)
        assert window == pytest.approx(at - 100.0)


def test_the_base_moves_on_once_a_newer_sample_is_old_enough() -> None:
    stats = collector()
    for at in (100.0, 110.0, 110.5, 112.0):
        rate, window = stats.rate("c", at, at * 0.5)
    assert rate == 500_000_000
    assert window == pytest.approx(1.5)
