"""How a message of change events reaches the broker: one transport per kind of broker.

- RabbitMQ: kombu publishes to the quorum queue `pushsync.events` and waits for the broker's
  confirm (`producers.broker` declares the topology).
- Redis: the message is appended (XADD) to the stream `pushsync.events`, which the workers read
  through one consumer group. kombu's list transport is not used for events: it pops a message
  before it records it as unacknowledged, and a worker that dies in between loses it for good. An
  XADD that returned is in the stream; the entry stays there until a worker acknowledged it after
  Redis held its events, and entries a dead worker held are claimed by the living.

Both transports retry a lost connection within the caller's `RetryPolicy`; a message sent twice
after an ambiguous failure is harmless (coalescing is idempotent by version), a message lost is not.
On a RabbitMQ cluster named by a failover list (`producers.broker`), each retry goes to the next
node: a message whose node died before its confirm came is published again, and confirmed, there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import redis
from kombu import Producer
from redis.backoff import AbstractBackoff
from redis.retry import Retry

from producers import broker, redis_urls


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying when the broker cannot be reached."""

    max_retries: int = 3
    """Attempts after the first one; then PublishError."""
    interval_start: float = 0.0
    """Seconds before the first retry."""
    interval_step: float = 0.5
    """Seconds added to the wait after each retry."""
    interval_max: float = 2.0
    """Longest wait between two retries, in seconds."""

    def as_kombu(self) -> dict[str, float]:
        """The same bounds as kombu's `ensure` and `retry_policy` arguments name them."""
        return {
            "max_retries": self.max_retries,
            "interval_start": self.interval_start,
            "interval_step": self.interval_step,
            "interval_max": self.interval_max,
        }

    def wait(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure in a row (counted from 1)."""
        return min(self.interval_start + self.interval_step * (failures - 1), self.interval_max)


class Transport(Protocol):
    """Sends whole message bodies of change events to one broker."""

    url: str
    """The broker URL with its password masked, for messages and logs."""

    def send(self, body: bytes) -> None:
        """Hand `body` to the broker; return only once the broker holds it, else raise."""

    def reset(self) -> None:
        """Forget the connection after a failure: the next send reconnects."""

    def close(self) -> None:
        """Release the connection."""


class AmqpTransport:
    """Publishes to the `pushsync.events` quorum queue with publisher confirms."""

    def __init__(self, broker_url: str, queue_name: str, *, retry: RetryPolicy, connect_timeout: float,
                 confirm_timeout: float) -> None:
        """
        broker_url: amqp://… of the broker, or a failover list of its nodes.
        queue_name: the queue to publish to.
        retry: how long to retry when the broker cannot be reached.
        connect_timeout: seconds to open a connection.
        confirm_timeout: seconds to wait for the confirm of one message.
        """
        self._connection = broker.connect(broker_url, connect_timeout=connect_timeout)
        # kombu reads the retry bounds for (re)connecting from the transport options.
        self._connection.transport_options.update(retry.as_kombu())
        self._retry = retry
        self._confirm_timeout = confirm_timeout
        self._queue_name = queue_name
        self._declare = broker.topology(self._connection, queue_name)
        self._producer: Producer | None = None
        self.url = broker.shown(broker_url)

    def send(self, body: bytes) -> None:
        if self._producer is None:
            self._producer = Producer(self._connection.default_channel, auto_declare=False)
        failures = 0

        def wait(exc: BaseException, interval: float) -> None:
            # kombu waits between rounds of reconnection only: a publish refused at once (the nack
            # of a quorum queue electing a new leader after its node died) would use up every retry
            # within milliseconds, so each retry that kombu would not wait for waits as the policy says.
            nonlocal failures
            failures += 1
            if not interval:
                time.sleep(self._retry.wait(failures))

        self._producer.publish(
            body,
            exchange="",
            routing_key=self._queue_name,
            declare=self._declare,
            content_type=broker.CONTENT_TYPE,
            content_encoding=broker.CONTENT_ENCODING,
            delivery_mode=broker.PERSISTENT,
            retry=True,
            retry_policy={**self._retry.as_kombu(), "errback": wait},
            confirm_timeout=self._confirm_timeout,
        )

    def reset(self) -> None:
        # After a failure kombu may leave the producer without a channel.
        self._producer = None
        self._connection.collect()

    def close(self) -> None:
        self._connection.release()
        self._producer = None


class _PolicyBackoff(AbstractBackoff):
    """redis-py's retry waits, as a RetryPolicy spells them."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def compute(self, failures: int) -> float:
        return self._policy.wait(max(failures, 1))

    def reset(self) -> None:
        pass


class StreamTransport:
    """Appends to the `pushsync.events` stream of a Redis broker."""

    def __init__(self, broker_url: str, queue_name: str, *, retry: RetryPolicy, connect_timeout: float) -> None:
        """
        broker_url: redis://… of the broker.
        queue_name: the stream to append to.
        retry: how long to retry when Redis cannot be reached.
        connect_timeout: seconds to connect, and to wait for Redis to answer one append.
        """
        self._client = redis_urls.client_for(
            broker_url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout,
            retry=Retry(_PolicyBackoff(retry), retry.max_retries),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self._key = broker.events_stream(queue_name)
        self.url = broker.shown(broker_url)

    def send(self, body: bytes) -> None:
        self._client.xadd(self._key, broker.stream_fields(body))

    def reset(self) -> None:
        self._client.connection_pool.disconnect()

    def close(self) -> None:
        self._client.close()


def open_transport(broker_url: str, queue_name: str, *, retry: RetryPolicy, connect_timeout: float,
                   confirm_timeout: float) -> Transport:
    """The transport for `broker_url`'s kind of broker (nothing is connected yet); ValueError when
    `broker_url` is a list that cannot name one cluster's nodes."""
    broker.checked_urls(broker_url)
    if broker.is_amqp(broker_url):
        return AmqpTransport(broker_url, queue_name, retry=retry, connect_timeout=connect_timeout,
                             confirm_timeout=confirm_timeout)
    return StreamTransport(broker_url, queue_name, retry=retry, connect_timeout=connect_timeout)
