"""Ingestion on a Redis broker: the workers' consumer group on the `pushsync.events` stream.

Each worker process runs one consumer of the group `pushsync.ingest` in a thread of its own. An
entry read (XREADGROUP) stays in the group's pending list, owned by that consumer, until it is
acknowledged and deleted (XACK, XDEL) once Redis holds its events (confirmed by
`PUSHSYNC_STORE_MIN_REPLICAS` replicas): a worker that dies at any
instant leaves its entries pending, never lost. A living consumer takes over (XCLAIM) the entries
that sat unacknowledged for `PUSHSYNC_EVENTS_CLAIM_SECONDS`; the stream counts each delivery,
and an entry delivered more than `DELIVERY_LIMIT` times (workers died holding it) is quarantined
whole as poison. Two things keep an outage from counting against an entry: a consumer refreshes
the entries it holds while it waits for the store, and after any reconnection a consumer waits
one claim period before it claims anything, so the holders have come back first.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from celery import bootsteps

from producers import broker, redis_urls
from worker.ingest.ingestor import (
    INGEST_GROUP_MESSAGES,
    OUTAGE_BACKOFF_SECONDS,
    OUTAGE_LOG_SECONDS,
    Ingestor,
    Received,
    Stopping,
    run_announcer,
    unwrap,
)
from worker.settings import Settings, load_settings
from worker.store.connection import connect, store_url
from worker.store.durability import Durability
from worker.store.outages import is_outage
from worker.windows.coalesce import Coalescer

log = logging.getLogger(__name__)

READ_BLOCK_MILLISECONDS = 1000
"""How long one read waits for new entries, so a stop is noticed within about a second."""
CLAIM_BATCH = INGEST_GROUP_MESSAGES
"""Entries looked at per claim round."""
IDLE_CONSUMER_SECONDS = 24 * 3600
"""A consumer that holds nothing and was silent this long is removed from the group."""
SOCKET_TIMEOUT_SECONDS = 10.0


class StreamConsumer:
    """One consumer of the events stream: read, write through the Ingestor, acknowledge; claim the dead's entries."""

    def __init__(self, broker_url: str, ingestor: Ingestor, *, claim_seconds: float,
                 stream: str = broker.EVENTS_QUEUE, name: str | None = None) -> None:
        """
        broker_url: redis://… of the broker.
        ingestor: writes decoded messages to the store.
        claim_seconds: how long an entry sits unacknowledged before a living consumer takes it.
        stream: the stream's name (only tests change it).
        name: this consumer's name in the group; unique per process start by default.
        """
        self.client = redis_urls.client_for(broker_url, socket_timeout=SOCKET_TIMEOUT_SECONDS,
                                            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS)
        self.ingestor = ingestor
        self.key = broker.events_stream(stream)
        self.claim_ms = int(claim_seconds * 1000)
        self.name = name or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._thread: threading.Thread | None = None
        self._refresher: threading.Thread | None = None
        self._held: list[bytes] = []
        """Entries being written now: refreshed as this consumer's while the write takes long."""
        self._connected_at: float | None = None
        self._next_claim = 0.0

    @property
    def stopping(self) -> threading.Event:
        return self.ingestor.stopping

    def start(self) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=self.run, name="pushsync-ingest-stream", daemon=True)
        self._refresher = threading.Thread(target=self._refresh_held, name="pushsync-ingest-refresh", daemon=True)
        self._thread.start()
        self._refresher.start()

    def stop(self, timeout: float = 15.0) -> None:
        self.stopping.set()
        for thread in (self._thread, self._refresher):
            if thread is not None:
                thread.join(timeout)

    def run(self) -> None:
        """Consume until stopped, riding out broker and store outages."""
        failures, logged = 0, 0.0
        while not self.stopping.is_set():
            try:
                self._ensure_group()
                if self._connected_at is None:
                    self._connected_at = time.monotonic()
                    log.info("consuming change events from stream %s as %s", self.key, self.name)
                failures = 0
                self.step()
            except Stopping:
                return
            except Exception as exc:  # noqa: BLE001 - the consumer must outlive every failure
                self._connected_at = None
                now = time.monotonic()
                if not is_outage(exc):
                    log.exception("stream consumer failed; going on")
                elif now - logged >= OUTAGE_LOG_SECONDS:
                    logged = now
                    log.error("broker Redis cannot be read (%s: %s); retrying", type(exc).__name__, exc)
                self.stopping.wait(OUTAGE_BACKOFF_SECONDS[min(failures, len(OUTAGE_BACKOFF_SECONDS) - 1)])
                failures += 1

    def step(self) -> int:
        """Take one group of entries (claimed ones first, when due), ingest and acknowledge it; return its size."""
        entries = self._claim() if self._claim_due() else []
        if not entries:
            entries = self._read()
        if entries:
            self._ingest(entries)
        return len(entries)

    def _ensure_group(self) -> None:
        try:
            # From the stream's start: entries appended before any worker existed are read too.
            self.client.xgroup_create(self.key, broker.CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes], int]]:
        try:
            answer = self.client.xreadgroup(broker.CONSUMER_GROUP, self.name, {self.key: ">"},
                                            count=INGEST_GROUP_MESSAGES, block=READ_BLOCK_MILLISECONDS)
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):  # the stream was deleted (FLUSHDB, lost data)
                self._ensure_group()
                return []
            raise
        return [(entry_id, fields, 1) for _, entries in answer or [] for entry_id, fields in entries if fields]

    def _claim_due(self) -> bool:
        now = time.monotonic()
        if self._connected_at is None or now - self._connected_at < self.claim_ms / 1000 or now < self._next_claim:
            return False
        self._next_claim = now + self.claim_ms / 1000 / 4
        return True

    def _claim(self) -> list[tuple[bytes, dict[bytes, bytes], int]]:
        """Take over entries that sat unacknowledged for a claim period, with their delivery counts."""
        pending = self.client.xpending_range(self.key, broker.CONSUMER_GROUP, min="-", max="+", count=CLAIM_BATCH,
                                             idle=self.claim_ms)
        if not pending:
            self._forget_idle_consumers()
            return []
        deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
        claimed = self.client.xclaim(self.key, broker.CONSUMER_GROUP, self.name, self.claim_ms, list(deliveries))
        taken = [(entry_id, fields, deliveries.get(entry_id, 0) + 1) for entry_id, fields in claimed if fields]
        gone = [entry_id for entry_id, fields in claimed if not fields]
        if gone:  # deleted entries left in the pending list: nothing to ingest
            self.client.xack(self.key, broker.CONSUMER_GROUP, *gone)
        if taken:
            log.warning("took over %d change-event message(s) that a silent worker held", len(taken))
        return taken

    def _forget_idle_consumers(self) -> None:
        for consumer in self.client.xinfo_consumers(self.key, broker.CONSUMER_GROUP):
            if consumer["pending"] == 0 and consumer["idle"] > IDLE_CONSUMER_SECONDS * 1000:
                self.client.xgroup_delconsumer(self.key, broker.CONSUMER_GROUP, consumer["name"])

    def _ingest(self, entries: list[tuple[bytes, dict[bytes, bytes], int]]) -> None:
        ids = [entry_id for entry_id, _, _ in entries]
        self._held = ids
        try:
            self.ingestor.write([_received(fields, deliveries) for _, fields, deliveries in entries])
        finally:
            self._held = []
        self._acknowledge(ids)

    def _acknowledge(self, ids: list[bytes]) -> None:
        failures = 0
        while True:
            try:
                pipe = self.client.pipeline(transaction=True)
                pipe.xack(self.key, broker.CONSUMER_GROUP, *ids)
                pipe.xdel(self.key, *ids)
                pipe.execute()
                return
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # Still pending: if this consumer stops now, another one ingests them again (harmless).
                if self.stopping.wait(OUTAGE_BACKOFF_SECONDS[min(failures, len(OUTAGE_BACKOFF_SECONDS) - 1)]):
                    raise Stopping() from exc
                failures += 1

    def _refresh_held(self) -> None:
        """Every quarter claim period, mark the entries being written as still held by this living consumer."""
        while not self.stopping.wait(self.claim_ms / 1000 / 4):
            held = self._held
            if not held:
                continue
            try:
                # JUSTID: the group counts no delivery for this.
                self.client.xclaim(self.key, broker.CONSUMER_GROUP, self.name, 0, held, justid=True)
            except Exception as exc:  # noqa: BLE001 - a refresh that fails is tried at the next period
                log.debug("could not refresh the entries being written: %s", exc)


