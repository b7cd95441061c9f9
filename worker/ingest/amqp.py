"""Ingestion on RabbitMQ: a Celery consumer bootstep that takes change events off `pushsync.events`.

Why a bootstep and not a task per message: producers publish plain JSON messages, not Celery
task messages, and a bootstep consumes them on the worker's own connection with no task
protocol, no pool round trip and no result handling. Messages are taken in small groups
(`INGEST_GROUP_MESSAGES` or `INGEST_GROUP_BYTES`, or whatever arrived within
`INGEST_GROUP_SECONDS`) so that one Redis round trip serves many of them. A writer thread writes
a group (`worker.ingest.Ingestor`) while the consumer gathers the next one; the consumer's event
loop never waits for the writer, so heartbeats and Celery's own work go on through a store
outage, and the prefetch limit stops deliveries while the writer waits.

A message is acknowledged once Redis holds each of its events (confirmed by
`PUSHSYNC_STORE_MIN_REPLICAS` replicas: `worker.store.durability`). RabbitMQ counts every delivery of
a message; past `DELIVERY_LIMIT` it dead-letters the message to the poison queue. Deliveries also
end when a worker or the broker restarts, which is not the message's fault, so a message from the
poison queue is ingested like any other on its first delivery there, and quarantined as poison
only if a worker died holding it there too.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from celery import bootsteps
from kombu import Consumer, Message

from producers import broker
from worker.ingest import compression
from worker.ingest.ingestor import INGEST_GROUP_MESSAGES, Ingestor, Received, Stopping, run_announcer
from worker.settings import load_settings
from worker.store.connection import connect
from worker.store.durability import Durability
from worker.windows.coalesce import Coalescer

log = logging.getLogger(__name__)

INGEST_GROUP_BYTES = 4 * 1024 * 1024
"""Message bytes written in one round trip, at most (one message may exceed it alone)."""
INGEST_PREFETCH = 2 * INGEST_GROUP_MESSAGES
"""Unacknowledged messages the consumer holds: one group being written, one being gathered."""
INGEST_GROUP_SECONDS = 0.02
"""How long a partial group may wait for more messages before it is written."""
POISON_QUEUE_DELIVERIES = broker.DELIVERY_LIMIT + 1
"""How a redelivery from the poison queue is counted: past the limit, so it is quarantined unread."""


class AmqpIngestStep(bootsteps.ConsumerStep):
    """Consumes `pushsync.events` (and its poison queue) into Redis windows, on RabbitMQ only."""

    # After mingle, whatever order the blueprint would otherwise pick: mingle's hello drains the
    # connection until a second passes without a message, so a consumer registered before it
    # kept a worker started on a busy queue from ever becoming ready (no tasks, no group timer).
    requires = ("celery.worker.consumer:Connection", "celery.worker.consumer:Mingle")

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.settings = load_settings()
        self.enabled = broker.is_amqp(parent.app.conf.broker_url or "")
        self.pending: list[tuple[Message, Received]] = []
        self.pending_bytes = 0
        self.oldest = 0.0
        self.in_flight: tuple[Future, list[Message]] | None = None
        self._timer: Any = None
        if not self.enabled:
            return
        compression.install()
        durability = Durability.of(connect(self.settings), self.settings)
        client = durability.client
        self.ingestor = Ingestor(client, Coalescer(client, self.settings), run_announcer(parent.app),
                                 protected=frozenset(self.settings.protected_sources), durability=durability)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pushsync-ingest")

    def start(self, c: Any) -> None:
        if not self.enabled:
            return
        self.ingestor.stopping.clear()
        super().start(c)
        self._timer = c.timer.call_repeatedly(INGEST_GROUP_SECONDS, self.flush_if_due)

    def stop(self, c: Any) -> None:
        if not self.enabled:
            return
        # A writer waiting out a store outage gives up: its messages go back with the connection.
        self.ingestor.stopping.set()
        super().stop(c)

    def shutdown(self, c: Any) -> None:
        if not self.enabled:
            return
        self.ingestor.stopping.set()
        super().shutdown(c)
        self.writer.shutdown(wait=True)

    def _close(self, c: Any, cancel_consumers: bool = True) -> None:
        # Messages not yet written go back with the connection: drop them here, unacknowledged.
        self.pending, self.pending_bytes = [], 0
        if self.in_flight is not None:
            # The group being written is settled (acknowledged if the channel still lives); a
            # message not acknowledged comes back, and coalescing it again changes nothing.
            try:
                self._settle(wait=c.connection is not None)
            except c.connection_errors:
                # Celery stops the steps before it drops a connection its node broke (SIGKILLed):
                # the acknowledgements had nowhere to go, and the rest of the close must still run.
                pass
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
        if not self.enabled:
            return []
        # py-amqp decodes a body to text by its content_encoding: a compressed body labelled latin-1
        # then reached kombu's decompression as text and was refused. This channel is the step's
        # own, so its messages keep their bytes whatever they claim.
        channel.auto_decode = False
        connection = channel.connection.client
        consumers = [Consumer(channel, queues=[broker.events_queue(connection)], on_message=self.on_event_message,
                              on_decode_error=self.on_undecodable, prefetch_count=INGEST_PREFETCH)]
        for queue in broker.topology(connection):
            if queue.name != broker.EVENTS_QUEUE:
                consumers.append(Consumer(channel, queues=[queue], on_message=self.on_poison_message,
                                          on_decode_error=self.on_undecodable, no_ack=False))
        return consumers

    def on_event_message(self, message: Message) -> None:
        self._take(message, Received(_bytes(message.body)))

    def on_poison_message(self, message: Message) -> None:
        deliveries = POISON_QUEUE_DELIVERIES if message.delivery_info.get("redelivered") else 1
        self._take(message, Received(_bytes(message.body), deliveries=deliveries))

    def on_undecodable(self, message: Any, exc: BaseException) -> None:
        """kombu could not read the message (its compression, say): quarantine it with the reason."""
        reason = str(exc) if isinstance(exc, compression.BodyError) else f"cannot be read: {type(exc).__name__}: {exc}"
        self._take(message, Received(_bytes(getattr(message, "body", b"")), undecodable=reason))

    def _take(self, message: Message, received: Received) -> None:
        if not self.pending:
            self.oldest = time.monotonic()
        self.pending.append((message, received))
        self.pending_bytes += len(received.body)
        if len(self.pending) >= INGEST_GROUP_MESSAGES or self.pending_bytes >= INGEST_GROUP_BYTES:
            self.flush()

    def flush_if_due(self) -> None:
        self._settle(wait=False)
        if self.pending and time.monotonic() - self.oldest >= INGEST_GROUP_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Hand the pending messages to the writer, unless it still writes the group before them.

        The event loop never waits here: while the writer is busy (a slow or absent store), the
        pending messages wait, and the prefetch limit stops RabbitMQ from sending more.
        """
        self._settle(wait=False)
        if self.in_flight is not None or not self.pending:
            return
        group, self.pending, self.pending_bytes = self.pending, [], 0
        received = [one for _, one in group]
        self.in_flight = (self.writer.submit(self.ingestor.write, received), [m for m, _ in group])

    def _settle(self, wait: bool) -> None:
        """Acknowledge the group in flight once Redis holds it.

        wait: block until the writer is done; otherwise return at once when it is not.
        """
        if self.in_flight is None or not (wait or self.in_flight[0].done()):
            return
        (future, group), self.in_flight = self.in_flight, None
        try:
            future.result()
        except Stopping:
            return  # left unacknowledged: the broker hands them to the next consumer
        except Exception:  # the writer isolates every message's own failure: this is a bug, say so loudly
            # Handed back, each delivery counts: a group that keeps failing reaches the poison queue.
            log.exception("ingestion failed on a group of %d message(s); handing them back", len(group))
            for message in group:
                message.requeue()
            return
        for message in group:
            message.ack()


def _bytes(body: Any) -> bytes:
    return body if isinstance(body, bytes) else str(body).encode("utf-8", "surrogatepass")

