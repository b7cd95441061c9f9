"""Hand change events over to the broker: validated, many per message, confirmed, retried within bounds.

    with Publisher("redis://127.0.0.1:6379/0") as publisher:
        publisher.publish({"kind": "item.delete", "source": "my-source", "documentId": "https://…"})

`publish` buffers; a message leaves when it holds `events_per_message` events, would grow past
`max_message_bytes`, or its first event has waited `max_delay_seconds` (checked as the next event
is published: a publisher that goes quiet calls `flush()`), and on `flush()` / the end of the
`with` block. Whatever was not confirmed
by the broker raises PublishError carrying those events. A Publisher is not thread-safe.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from time import monotonic
from types import TracebackType
from typing import Any

from producers import broker
from producers.clock import PROCESS_CLOCK, VersionClock
from producers.errors import PublishError
from producers.events import EVENT_TYPES, MAX_EVENT_BYTES, Event, complete_event, encode_message, parse_event
from producers.runs import FullRun
from producers.transport import RetryPolicy, Transport, open_transport

log = logging.getLogger(__name__)

DEFAULT_EVENTS_PER_MESSAGE = 500
DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""Keeps one message well under what brokers handle comfortably; a larger single event goes alone."""
DEFAULT_MAX_DELAY_SECONDS = 0.05
"""How long a buffered event may wait for its message to fill: a slow producer's events are not held
until 500 have come (at 100 events/s that was 5 s of every event's latency); a fast one still fills
its messages."""
ENVELOPE_OVERHEAD_BYTES = len(b'{"events":[]}')


class Publisher:
    """Publishes change events to the `pushsync.events` queue of one broker."""

    def __init__(
        self,
        broker_url: str,
        *,
        events_per_message: int = DEFAULT_EVENTS_PER_MESSAGE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_event_bytes: int = MAX_EVENT_BYTES,
        max_delay_seconds: float | None = DEFAULT_MAX_DELAY_SECONDS,
        retry: RetryPolicy = RetryPolicy(),
        connect_timeout: float = broker.DEFAULT_CONNECT_TIMEOUT,
        confirm_timeout: float = broker.DEFAULT_CONFIRM_TIMEOUT,
        clock: VersionClock = PROCESS_CLOCK,
        queue_name: str = broker.EVENTS_QUEUE,
    ) -> None:
        """
        `broker_url`: redis://… or amqp://… of the broker the workers consume, or a failover list of
            a RabbitMQ cluster's nodes (`amqp://…;amqp://…`); ValueError when the list is not one.
        `events_per_message`: most events carried by one message.
        `max_message_bytes`: largest message body, unless one event alone is larger.
        `max_event_bytes`: largest encoded event accepted (keep equal to the worker's).
        `max_delay_seconds`: longest the first buffered event waits before a `publish` sends its
            message; None waits for a full message or `flush()`.
        `retry`: how long to retry when the broker cannot be reached.
        `connect_timeout`: seconds to open a connection.
        `confirm_timeout`: seconds to wait for RabbitMQ's confirm of one message.
        `clock`: fills the version of events that come without one.
        `queue_name`: the queue to publish to; only tests change it.
        """
        if events_per_message < 1:
            raise ValueError("events_per_message must be at least 1")
        # Not `< 0`: NaN passes that, and no wait is ever `>=` NaN (the messages would wait to fill).
        if max_delay_seconds is not None and not max_delay_seconds >= 0:
            raise ValueError("max_delay_seconds must not be negative")
        self.max_delay_seconds = max_delay_seconds
        self.events_per_message = events_per_message
        self.max_message_bytes = max_message_bytes
        self.max_event_bytes = max_event_bytes
        self.clock = clock
        self.published_events = 0
        """Events the broker confirmed so far."""
        self.published_messages = 0
        """Messages the broker confirmed so far."""
        self._queue_name = queue_name
        self._transport: Transport = open_transport(broker_url, queue_name, retry=retry,
                                                    connect_timeout=connect_timeout, confirm_timeout=confirm_timeout)
        self._buffer: list[Event] = []
        self._buffer_bytes = ENVELOPE_OVERHEAD_BYTES
        self._buffered_at = 0.0
        """When the first buffered event was published (monotonic seconds)."""

    @property
    def broker(self) -> str:
        """The broker URL with its password masked, for messages and logs."""
        return self._transport.url

    def prepare(self, event: Event | dict[str, Any]) -> Event:
        """Validate `event` and fill what it may leave out (ids, time, version); raise InvalidEventError."""
        if isinstance(event, EVENT_TYPES):
            return event
        return parse_event(complete_event(event, next_version=self.clock.next), max_bytes=self.max_event_bytes)

    def publish(self, event: Event | dict[str, Any]) -> Event:
        """Queue one event for the next message, sending the message once it is full; return the event as sent."""
        prepared = self.prepare(event)
        size = prepared.encoded_size + 1  # the comma between events
        if self._buffer and self._buffer_bytes + size > self.max_message_bytes:
            self.flush()
        if not self._buffer:
            self._buffered_at = monotonic()
        self._buffer.append(prepared)
        self._buffer_bytes += size
        if len(self._buffer) >= self.events_per_message or self._waited_enough():
            self.flush()
        return prepared

    def _waited_enough(self) -> bool:
        return self.max_delay_seconds is not None and monotonic() - self._buffered_at >= self.max_delay_seconds

    def publish_many(self, events: Iterable[Event | dict[str, Any]]) -> list[Event]:
        """Publish every event, then flush: when this returns, the broker has confirmed them all."""
        published = [self.publish(event) for event in events]
        self.flush()
        return published

    def full_run(self, *, source: str | None = None, provider: str | None = None, run_id: str | None = None,
                 **options: Any) -> FullRun:
        """A full run of `source` (rebuild) or `provider` (identity sync) to use as a `with` block.

        options: `queueDelay`, `maxDeleteShare`, `allowEmpty` as rebuild.begin takes them.
        """
        return FullRun(self, source=source, provider=provider, run_id=run_id, **options)

    def flush(self) -> None:
        """Send the buffered events as one message; raise PublishError (holding them) if the broker did not confirm."""
        if not self._buffer:
            return
        batch, self._buffer, self._buffer_bytes = self._buffer, [], ENVELOPE_OVERHEAD_BYTES
        try:
            body = encode_message(batch)
            self._transport.send(body)
        except Exception as exc:  # kombu, redis-py and their transports raise many unrelated classes
            self._transport.reset()
            raise PublishError(f"{type(exc).__name__}: {exc} (broker {self.broker})", batch) from exc
        log.debug("published a message of %d bytes to %s", len(body), self._queue_name)
        self.published_events += len(batch)
        self.published_messages += 1

    def close(self) -> None:
        """Flush what is buffered, then release the connection."""
        try:
            self.flush()
        finally:
            self._transport.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None,
    ) -> None:
        self.close()
