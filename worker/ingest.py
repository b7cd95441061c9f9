"""Ingestion: a Celery consumer bootstep that takes change events off `pushsync.events`.

Why a bootstep and not a task per message: producers publish plain JSON messages, not Celery
task messages, and a bootstep consumes them on the worker's own connection with no task
protocol, no pool round trip and no result handling, which keeps ingestion close to the
broker's raw rate. Messages are taken in small groups (`INGEST_GROUP_MESSAGES` or
`INGEST_GROUP_BYTES`, or whatever arrived within `INGEST_GROUP_SECONDS`) so that one Redis round
trip serves many of them. The consumer decodes a group, then a writer thread writes it to Redis
while the consumer takes and decodes the next one: the wait for Redis overlaps with that work,
and the writer, mostly waiting on its socket, seldom holds the interpreter lock.

Every message is acknowledged only after Redis holds each of its events: valid ones in their
windows, invalid ones in quarantine with the reason. When Redis cannot be written, the
messages go back to the queue and nothing is acknowledged.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import bootsteps
from kombu import Consumer, Message
from kombu.exceptions import OperationalError

from producers import broker
from producers.errors import InvalidEventError
from producers.events import Event, InvalidEvent, RebuildBegin, RebuildEnd, check_size, decode_message
from worker import broker_runs, keys, metrics, quarantine
from worker.coalesce import Coalescer, target_of
from worker.settings import load_settings
from worker.store import connect
from worker.tasks import rebuild_begin

log = logging.getLogger(__name__)

INGEST_GROUP_MESSAGES = 100
"""Messages written to Redis in one round trip, at most."""
INGEST_GROUP_BYTES = 4 * 1024 * 1024
"""Message bytes written in one round trip, at most (one message may exceed it alone)."""
INGEST_PREFETCH = 2 * INGEST_GROUP_MESSAGES
"""Unacknowledged messages the consumer holds: one group being written, one being gathered."""
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
        self.protected = frozenset(self.settings.protected_sources)
        self.pending: list[tuple[Message, str]] = []
        self.pending_bytes = 0
        self.oldest = 0.0
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pushsync-ingest")
        self.in_flight: tuple[Future, list[Message]] | None = None
        self._timer: Any = None

    def start(self, c: Any) -> None:
        super().start(c)
        self._timer = c.timer.call_repeatedly(INGEST_GROUP_SECONDS, self.flush_if_due)

    def shutdown(self, c: Any) -> None:
        super().shutdown(c)
        self.writer.shutdown(wait=True)

    def _close(self, c: Any, cancel_consumers: bool = True) -> None:
        # Messages not yet written go back with the connection: drop them here, unacknowledged.
        self.pending, self.pending_bytes = [], 0
        if c.connection is not None:
            self._settle(wait=True)
        elif self.in_flight is not None:
            # Too late to acknowledge: the messages come back, and coalescing them again changes nothing.
            self.in_flight[0].exception()
            self.in_flight = None
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
                              prefetch_count=INGEST_PREFETCH)]
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
        self.pending_bytes += len(message.body)
        if len(self.pending) >= INGEST_GROUP_MESSAGES or self.pending_bytes >= INGEST_GROUP_BYTES:
            self.flush()

    def flush_if_due(self) -> None:
        self._settle(wait=False)
        if self.pending and time.monotonic() - self.oldest >= INGEST_GROUP_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Hand the pending messages to the writer once the group before them is settled."""
        self._settle(wait=True)
        group, self.pending, self.pending_bytes = self.pending, [], 0
        decoded = decode([(message.body, origin) for message, origin in group], self.protected)
        self.in_flight = (self.writer.submit(store, self.client, self.coalescer, decoded), [m for m, _ in group])

    def _settle(self, wait: bool) -> None:
        """Acknowledge the group in flight once Redis holds it, or hand it back if Redis refused it.

        wait: block until the writer is done; otherwise return at once when it is not.
        """
        if self.in_flight is None or not (wait or self.in_flight[0].done()):
            return
        (future, group), self.in_flight = self.in_flight, None
        try:
            future.result()
        except (redis.RedisError, OperationalError) as exc:
            refuser = "coalescing store" if isinstance(exc, redis.RedisError) else "broker (a run's task)"
            log.error("%s refused %d message(s), handing them back to the broker: %s", refuser, len(group), exc)
            time.sleep(STORE_DOWN_BACKOFF_SECONDS)
            for message in group:
                message.requeue()
            return
        for message in group:
            message.ack()


