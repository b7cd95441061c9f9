"""A one-line progress bar with a rate, drawn on a terminal and silent anywhere else."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24
REDRAW_SECONDS = 0.1
"""Redraw at most ten times a second: drawing must not slow down what it measures."""


class Progress:
    """Counts events and input bytes, and redraws one status line on `stream` when it is a terminal."""

    def __init__(
        self,
        stream: TextIO,
        *,
        total_bytes: int | None = None,
        label: str = "publishing",
        enabled: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        `stream`: where to draw, normally stderr.
        `total_bytes`: size of the input when known, for the bar and percentage.
        `label`: the word in front of the line.
        `enabled`: force drawing on or off; by default, on when `stream` is a terminal.
        `clock`: seconds, monotonic (replaced in tests).
        """
        self.stream = stream
        self.total_bytes = total_bytes
        self.label = label
        self.enabled = stream.isatty() if enabled is None else enabled
        self.events = 0
        self.bytes_done = 0
        self._clock = clock
        self._started = clock()
        self._drawn_at = float("-inf")

    @property
    def rate(self) -> float:
        """Events per second since the start."""
        elapsed = self._clock() - self._started
        return self.events / elapsed if elapsed > 0 else 0.0

    def update(self, events: int = 0, bytes_done: int = 0) -> None:
        """Count `events` more events and `bytes_done` more input bytes; redraw when due."""
        self.events += events
        self.bytes_done += bytes_done
        if self.enabled and self._clock() - self._drawn_at >= REDRAW_SECONDS:
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def line(self) -> str:
        """The status line as it is drawn."""
        counts = f"{self.events:,} events  {self.rate:,.0f} events/s"
        if not self.total_bytes:
            return f"{self.label} {counts}"
        fraction = min(self.bytes_done / self.total_bytes, 1.0)
        filled = round(fraction * BAR_WIDTH)
        return f"{self.label} [{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {fraction:4.0%}  {counts}"

    def _draw(self) -> None:
        self._drawn_at = self._clock()
        self.stream.write("\r" + self.line())
        self.stream.flush()
