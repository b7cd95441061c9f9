"""The emulator's clock: wall-clock time plus an offset that tests move forward."""

from __future__ import annotations

import time

MS_PER_SECOND = 1000


class Clock:
    """Epoch time as the emulator sees it; `advance` makes delays and expiries happen now."""

    def __init__(self) -> None:
        self.offset = 0.0
        """Seconds added to the wall clock by `advance` calls."""

    def now(self) -> float:
        """Epoch seconds on the emulator's clock."""
        return time.time() + self.offset

    def now_ms(self) -> int:
        """Epoch milliseconds on the emulator's clock: the service's default orderingId."""
        return int(self.now() * MS_PER_SECOND)

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds` (never back: orderingIds must not go backwards)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self.offset += seconds
