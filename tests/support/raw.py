"""Publish raw message bodies, with any headers, to the change-event transport of either broker.

What the producer library never sends (bodies that are not JSON, kombu compression headers,
stream entries without a body) is what ingestion must survive: these helpers send it as a
third-party publisher would.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import redis
import tenacity
from kombu import Connection, Producer

from producers import broker


def publish_raw(url: str, bodies: Iterable[bytes], *, headers: Mapping[str, str] | None = None,
                content_type: str = broker.CONTENT_TYPE, content_encoding: str = "binary",
                queue: str = broker.EVENTS_QUEUE) -> None:
    """Append each body to the events stream (Redis) or publish it to the events queue (RabbitMQ).

    headers: kombu message headers (RabbitMQ) or extra stream entry fields (Redis), e.g. compression.
    """
    headers = dict(headers or {})
    if broker.is_amqp(url):
        with Connection(url, transport_options={"confirm_publish": True}) as connection:
            producer = Producer(connection.default_channel)
            declare = broker.topology(connection, queue)
            for body in bodies:
                producer.publish(body, routing_key=queue, declare=declare, content_type=content_type,
                                 content_encoding=content_encoding, headers=headers, delivery_mode=broker.PERSISTENT)
        return
    client = redis.Redis.from_url(url)
    try:
        for body in bodies:
            fields = {broker.BODY_FIELD: body, broker.CONTENT_TYPE_FIELD: content_type.encode(), **{
                key.encode(): value.encode() for key, value in headers.items()}}
            client.xadd(broker.events_stream(queue), fields)
    finally:
        client.close()


def append_entry(url: str, fields: Mapping[bytes, bytes], queue: str = broker.EVENTS_QUEUE) -> None:
    """Append one stream entry with exactly `fields` (Redis brokers only)."""
    client = redis.Redis.from_url(url)
    try:
        client.xadd(broker.events_stream(queue), dict(fields))
    finally:
        client.close()


def drain(url: str, queue: str = broker.EVENTS_QUEUE) -> list[bytes]:
    """Take every message body waiting on the events transport, in order, removing them."""
    if broker.is_amqp(url):
        bodies = []
        with Connection(url) as connection:
            declared = broker.events_queue(connection, queue)(connection.default_channel)
            declared.declare()
            while (message := declared.get(no_ack=False)) is not None:
                bodies.append(message.body)
                message.ack()
        return bodies
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrange(broker.events_stream(queue))
        if entries:
            client.xdel(broker.events_stream(queue), *(entry_id for entry_id, _ in entries))
        return [fields[broker.BODY_FIELD] for _, fields in entries]
    finally:
        client.close()


SETUP_ATTEMPTS = 3

on_a_fresh_connection = tenacity.retry(retry=tenacity.retry_if_exception_type(OSError),
                                       stop=tenacity.stop_after_attempt(SETUP_ATTEMPTS), wait=tenacity.wait_fixed(0.5),
                                       reraise=True)
"""Retry a test's broker set-up on a new connection: the shared RabbitMQ, under the whole suite's
load, once reset one (a CI run lost a test to it), and the set-up is not what the test is about."""


@on_a_fresh_connection
def purge_rabbit(url: str) -> None:
    """Declare the events queues of a RabbitMQ broker and empty them."""
    with Connection(url) as connection:
        for queue in broker.topology(connection):
            queue(connection.default_channel).declare()
            queue(connection.default_channel).purge()
