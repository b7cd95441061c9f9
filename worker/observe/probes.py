"""Short-timeout checks that the store and the broker answer, with one-line reasons when not.

`pushsync status` and `pushsync health` must answer quickly even when a service is down, so
they use their own connections with short timeouts instead of the workers' patient ones.
URLs are shown without their passwords.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import redis
from kombu import Connection
from redis.sentinel import MasterNotFoundError

from producers import broker, redis_urls
from worker.store.outages import STORE_ERRORS

STORE_TIMEOUT_SECONDS = 2.0
"""Seconds to connect to the store and for each answer."""
BROKER_TIMEOUT_SECONDS = 2.0
"""Seconds to open the broker connection."""


class Unreachable(Exception):
    """A service did not answer; the message is one line naming it (never its password)."""


def shown(url: str) -> str:
    """`url` (or a broker's failover list) as it may be printed: every password masked."""
    return broker.shown(url)


def store_client(url: str) -> redis_urls.StoreClient:
    """A client of the store at `url` that gives up after `STORE_TIMEOUT_SECONDS`."""
    return redis_urls.client_for(url, socket_timeout=STORE_TIMEOUT_SECONDS,
                                 socket_connect_timeout=STORE_TIMEOUT_SECONDS)


@contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Turn a Redis error inside the block into `Unreachable` naming the store at `url`."""
    try:
        yield
    except MasterNotFoundError as exc:
        # redis-py's message goes on with the repr of every Sentinel client it asked.
        reason = str(exc).split(" : ", 1)[0]
        raise Unreachable(f"Redis (store) at {shown(url)} does not answer: {reason} (no Sentinel answers, "
                          "or none knows a primary of that name)") from None
    except STORE_ERRORS as exc:
        raise Unreachable(f"Redis (store) at {shown(url)} does not answer: {exc}") from None


def check_store(client: redis_urls.StoreClient, url: str) -> None:
    """Raise `Unreachable` unless the store at `url` answers a PING."""
    with store_errors(url):
        client.ping()


def probe_store(url: str) -> None:
    """Raise `Unreachable` unless the store at `url` answers a PING, on a connection of its own."""
    client = store_client(url)
    try:
        check_store(client, url)
    finally:
        client.close()


@contextmanager
def open_broker(url: str) -> Iterator[Connection]:
    """An open connection to the broker at `url`; `Unreachable` if it cannot be had at once or is lost."""
    with ExitStack() as stack:
        try:
            connection = stack.enter_context(broker.opened(url, connect_timeout=BROKER_TIMEOUT_SECONDS))
        # Whatever stops the connection from opening (refused, wrong vhost, bad login) is the answer.
        except Exception as exc:
            raise Unreachable(f"broker at {shown(url)} does not answer: {exc}") from None
        try:
            yield connection
        except connection.connection_errors as exc:
            raise Unreachable(f"broker at {shown(url)} stopped answering: {exc}") from None


def queue_depths(connection: Connection, names: list[str]) -> dict[str, int]:
    """Messages waiting in each named queue; a queue that does not exist (yet) holds none."""
    depths = {}
    on_redis = connection.transport.driver_type == "redis"
    for name in names:
        if on_redis and name == broker.EVENTS_QUEUE:
            # Change events are a stream there: its entries are those not yet acknowledged.
            # The transport's own client: it reaches a Sentinel's primary as kombu does.
            with connection.default_channel.conn_or_acquire() as client:
                try:
                    depths[name] = client.xlen(broker.events_stream(name))
                except redis.ResponseError:
                    depths[name] = 0
            continue
        # RabbitMQ closes a channel on a passive declare of a missing queue: one channel per queue.
        channel = connection.channel()
        try:
            _, depths[name], _ = channel.queue_declare(queue=name, passive=True)
        except connection.channel_errors:
            depths[name] = 0
        finally:
            try:
                channel.close()
            except connection.channel_errors + connection.connection_errors:
                pass
    return depths
