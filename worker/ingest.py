"""Ingestion: a Celery consumer bootstep that takes change events off `pushsync.events`.

Why a bootstep and not a task per message: producers publish plain JSON messages, not Celery
task messages, and a bootstep consumes them on the worker's own connection with no task
protocol, no pool round trip and no result handling, which keeps ingestion close to the
broker's raw rate. Messages are taken in small groups (`INGEST_GROUP_MESSAGES`, or whatever
arrived within `INGEST_GROUP_SECONDS`) so that one Redis round trip serves many of them.

Every message is acknowledged only after Redis holds each of its events: valid ones in their
windows, invalid ones in quarantine with the reason. When Redis cannot be written, the
messages go back to the queue and nothing is acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import redis
from celery import bootsteps
from kombu import Consumer, Message

from producers import broker
from producers.events import InvalidEvent, decode_message
from worker import keys, quarantine
from worker.coalesce import Coalescer, target_of
from worker.settings import load_settings
from worker.store import connect

log = logging.getLogger(__name__)

INGEST_GROUP_MESSAGES = 200
"""Messages written to Redis in one round trip, at most; also the consumer's prefetch."""
INGEST_GROUP_SECONDS = 0.02
"""How long a partial group may wait for more messages before it is written."""
STORE_DOWN_BACKOFF_SECONDS = 1.0
"""Pause before handing messages back when Redis refused them, so a Redis outage is not a hot loop."""
POISON_REASON = "the broker gave up on this message after repeated failed deliveries (poison message)"
PROTECTED_REASON = (
    "source {!r} is in PUSHSYNC_PROTECTED_SOURCES: Coveo manages it (Crawling Module, Coveo for Sitecore) "
    "and a custom connector's pushes could damage its index"
)


class IngestStep(bootsteps.ConsumerStep):
    """Consumes `pushsync.events` (and, on RabbitMQ, its poison queue) into Redis windows."""

    # After mingle, whatever order the blueprint would otherwise pick: mingle's hello drains the
    # connection until a second passes without a message, so a consumer registered before it
    # kept a worker started on a busy queue from ever becoming ready (no tasks, no group timer).
    requires = ("celery.worker.consumer:Connection", "celery.worker.consumer:Mingle")

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.settings = load_settings()
        self.client = connect(self.settings)
        self.coalescer = Coalescer(self.client, self.settings)
        self.pending: list[tuple[Message, str]] = []
        self.oldest = 0.0
        self._timer: Any = None

    def start(self, c: Any) -> None:
        super().start(c)
        self._timer = c.timer.call_repeatedly(INGEST_GROUP_SECONDS, self.flush_if_due)

    def _close(self, c: Any, cancel_consumers: bool = True) -> None:
        # Messages not yet written go back with the connection: drop them here, unacknowledged.
        self.pending = []
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if c.connection is None:
            # The broker connection is already gone (Celery is reconnecting): nothing to cancel.
            self.consumers = []
            return
        super()._close(c, cancel_consumers)

    def get_consumers(self, channel: Any) -> list[Consumer]:
        connection = channel.connection.client
        queues = broker.topology(connection)
        consumers = [Consumer(channel, queues=[broker.events_queue(connection)], on_message=self.on_event_message,
                              prefetch_count=INGEST_GROUP_MESSAGES)]
        for queue in queues:
            if queue.name != broker.EVENTS_QUEUE:
                consumers.append(Consumer(channel, queues=[queue], on_message=self.on_poison_message, no_ack=False))
        return consumers

    def on_event_message(self, message: Message) -> None:
        self._take(message, broker.EVENTS_QUEUE)

    def on_poison_message(self, message: Message) -> None:
        self._take(message, "poison")

    def _take(self, message: Message, origin: str) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append((message, origin))
        if len(self.pending) >= INGEST_GROUP_MESSAGES:
            self.flush()

    def flush_if_due(self) -> None:
        if self.pending and time.monotonic() - self.oldest >= INGEST_GROUP_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write every pending message's events to Redis, then acknowledge the messages."""
        group, self.pending = self.pending, []
        try:
            ingest(self.client, self.coalescer, [(message.body, origin) for message, origin in group])
        except redis.RedisError as exc:
            log.error("coalescing store refused %d message(s), handing them back to the broker: %s", len(group), exc)
            time.sleep(STORE_DOWN_BACKOFF_SECONDS)
            for message, _ in group:
                message.requeue()
            return
        for message, _ in group:
            message.ack()


def ingest(client: redis.Redis, coalescer: Coalescer, bodies: list[tuple[bytes, str]]) -> dict[str, int]:
    """Coalesce the valid events of `bodies` and quarantine the rest; returns counts by outcome.

    bodies: (message body, origin) pairs; origin `poison` quarantines the message whole.
    """
    valid, invalid = [], []
    protected = frozenset(coalescer.settings.protected_sources)
    for body, origin in bodies:
        if origin == "poison":
            invalid.append(InvalidEvent(reason=POISON_REASON, raw=body))
            continue
        for event in decode_message(body if isinstance(body, bytes) else body.encode()):
            if isinstance(event, InvalidEvent):
                invalid.append(event)
            elif target_of(event).kind == keys.SOURCE and event.target in protected:
                invalid.append(InvalidEvent(reason=PROTECTED_REASON.format(event.target), raw=json.loads(event.encoded)))
            else:
                valid.append(event)
    if invalid:
        pipe = client.pipeline(transaction=True)
        for entry in invalid:
            quarantine.keep(pipe, quarantine.entry_for(entry, queue=broker.EVENTS_QUEUE))
        pipe.execute()
        log.warning("quarantined %d invalid event(s): %s", len(invalid), invalid[0].reason)
    outcomes = coalescer.add(valid).outcomes if valid else {}
    return {**outcomes, "quarantined": len(invalid)}
