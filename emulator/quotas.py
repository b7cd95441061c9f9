"""The organization's daily allowances, counted per UTC day on the emulator's clock."""

from __future__ import annotations

import math

from emulator.clock import Clock
from emulator.errors import TOO_MANY_REQUESTS, EmulatorError

SECONDS_PER_DAY = 24 * 60 * 60
TOO_MANY_DOCUMENTS_DAILY = "TOO_MANY_DOCUMENTS_DAILY"


class DailyQuotas:
    """Push API calls and pushed items of the current day."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._day = -1
        self.requests = 0
        """Push API calls counted today."""
        self.documents = 0
        """Items (adds and updates) counted today."""

    def count_request(self, limit: int | None) -> None:
        """Count one Push API call, or answer 429 TOO_MANY_REQUESTS once `limit` calls were made today."""
        self._roll()
        if limit is not None and self.requests >= limit:
            raise EmulatorError(429, TOO_MANY_REQUESTS, f"the {limit} calls allowed today were made",
                                retry_after=self._seconds_to_tomorrow())
        self.requests += 1

    def check_documents(self, limit: int | None) -> None:
        """A 429 TOO_MANY_DOCUMENTS_DAILY once `limit` items were pushed today: retrying today
        does not help, so Retry-After points at tomorrow."""
        self._roll()
        if limit is not None and self.documents >= limit:
            raise EmulatorError(429, TOO_MANY_DOCUMENTS_DAILY, f"the {limit} items allowed today were pushed",
                                retry_after=self._seconds_to_tomorrow())

    def admit_documents(self, count: int, limit: int | None) -> int:
        """Count `count` items pushed in one call; how many of them fit in today's allowance."""
        self._roll()
        admitted = count if limit is None else max(0, min(count, limit - self.documents))
        self.documents += count
        return admitted

    def _roll(self) -> None:
        day = int(self._clock.now() // SECONDS_PER_DAY)
        if day != self._day:
            self._day, self.requests, self.documents = day, 0, 0

    def _seconds_to_tomorrow(self) -> int:
        return max(1, math.ceil((self._day + 1) * SECONDS_PER_DAY - self._clock.now()))
