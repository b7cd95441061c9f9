"""The demo's own space on a Redis or RabbitMQ the user gives it: taken only when it is free,
emptied after, so a demo never mixes with a deployment's data and every run starts clean.

A demo on a Redis database marks it with an owner key (kept) and a lease (renewed while it runs).
A database is the demo's to take when it is empty, or when it holds an earlier demo's leftovers
whose lease has lapsed (that demo was killed before it could clean up). Anything else is refused:
a demo worker on a deployment's database would take its events and push them to the emulator.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis

from producers import broker
from worker.observe import probes
from worker.store import keys

OWNER_KEY = "pushsync-demo:owner"
"""Who holds the database (host, pid, token); outlives a killed demo to mark its leftovers."""
LEASE_KEY = "pushsync-demo:lease"
LEASE_SECONDS = 120
"""How long a demo that stopped renewing keeps its database (longer than its children take to
stop): beyond it, the next demo may take the leftovers."""
LEFTOVERS_MAX_KEYS = 10_000
"""More keys than a demo ever leaves: a database that large is someone's data, not leftovers."""
TARGET_MARKERS = (b"{source:", b"{provider:")
"""How a per-target key names its target (worker/store/keys.py): `pushsync:{source:ID}:...`."""


class SpaceTaken(Exception):
    """The database or vhost is not free for a demo; the message says why and what to give instead."""


class DemoDatabase:
    """A Redis database the demo holds; `renew()` while it runs, `release()` empties it."""

    def __init__(self, url: str, token: str, targets: Iterable[str]) -> None:
        """
        url: the Redis URL the user gave (REDIS_URL or a Redis BROKER_URL).
        token: this demo run's own (one for all its databases, so one spelled twice is the same).
        targets: the refs of the demo's targets (`source:ID`); leftovers may name no other.
        """
        self.url = url
        self.token = token
        self._targets = {target.encode() for target in targets}
        self._client = probes.store_client(url)
        self._held = False

    def take(self) -> None:
        """Hold the database, or raise `SpaceTaken` (`probes.Unreachable` when Redis is down)."""
        try:
            with probes.store_errors(self.url):
                self._take()
        except redis.ResponseError as exc:
            raise SpaceTaken(f"the demo cannot use {probes.shown(self.url)}: {exc} (its Redis user needs SET, "
                             "DBSIZE, SCAN and FLUSHDB on that database)") from None

    def _take(self) -> None:
        client = self._client
        if not client.set(LEASE_KEY, self.token, nx=True, ex=LEASE_SECONDS):
            holder = (client.get(LEASE_KEY) or b"?").decode()
            if holder == self.token:
                return  # the same database, spelled another way: already ours
            raise SpaceTaken(f"another demo ({holder}) is using {probes.shown(self.url)}: "
                             "wait for it, or give another database")
        try:
            size = client.dbsize() - 1
            if size and not (client.exists(OWNER_KEY) and self._only_leftovers(size)):
                raise SpaceTaken(f"the demo needs an empty database of its own, which it empties after: "
                                 f"{probes.shown(self.url)} holds {size} key(s) that are not a demo's "
                                 "(give another, e.g. REDIS_URL=redis://HOST:6379/9)")
            client.flushdb()
            client.set(LEASE_KEY, self.token, ex=LEASE_SECONDS)
            client.set(OWNER_KEY, self.token)
            self._held = True
        except BaseException:
            client.delete(LEASE_KEY)
            raise

    def _only_leftovers(self, size: int) -> bool:
        """Whether the database holds nothing but what a killed demo leaves: no key of a target
        other than the demo's (a deployment's data always has its own sources)."""
        if size > LEFTOVERS_MAX_KEYS:
            return False
        for key in self._client.scan_iter(count=1000):
            for marker in TARGET_MARKERS:
                at = key.find(marker)
                if at >= 0 and key[at + 1:key.index(b"}", at)] not in self._targets:
                    return False
        members = self._client.smembers(keys.TARGETS) if self._client.type(keys.TARGETS) == b"set" else set()
        return members <= self._targets

    def renew(self) -> None:
        """Extend the lease (call more often than every `LEASE_SECONDS`)."""
        if self._held:
            self._client.set(LEASE_KEY, self.token, ex=LEASE_SECONDS)

    def release(self) -> None:
        """Empty the database, if it is still this demo's."""
        try:
            if self._held and self._client.get(OWNER_KEY) == self.token.encode():
                self._client.flushdb()
        except redis.RedisError:
            pass  # Redis went away: the next demo takes the leftovers once the lease lapses.
        finally:
            self._client.close()


def check_rabbitmq(url: str) -> None:
    """Refuse a RabbitMQ vhost where pushsync workers consume, or where pushsync's queues hold
    messages (`SpaceTaken`): the demo's worker would share a deployment's queues, both ways."""
    with probes.open_broker(url) as connection:
        for queue in (broker.EVENTS_QUEUE, broker.TASKS_QUEUE):
            channel = connection.channel()
            try:
                _, messages, consumers = channel.queue_declare(queue, passive=True)
            except connection.channel_errors:
                continue  # no such queue: no pushsync ran there
            finally:
                if channel.is_open:
                    channel.close()
            if consumers or messages:
                raise SpaceTaken(f"the demo needs a vhost of its own: {probes.shown(url)} has {queue} with "
                                 f"{messages} message(s) and {consumers} consumer(s)")


@contextmanager
def demo_space(redis_url: str | None, broker_url: str | None, targets: Iterable[str]) -> Iterator[list[DemoDatabase]]:
    """Hold the store's database and a Redis broker's (one token for both, so the same database
    named twice is held once) for the block; empty them after. A RabbitMQ broker is checked."""
    token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    urls = [url for url in (redis_url, broker_url) if url is not None and _is_redis(url)]
    held: list[DemoDatabase] = []
    try:
        for url in urls:
            database = DemoDatabase(url, token, targets)
            held.append(database)
            database.take()
        if broker_url is not None and not _is_redis(broker_url):
            check_rabbitmq(broker_url)
        yield held
    finally:
        for database in held:
            database.release()


def _is_redis(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("redis", "rediss", "unix")
