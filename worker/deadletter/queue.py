"""The dead-letter queue: pushes that cannot succeed, kept on the broker with their context.

This module is what the push stage writes with; `worker.deadletter.operator` is what operators
read, replay and purge with.

An entry is a JSON message on the durable queue `pushsync.dead_letter`: the target, the batch,
the events to replay (as they were ingested, with their versions), the error (class, HTTP
status, errorCode, message), attempts, first and last failure times, the worker host and the
`fileId`s used. Large batches are split into entries of at most `ENTRY_MAX_EVENTS` events and
`ENTRY_MAX_BYTES` bytes. No secret is written: the error's message is redacted (`worker.redaction`).

Operators browse, replay, purge and export entries (`pushsync dlq`). Replaying publishes an
entry's events back to `pushsync.events` with their original versions, so whatever has been
superseded since is skipped; the entry is acknowledged away only after the broker confirmed
the replayed events, so an interrupted replay loses nothing.

The queue is the truth; an index in the store (`keys.DEAD_LETTER_INDEX`, entry id -> target and
event count) lets `pushsync status` count entries per target without taking the queue apart. It
is written after the broker confirmed an entry and cleared after an entry was acknowledged away,
by entry id, so repeating either is harmless; a crash between the two is repaired by the next
full browse (`pushsync dlq list`).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from kombu import Connection, Exchange, Producer, Queue
from kombu.pools import connections

from producers import broker
from worker import hooks
from worker.pushapi.errors import StatusError
from worker.redaction import redact
from worker.store import keys, recent
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)

DEAD_LETTER_QUEUE = "pushsync.dead_letter"
ENTRY_MAX_EVENTS = 1000
ENTRY_MAX_BYTES = 8 * 1024 * 1024
"""Entries stay well under broker message limits (RabbitMQ's default maximum is 128 MiB)."""


def dead_letter_queue() -> Queue:
    """A classic durable queue: browsing redelivers entries, which must not count toward a limit."""
    return Queue(DEAD_LETTER_QUEUE, exchange=Exchange(""), routing_key=DEAD_LETTER_QUEUE, durable=True)


@dataclass
class Failure:
    """Why a push failed, without any secret."""

    error_class: str
    message: str
    status: int | None = None
    error_code: str = ""

    @classmethod
    def from_error(cls, error: BaseException) -> "Failure":
        message = redact(str(error) or repr(error))
        if isinstance(error, StatusError):
            return cls(type(error).__name__, message, error.status, error.error_code)
        return cls(type(error).__name__, message)

    def describe(self) -> str:
        """One line: class, HTTP status and errorCode where known, then the message."""
        head = " ".join(str(part) for part in (self.error_class, self.status, self.error_code) if part)
        return f"{head}: {self.message}"


@dataclass
class DeadLetter:
    """One dead-letter entry."""

    target: str
    batch_id: str
    events: list[Any]
    error: Failure
    attempts: int
    first_failure: float
    last_failure: float
    file_ids: list[str] = field(default_factory=list)
    host: str = field(default_factory=socket.gethostname)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    part: int = 1
    """Position of this entry among the entries of one failed batch."""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes | str) -> "DeadLetter":
        data = json.loads(body)
        data["error"] = Failure(**data["error"])
        return cls(**data)


def split_events(events: Iterable[bytes]) -> Iterator[list[Any]]:
    """Group encoded events into lists that fit one entry each."""
    group: list[Any] = []
    size = 0
    for encoded in events:
        if group and (len(group) >= ENTRY_MAX_EVENTS or size + len(encoded) > ENTRY_MAX_BYTES):
            yield group
            group, size = [], 0
        group.append(json.loads(encoded))
        size += len(encoded)
    if group:
        yield group


class DeadLetters:
    """Writes the dead-letter queue on one broker, and counts what it holds."""

    def __init__(self, broker_url: str, store: redis.Redis | None = None) -> None:
        """
        broker_url: the broker the workers use (Redis or RabbitMQ).
        store: the coalescing store, for the per-target index and last errors (None: neither is kept).
        """
        self.broker_url = broker_url
        self.store = store
        self._connection = broker.connect(broker_url)

    def _connect(self) -> Connection:
        # Pooled: a batch whose items are rejected one by one sends one entry per item.
        return connections[self._connection].acquire(block=True)

    def send(self, target: str, batch_id: str, events: Iterable[bytes], error: BaseException, *,
             attempts: int, first_failure: float | None = None, file_ids: list[str] | None = None) -> int:
        """Write the failed events as entries, streamed; returns how many events, once the broker confirmed all."""
        now = time.time()
        sent = 0
        failure = Failure.from_error(error)
        written: dict[str, str] = {}
        with self._connect() as connection:
            producer = Producer(connection.default_channel)
            for part, group in enumerate(split_events(events), start=1):
                entry = DeadLetter(target=target, batch_id=batch_id, events=group, error=failure,
                              attempts=attempts, first_failure=first_failure or now, last_failure=now,
                              file_ids=list(file_ids or []), part=part)
                producer.publish(entry.to_json(), routing_key=DEAD_LETTER_QUEUE, declare=[dead_letter_queue()],
                                 content_type=broker.CONTENT_TYPE, content_encoding=broker.CONTENT_ENCODING,
                                 delivery_mode=broker.PERSISTENT, retry=True)
                written[entry.id] = index_value(entry)
                sent += len(group)
        hooks.emit("after_dead_letter", keys.Target.from_ref(target), sent)
        if self.store is not None:
            with best_effort("index the dead-letter entries of " + target):
                if written:
                    self.store.hset(keys.DEAD_LETTER_INDEX, mapping=written)
                recent.failed(self.store, keys.Target.from_ref(target), failure.describe(), now)
        return sent

    def depth(self) -> int:
        """How many entries the queue holds."""
        with self._connect() as connection:
            _, count, _ = dead_letter_queue()(connection.default_channel).queue_declare()
            return count


@dataclass(frozen=True)
class Held:
    """What the dead-letter queue holds for one target, as indexed."""

    entries: int = 0
    events: int = 0


def held_per_target(store: redis.Redis) -> dict[str, Held]:
    """Target ref -> its entries and events in the dead-letter queue, from the index."""
    held: dict[str, Held] = {}
    for _, value in store.hscan_iter(keys.DEAD_LETTER_INDEX):
        item = json.loads(value)
        before = held.get(item["target"], Held())
        held[item["target"]] = Held(before.entries + 1, before.events + item["events"])
    return held


def index_value(entry: DeadLetter) -> str:
    return json.dumps({"target": entry.target, "events": len(entry.events), "at": entry.last_failure})


@contextmanager
def best_effort(what: str) -> Iterator[None]:
    """Run a store write that the queue does not depend on: a failure is logged, not raised."""
    try:
        yield
    except STORE_ERRORS as exc:
        log.warning("could not %s (the next `pushsync dlq list` repairs it): %s", what, exc)
