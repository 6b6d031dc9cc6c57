"""The history clock: which revision has aged past history_seconds."""

from __future__ import annotations

import pytest

from dockyard.store.history import HistoryClock

pytestmark = pytest.mark.unit


def test_compacts_to_the_revision_current_history_seconds_ago() -> None:
    t0 = 1000.0
    clock = HistoryClock(300.0, revision=1, now=t0)
    assert clock.note(50, now=t0 + 10) == 0  # nothing is 300 s old yet
    assert clock.note(90, now=t0 + 200) == 0
    # At t0+305 the note from t0 (rev 1) is 305 s old; the one from t0+10 only 295 s.
    assert clock.note(120, now=t0 + 305) == 1
    assert clock.note(130, now=t0 + 311) == 50  # t0+10 is now 301 s old
    assert clock.note(140, now=t0 + 312) == 0  # nothing newly aged out


def test_interval_is_half_the_history_capped_at_ten_seconds() -> None:
    assert HistoryClock(0.4, 1).interval == 0.2
    assert HistoryClock(300.0, 1).interval == 10.0
    with pytest.raises(ValueError, match="positive"):
        HistoryClock(0, 1)
