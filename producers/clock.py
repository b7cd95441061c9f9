"""Item versions for callers that have none: a clock that never goes backwards in this process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

NANOSECONDS_PER_MICROSECOND = 1_000


class VersionClock:
    """Versions in microseconds since the Unix epoch, strictly increasing across every call in the process.

    When the wall clock stands still or steps back (NTP), the next version is the previous one
    plus one, so two changes published one after the other are never taken for the same change
    or for an older one. Microseconds keep such bumps far below what a person would notice.
    """

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        """`now_ns` is the wall clock in nanoseconds since the epoch (replaced in tests)."""
        self._now_ns = now_ns
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        """The next version: the current time, or one more than the previous version if that is later."""
        with self._lock:
            self._last = max(self._now_ns() // NANOSECONDS_PER_MICROSECOND, self._last + 1)
            return self._last


PROCESS_CLOCK = VersionClock()
"""The clock every Publisher of this process shares unless given its own."""