def _received(fields: dict[bytes, bytes], deliveries: int) -> Received:
    if broker.BODY_FIELD not in fields:
        return Received(b"", undecodable="stream entry without a body field "
                        f"(fields: {', '.join(sorted(f.decode('utf-8', 'replace') for f in fields))})",
                        deliveries=deliveries)
    compression = fields.get(broker.COMPRESSION_FIELD)
    received = unwrap(fields[broker.BODY_FIELD], compression.decode("utf-8", "replace") if compression else None)
    return Received(received.body, received.undecodable, deliveries)


class StreamIngestStep(bootsteps.StartStopStep):
    """Runs this worker's consumer of the events stream, on a Redis broker only."""

    # Started once the pool's children are forked, so none of them inherits the consumer's sockets.
    requires = ("celery.worker.components:Pool",)

    def include_if(self, parent: Any) -> bool:
        return not broker.is_amqp(parent.app.conf.broker_url or "")

    def create(self, parent: Any) -> StreamConsumer:
        settings: Settings = load_settings()
        durability = Durability.of(connect(settings), settings)
        client = durability.client
        ingestor = Ingestor(client, Coalescer(client, settings), run_announcer(parent.app),
                            protected=frozenset(settings.protected_sources), durability=durability)
        return StreamConsumer(settings.broker_url or store_url(settings), ingestor,
                              claim_seconds=settings.events_claim_seconds)
