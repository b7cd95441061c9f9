"""The service's asynchrony: accepted operations are applied later, in order, one at a time.

A 202 only means "accepted". Each operation becomes due `apply_delay` seconds after it was
accepted, plus its own delay (an `olderthan` call's queueDelay), on the emulator's clock, so
moving the clock forward makes delayed operations due at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable

from emulator.clock import Clock

log = logging.getLogger("emulator")

Operation = Callable[[], Awaitable[None]]
"""Applies one accepted operation to the index."""
IDLE_POLL_SECONDS = 0.005
"""How often `wait_idle` looks again; far below any apply delay a test would notice."""


class Scheduler:
    """Runs operations when they are due, strictly one after the other."""

    def __init__(self, clock: Clock, apply_delay: Callable[[], float]) -> None:
        """`apply_delay`: returns the current delay between acceptance and application, in seconds."""
        self._clock = clock
        self._apply_delay = apply_delay
        self._queue: list[tuple[float, int, Operation]] = []
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._running = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start applying operations (on the running event loop)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop applying; what is still queued is dropped."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def submit(self, operation: Operation, extra_delay: float = 0.0) -> None:
        """Queue `operation`, due after the apply delay plus `extra_delay` seconds."""
        due = self._clock.now() + self._apply_delay() + extra_delay
        entry = (due, next(self._order), operation)
        heapq.heappush(self._queue, entry)
        if self._queue[0] is entry:  # only an operation due before all others changes the next wake-up
            self._wakeup.set()

    def wake(self) -> None:
        """Look at the queue again: the clock moved."""
        self._wakeup.set()

    def pending(self) -> int:
        """Operations accepted and not applied yet, not counting those waiting for the clock
        beyond the normal apply delay (an `olderthan` with a queueDelay still to run)."""
        horizon = self._clock.now() + self._apply_delay()
        return sum(1 for due, _, _ in self._queue if due <= horizon) + self._running

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until `pending()` is 0, at most `timeout` seconds; whether it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pending():
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(IDLE_POLL_SECONDS)
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wakeup.clear()
            wait = self._queue[0][0] - self._clock.now() if self._queue else None
            if wait is None or wait > 0:
                # A timer, not wait_for: no task is created per wait, and there is one per request.
                timer = loop.call_later(wait, self._wakeup.set) if wait is not None else None
                await self._wakeup.wait()
                if timer is not None:
                    timer.cancel()
                continue
            _, _, operation = heapq.heappop(self._queue)
            self._running = True
            try:
                await operation()
            except Exception:  # an emulator bug must not stop every later operation
                log.exception("applying an accepted operation failed")
            finally:
                self._running = False