@dataclass
class Decoded:
    """A group's events, decoded: those to coalesce and those to quarantine."""

    valid: list[Event] = field(default_factory=list)
    invalid: list[InvalidEvent] = field(default_factory=list)
    runs: list[RebuildBegin | RebuildEnd] = field(default_factory=list)
    """Begin and end events of broker-started full runs."""
    causes: Counter = field(default_factory=Counter)
    """Why the invalid ones are invalid, as the quarantine metric names it."""

    def refuse(self, invalid: InvalidEvent, cause: str) -> None:
        self.invalid.append(invalid)
        self.causes[cause] += 1

    def refuse_oversized(self) -> None:
        """Move the valid events over the size limit to the invalid ones (this encodes every event)."""
        fitting = []
        for event in self.valid:
            try:
                check_size(event)
            except InvalidEventError as exc:
                self.refuse(InvalidEvent(reason=exc.reason, raw=json.loads(event.encoded)), "invalid")
            else:
                fitting.append(event)
        self.valid = fitting


def decode(bodies: list[tuple[bytes, str]], protected: frozenset[str]) -> Decoded:
    """Decode and validate the events of `bodies`.

    bodies: (message body, origin) pairs; origin `poison` quarantines the message whole.
    protected: source ids whose events are quarantined instead of pushed.
    """
    decoded = Decoded()
    for body, origin in bodies:
        if origin == "poison":
            decoded.refuse(InvalidEvent(reason=POISON_REASON, raw=body), "poison")
            continue
        # Sizes are checked by the writer (see store), where encoding overlaps with the consumer's waits.
        for event in decode_message(body if isinstance(body, bytes) else body.encode(), max_event_bytes=None):
            if isinstance(event, InvalidEvent):
                decoded.refuse(event, "undecodable" if event.index is None else "invalid")
            elif isinstance(event, (RebuildBegin, RebuildEnd)):
                if event.source is not None and event.source in protected:
                    decoded.refuse(InvalidEvent(reason=PROTECTED_REASON.format(event.source),
                                                raw=json.loads(event.encoded)), "protected")
                else:
                    decoded.runs.append(event)
            elif protected and target_of(event).kind == keys.SOURCE and event.target in protected:
                decoded.refuse(InvalidEvent(reason=PROTECTED_REASON.format(event.target),
                                            raw=json.loads(event.encoded)), "protected")
            else:
                decoded.valid.append(event)
    return decoded


def store(client: redis.Redis, coalescer: Coalescer, decoded: Decoded) -> dict[str, int]:
    """Coalesce the valid events, quarantine the invalid ones, record and announce full runs.

    Returns counts by outcome. A run's begin task is sent only once Redis holds what its event said.
    """
    decoded.refuse_oversized()
    if decoded.invalid:
        pipe = client.pipeline(transaction=True)
        for entry in decoded.invalid:
            quarantine.keep(pipe, quarantine.entry_for(entry, queue=broker.EVENTS_QUEUE))
            broker_runs.record_invalid(pipe, entry)
        pipe.execute()
        log.warning("quarantined %d invalid event(s): %s", len(decoded.invalid), decoded.invalid[0].reason)
        for cause, count in decoded.causes.items():
            metrics.record_quarantined(cause, count)
    outcomes: Counter = Counter()
    if decoded.valid:
        result = coalescer.add(decoded.valid)
        outcomes = result.outcomes
        for target, counts in result.by_target.items():
            metrics.record_ingested(target.kind, target.id, received=sum(counts.values()),
                                    superseded=counts["superseded"] + counts["replaced"], stale=counts["stale"])
    if decoded.runs:
        _announce_runs(client, decoded.runs)
    return {**outcomes, "quarantined": len(decoded.invalid), "run_events": len(decoded.runs)}


def _announce_runs(client: redis.Redis, events: list[RebuildBegin | RebuildEnd]) -> None:
    pipe = client.pipeline(transaction=True)
    for event in events:
        broker_runs.record(pipe, event)
    pipe.execute()
    for event in events:
        # An ended run is looked at by the sweep (see broker_runs.due); a begun one starts at once.
        if isinstance(event, RebuildBegin):
            rebuild_begin.delay(broker_runs.target_of_run(event).ref, event.run)
        log.info("%s of run %s of %s received", event.kind, event.run, event.target)
