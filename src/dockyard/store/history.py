"""How much watch history to keep: notes of (time, revision) taken on a timer.

A backend calls ``note(revision)`` every ``interval`` seconds; it answers the newest revision
noted at least ``history_seconds`` ago, which the backend then compacts to. So history always
covers at least ``history_seconds`` (and at most one interval more). The notes live in memory:
after a restart they start again, which keeps history longer, never shorter.
"""

from __future__ import annotations

import time
from collections import deque


class HistoryClock:
    """Remembers when each noted revision was current, to find the one that aged out."""

    def __init__(self, history_seconds: float, revision: int, now: float | None = None) -> None:
        if history_seconds <= 0:
            raise ValueError(f"history_seconds must be positive, not {history_seconds}")
        self.history_seconds = history_seconds
        self.interval = min(history_seconds / 2, 10.0)
        start = time.monotonic() if now is None else now
        self._notes: deque[tuple[float, int]] = deque([(start, revision)])

    def note(self, revision: int, now: float | None = None) -> int:
        """Record revision as current now; return the revision to compact to (0: none yet)."""
        now = time.monotonic() if now is None else now
        self._notes.append((now, revision))
        target = 0
        while self._notes and self._notes[0][0] <= now - self.history_seconds:
            target = self._notes.popleft()[1]
        return target
