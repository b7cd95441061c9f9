"""Fixtures of the producers' tests: a unique queue per test, a raw reader of it, and sample events."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from kombu import Connection

from producers import broker

POLL_SECONDS = 0.02
SERVER_START_SECONDS = 10.0
QueueReader = Callable[[], list[dict[str, Any]]]


@pytest.fixture()
def queue_name(unique_name: str) -> str:
    """A queue of this test only, so tests never read each other's messages."""
    return f"{broker.EVENTS_QUEUE}.test-{unique_name}"


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Each real broker in turn (RabbitMQ skips where it is not reachable, fails under CI)."""
    if request.param == "redis":
        return redis_url
    return request.getfixturevalue("rabbitmq_url")


@pytest.fixture()
def read_queue(queue_name: str) -> Iterator[Callable[[str], list[dict[str, Any]]]]:
    """Read every message of the test's queue: with a plain kombu consumer, acknowledging each, on
    RabbitMQ; every entry of the events stream, then the stream itself deleted, on Redis.

    Answers each message as {"body": decoded JSON, "content_type", "content_encoding", "delivery_mode"}
    (no delivery mode on Redis). Queues declared on RabbitMQ are deleted at teardown.
    """
    used: list[str] = []

    def read(url: str) -> list[dict[str, Any]]:
        used.append(url)
        messages = []
        if not broker.is_amqp(url):
            client = redis.Redis.from_url(url)
            stream = broker.events_stream(queue_name)
            for _, fields in client.xrange(stream):
                messages.append({
                    "body": json.loads(fields[broker.BODY_FIELD]),
                    "content_type": fields[broker.CONTENT_TYPE_FIELD].decode(),
                    "content_encoding": fields[broker.CONTENT_ENCODING_FIELD].decode(),
                    "delivery_mode": None,
                })
            client.delete(stream)
            client.close()
            return messages
        with Connection(url) as connection:
            queue = broker.events_queue(connection, queue_name)(connection.default_channel)
            queue.declare()
            while (message := queue.get(no_ack=False)) is not None:
                messages.append({
                    "body": json.loads(message.body),
                    "content_type": message.content_type,
                    "content_encoding": message.content_encoding,
                    "delivery_mode": message.properties.get("delivery_mode"),
                })
                message.ack()
        return messages

    yield read
    for url in set(used):
        if broker.is_amqp(url):
            with Connection(url) as connection:
                broker.remove(connection, queue_name)


def item_upsert(number: int, **overrides: Any) -> dict[str, Any]:
    """A valid item.upsert event as a producer would write it."""
    event = {
        "schemaVersion": 1,
        "eventId": f"00000000-0000-4000-8000-{number:012d}",
        "kind": "item.upsert",
        "source": "source-a",
        "documentId": f"https://example.com/doc/{number}",
        "version": 1000 + number,
        "occurredAt": "2026-11-22T10:00:00Z",
        "item": {"metadata": {"title": f"Document {number}", "tags": ["a", "b"]}, "data": f"body {number}",
                 "fileExtension": ".txt"},
    }
    event.update(overrides)
    return event


def item_delete(number: int, **overrides: Any) -> dict[str, Any]:
    """A valid item.delete event for the same document as item_upsert(number)."""
    event = {key: value for key, value in item_upsert(number).items() if key != "item"}
    event.update({"kind": "item.delete", "deleteChildren": False, **overrides})
    return event


def serve_receiver(config: dict[str, Any], broker_url: str,
                   queue_name: str = broker.EVENTS_QUEUE) -> tuple[str, Callable[[], None]]:
    """Start the webhook receiver (served as `pushsync webhook` serves it, in a thread, on a free port) for a
    config, publishing to `queue_name` on `broker_url`; answers its base URL and the function that stops it."""
    import threading

    import uvicorn

    from producers.webhook.app import create_app
    from producers.webhook.config import parse_config
    from producers.webhook.server import uvicorn_config
    from worker.store.embedded import free_port

    port = free_port()
    parsed = parse_config(config)
    app = create_app(parsed, broker_url, queue_name=queue_name)
    server = uvicorn.Server(uvicorn_config(app, parsed, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_SECONDS
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the receiver did not start"
        time.sleep(POLL_SECONDS)

    def stop() -> None:
        server.should_exit = True
        thread.join(SERVER_START_SECONDS)

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture()
def start_receiver(queue_name: str) -> Iterator[Callable[..., str]]:
    """Start the webhook receiver (see serve_receiver) for a config and a broker URL, on the test's queue."""
    stops: list[Callable[[], None]] = []

    def start(config: dict[str, Any], broker_url: str) -> str:
        url, stop = serve_receiver(config, broker_url, queue_name)
        stops.append(stop)
        return url

    yield start
    for stop in stops:
        stop()
