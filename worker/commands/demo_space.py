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
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from producers import broker
from worker.observe import probes

OWNER_KEY = "pushsync-demo:owner"
"""Who holds the database (host, pid, token); outlives a killed demo to mark its leftovers."""
LEASE_KEY = "pushsync-demo:lease"
LEASE_SECONDS = 30
"""How long a demo that stopped renewing keeps its database: beyond it, the next demo takes it."""


class SpaceTaken(Exception):
    """The database or vhost is not free for a demo; the message says why and what to give instead."""


class DemoDatabase:
    """A Redis database the demo holds; `renew()` while it runs, `release()` empties it."""

    def __init__(self, url: str) -> None:
        """url: the Redis URL the user gave (REDIS_URL or a Redis BROKER_URL)."""
        self.url = url
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._client = probes.store_client(url)

    def take(self) -> None:
        """Hold the database, or raise `SpaceTaken` (`probes.Unreachable` when Redis is down)."""
        with probes.store_errors(self.url):
            if self._client.set(LEASE_KEY, self.token, nx=True, ex=LEASE_SECONDS):
                owner = self._client.get(OWNER_KEY)
                size = self._client.dbsize()
                if owner is not None or size == 1:
                    # Empty but for our lease, or an abandoned demo's: ours, after a clean slate.
                    self._client.flushdb()
                    self._client.set(LEASE_KEY, self.token, ex=LEASE_SECONDS)
                    self._client.set(OWNER_KEY, self.token)
                    return
                self._client.delete(LEASE_KEY)
                raise SpaceTaken(f"the demo needs an empty database of its own, which it empties after: "
                                 f"{probes.shown(self.url)} holds {size - 1} key(s) that are not a demo's "
                                 "(give another, e.g. REDIS_URL=redis://HOST:6379/9)")
            holder = self._client.get(LEASE_KEY)
        raise SpaceTaken(f"another demo ({(holder or b'?').decode()}) is using {probes.shown(self.url)}: "
                         "wait for it, or give another database")

    def renew(self) -> None:
        """Extend the lease (call more often than every `LEASE_SECONDS`)."""
        self._client.set(LEASE_KEY, self.token, ex=LEASE_SECONDS)

    def release(self) -> None:
        """Empty the database, if it is still this demo's."""
        try:
            if self._client.get(OWNER_KEY) == self.token.encode():
                self._client.flushdb()
        except redis.RedisError:
            pass  # Redis went away: the next demo takes the leftovers once the lease lapses.
        finally:
            self._client.close()


def check_rabbitmq(url: str) -> None:
    """Refuse a RabbitMQ vhost where workers already consume change events (`SpaceTaken`): the
    demo's worker would share a deployment's queues, in both directions."""
    with probes.open_broker(url) as connection:
        channel = connection.channel()
        try:
            _, _, consumers = channel.queue_declare(broker.EVENTS_QUEUE, passive=True)
        except connection.channel_errors:
            return  # no such queue: no pushsync ever ran there
        finally:
            if channel.is_open:
                channel.close()
    if consumers:
        raise SpaceTaken(f"the demo needs a vhost of its own: {probes.shown(url)} has {consumers} pushsync "
                         f"worker(s) consuming {broker.EVENTS_QUEUE}")


@contextmanager
def demo_space(redis_url: str, broker_url: str | None) -> Iterator[list[DemoDatabase]]:
    """Hold the store's database (and a Redis broker's, when apart) for the block; empty them after."""
    held: list[DemoDatabase] = []
    try:
        for url in dict.fromkeys([redis_url, *([broker_url] if broker_url and _is_redis(broker_url) else [])]):
            database = DemoDatabase(url)
            database.take()
            held.append(database)
        if broker_url and not _is_redis(broker_url):
            check_rabbitmq(broker_url)
        yield held
    finally:
        for database in held:
            database.release()


def _is_redis(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("redis", "rediss", "unix")
