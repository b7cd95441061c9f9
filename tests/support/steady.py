"""Steady publishing from a thread, for the tests that hurt a broker or a store while events flow."""

from __future__ import annotations

import threading
import time
from typing import Any

from producers import Publisher, PublishError, RetryPolicy

PATIENT = RetryPolicy(max_retries=2, interval_step=0.2, interval_max=0.5)
"""Retries that ride out a broker restart of a second or two."""
RESEND_SECONDS = 120.0
"""How long a publisher whose message was refused keeps sending everything again."""


class SteadyPublisher:
    """Publishes `events` at a steady pace from a thread, retrying what the broker refused."""

    def __init__(self, broker_url: str, events: list[dict[str, Any]], seconds: float, per_message: int = 10,
                 retry: RetryPolicy = PATIENT) -> None:
        """
        broker_url: the broker to publish to.
        events: what to publish, in order.
        seconds: about how long publishing should take.
        per_message: events per message.
        retry: the Publisher's retries.
        """
        self.broker_url = broker_url
        self.retry = retry
        self.events = events
        self.per_message = per_message
        self.pause = seconds / max(len(events) // per_message, 1)
        self.refusals = 0
        """Messages the Publisher gave up on (PublishError): each made it send everything again."""
        self.confirmed_at: list[float] = []
        """time.time() at each confirmed message of the steady pace, in order."""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyPublisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._thread.join(600)
        if self.error is not None:
            raise self.error

    def longest_gap(self, around: float) -> float:
        """Seconds between the last confirm before `around` (a time.time()) and the first after it."""
        before = [at for at in self.confirmed_at if at <= around]
        after = [at for at in self.confirmed_at if at > around]
        assert before and after, f"no confirm on both sides of {around}: {len(before)} before, {len(after)} after"
        return after[0] - before[-1]

    def _run(self) -> None:
        try:
            publisher = Publisher(self.broker_url, events_per_message=self.per_message, retry=self.retry)
            for start in range(0, len(self.events), self.per_message):
                publisher.publish_many(self.events[start:start + self.per_message])
                self.confirmed_at.append(time.time())
                time.sleep(self.pause)
            publisher.close()
        except PublishError:
            self.refusals += 1
            self._retry_from_scratch()
        except BaseException as exc:  # noqa: BLE001 - reported by __exit__
            self.error = exc

    def _retry_from_scratch(self) -> None:
        # What a producer does when the broker did not confirm: send again (coalescing is idempotent).
        deadline = time.monotonic() + RESEND_SECONDS
        while time.monotonic() < deadline:
            try:
                with Publisher(self.broker_url, retry=self.retry) as publisher:
                    publisher.publish_many(self.events)
                return
            except PublishError:
                self.refusals += 1
                time.sleep(0.5)
        self.error = AssertionError(f"the broker refused the events for {RESEND_SECONDS:.0f} s")
