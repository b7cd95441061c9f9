"""Operating the dead-letter queue: browse, show, replay and purge its entries (`pushsync dlq`).

Replaying publishes an entry's events back to `pushsync.events` with their original versions, so
whatever has been superseded since is skipped; the entry is acknowledged away only after the
broker confirmed the replayed events, so an interrupted replay loses nothing. A full browse also
repairs the store's index of the queue (see `worker.deadletter.queue`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from kombu import Connection, Message

from producers import Publisher
from worker.deadletter.queue import (
    DEAD_LETTER_QUEUE,
    DeadLetter,
    DeadLetters,
    best_effort,
    dead_letter_queue,
    index_value,
)
from worker.store import keys

BROWSE_LOCK_SECONDS = 60.0
"""Longest one browse (list, replay, purge) may hold the queue to itself, and longest another waits."""
REINDEX_MARGIN_SECONDS = 60.0
"""An indexed entry a full browse did not find is dropped only if it failed this long before the
browse: a younger one may have reached the queue just after the browse took it."""


class BrowseBusy(Exception):
    """Another browse kept the dead-letter queue longer than `BROWSE_LOCK_SECONDS`."""


class DeadLetterBrowser(DeadLetters):
    """The dead-letter queue as an operator sees it: every entry can be read, replayed or purged."""

    @contextmanager
    def _one_browser(self) -> Iterator[None]:
        """Run the block while no other browse runs (any process: the console, a `pushsync dlq`):
        a browse takes every entry off the queue for a moment, so two at once would each see part."""
        if self.store is None:
            yield
            return
        lock = self.store.lock(keys.DEAD_LETTER_BROWSE_LOCK, timeout=BROWSE_LOCK_SECONDS,
                               blocking_timeout=BROWSE_LOCK_SECONDS)
        if not lock.acquire():
            raise BrowseBusy(f"another browse of the dead-letter queue held it for {BROWSE_LOCK_SECONDS:g}s")
        try:
            yield
        finally:
            with best_effort("release the dead-letter browse lock"):
                lock.release()

    def _browse(self, connection: Connection) -> list[tuple[Message, DeadLetter]]:
        """Take every entry off the queue unacknowledged; the caller acks or requeues each."""
        queue = dead_letter_queue()(connection.default_channel)
        queue.declare()
        taken = []
        while (message := queue.get(no_ack=False)) is not None:
            taken.append((message, DeadLetter.from_json(message.body)))
        return taken

    def list(self, *, target: str | None = None, error: str | None = None) -> list[DeadLetter]:
        """Every entry, optionally only those of `target` or whose error class or code is `error`."""
        started = time.time()
        with self._one_browser(), self._connect() as connection:
            if connection.transport.driver_type == "redis":
                entries = _peek_redis(connection)
            else:
                taken = self._browse(connection)
                for message, _ in taken:
                    message.requeue()
                entries = [entry for _, entry in taken]
        self._reindex(entries, started)
        return [entry for entry in entries if _matches(entry, target, error)]

    def show(self, entry_id: str) -> DeadLetter | None:
        return next((entry for entry in self.list() if entry.id == entry_id), None)

    def replay(self, *, target: str | None = None, entry_ids: Collection[str] | None = None,
               error: str | None = None) -> list[DeadLetter]:
        """Publish matching entries' events back to `pushsync.events`; drop each entry once confirmed.

        target: only entries of this target; entry_ids: only the entries with these ids (None: any);
        error: only entries whose error class or errorCode is this.
        """
        replayed = []
        with self._one_browser(), self._connect() as connection, Publisher(self.broker_url) as publisher:
            taken = self._browse(connection)
            try:
                for message, entry in taken:
                    chosen = entry_ids is None or entry.id in entry_ids
                    if not chosen or not _matches(entry, target, error):
                        continue
                    publisher.publish_many(entry.events)
                    message.ack()
                    replayed.append(entry)
            finally:
                for message, _ in taken:
                    if not message.acknowledged:
                        message.requeue()
                self._unindex([entry.id for entry in replayed])
        return replayed

    def purge(self, *, target: str | None = None, entry_ids: Collection[str] | None = None,
              error: str | None = None) -> int:
        """Delete the entries of `target` (any, when None) whose error class or errorCode is `error`
        (any, when None) for good; entry_ids: only the entries with these ids (None: any). Returns how many."""
        purged = []
        with self._one_browser(), self._connect() as connection:
            for message, entry in self._browse(connection):
                if (entry_ids is None or entry.id in entry_ids) and _matches(entry, target, error):
                    message.ack()
                    purged.append(entry.id)
                else:
                    message.requeue()
        self._unindex(purged)
        return len(purged)

    def _unindex(self, entry_ids: list[str]) -> None:
        if self.store is not None and entry_ids:
            with best_effort("drop dead-letter entries from the index"):
                self.store.hdel(keys.DEAD_LETTER_INDEX, *entry_ids)

    def _reindex(self, entries: list[DeadLetter], browsed_at: float) -> None:
        """Make the index hold exactly the entries a full browse found (see REINDEX_MARGIN_SECONDS)."""
        if self.store is None:
            return
        with best_effort("re-index the dead-letter queue"):
            found = {entry.id: index_value(entry) for entry in entries}
            gone = [entry_id for entry_id, value in self.store.hscan_iter(keys.DEAD_LETTER_INDEX)
                    if entry_id.decode() not in found
                    and json.loads(value)["at"] < browsed_at - REINDEX_MARGIN_SECONDS]
            pipe = self.store.pipeline(transaction=False)
            if found:
                pipe.hset(keys.DEAD_LETTER_INDEX, mapping=found)
            if gone:
                pipe.hdel(keys.DEAD_LETTER_INDEX, *gone)
            pipe.execute()


def _peek_redis(connection: Connection) -> list[DeadLetter]:
    """Every entry of the queue on a Redis broker, oldest first, read where it lies (LRANGE).

    Taking entries off to read them is how a broker is browsed, but kombu's Redis transport pops
    a message before it records it as unacknowledged: a browse killed between the two loses that
    entry. RabbitMQ holds what it hands out, so browsing it there is safe."""
    # The transport's own client: it reaches a Sentinel's primary as kombu does.
    with connection.default_channel.conn_or_acquire() as client:
        # kombu pushes on the left and takes from the right: the oldest entry is the last one.
        raw = client.lrange(DEAD_LETTER_QUEUE, 0, -1)
    entries = []
    for item in reversed(raw):
        envelope = json.loads(item)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        entries.append(DeadLetter.from_json(body))
    return entries


def _matches(entry: DeadLetter, target: str | None, error: str | None) -> bool:
    if target is not None and entry.target not in (target, f"source:{target}", f"provider:{target}"):
        return False
    return error is None or error in (entry.error.error_class, entry.error.error_code)
