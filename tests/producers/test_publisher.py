"""The Publisher against real brokers: what a raw kombu consumer reads back is exactly what was published."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from kombu import Connection

from producers import broker
from producers import publisher as publisher_module
from producers.clock import VersionClock
from producers.errors import InvalidEventError, PublishError
from producers.events import parse_event
from producers.publisher import Publisher, RetryPolicy
from tests.producers.conftest import item_delete, item_upsert

Reader = Callable[[str], list[dict[str, Any]]]
POLL_SECONDS = 0.02
FAST_RETRY = RetryPolicy(max_retries=1, interval_step=0.05, interval_max=0.05)


def test_events_come_back_exactly_as_sent_batched_per_message(broker_url: str, queue_name: str, read_queue: Reader) -> None:
    events = [item_upsert(n) for n in range(7)]
    with Publisher(broker_url, events_per_message=3, max_delay_seconds=None, queue_name=queue_name) as publisher:
        for event in events:
            publisher.publish(event)
    assert (publisher.published_events, publisher.published_messages) == (7, 3)

    messages = read_queue(broker_url)
    assert [len(message["body"]["events"]) for message in messages] == [3, 3, 1]
    assert [event for message in messages for event in message["body"]["events"]] == [
        json.loads(parse_event(event).encoded) for event in events
    ]
    for message in messages:
        assert (message["content_type"], message["content_encoding"]) == ("application/json", "utf-8")
        if broker.is_amqp(broker_url):
            assert message["delivery_mode"] == broker.PERSISTENT


def test_a_slow_producer_s_events_leave_once_the_first_has_waited_the_delay(
        redis_url: str, queue_name: str, read_queue: Reader, monkeypatch: pytest.MonkeyPatch) -> None:
    now = 0.0
    monkeypatch.setattr(publisher_module, "monotonic", lambda: now)
    publisher = Publisher(redis_url, max_delay_seconds=0.05, queue_name=queue_name)
    for n, now in enumerate([0.0, 0.01, 0.07, 0.08]):  # the clock at each publish
        publisher.publish(item_upsert(n))
    assert [len(message["body"]["events"]) for message in read_queue(redis_url)] == [3]
    now = 0.2  # the one left has waited 0.12 s when the next comes
    publisher.publish(item_upsert(4))
    assert [len(message["body"]["events"]) for message in read_queue(redis_url)] == [2]
    publisher.close()


def test_without_a_delay_a_message_waits_to_fill(redis_url: str, queue_name: str, read_queue: Reader) -> None:
    publisher = Publisher(redis_url, max_delay_seconds=None, events_per_message=3, queue_name=queue_name)
    publisher.publish(item_upsert(1))
    time.sleep(0.06)
    publisher.publish(item_upsert(2))
    assert read_queue(redis_url) == []
    publisher.close()
    assert [len(message["body"]["events"]) for message in read_queue(redis_url)] == [2]
    with pytest.raises(ValueError, match="max_delay_seconds must not be negative"):
        Publisher(redis_url, max_delay_seconds=-1, queue_name=queue_name)


def test_a_delay_that_is_not_a_number_is_refused(redis_url: str, queue_name: str) -> None:
    # No time compares as having waited NaN seconds: taken, it would hold every message until full.
    with pytest.raises(ValueError, match="max_delay_seconds must not be negative"):
        Publisher(redis_url, max_delay_seconds=float("nan"), queue_name=queue_name)


def test_publish_many_returns_once_the_broker_has_every_event(broker_url: str, queue_name: str, read_queue: Reader) -> None:
    publisher = Publisher(broker_url, queue_name=queue_name)
    sent = publisher.publish_many([item_upsert(1), item_delete(1, version=2000)])
    assert [message["body"]["events"] for message in read_queue(broker_url)] == [[json.loads(e.encoded) for e in sent]]
    publisher.close()


def test_a_message_never_grows_past_its_byte_limit(redis_url: str, queue_name: str, read_queue: Reader) -> None:
    big = "x" * 4000
    with Publisher(redis_url, max_message_bytes=10_000, queue_name=queue_name) as publisher:
        for n in range(5):
            publisher.publish(item_upsert(n, item={"data": big}))
    messages = read_queue(redis_url)
    assert [len(message["body"]["events"]) for message in messages] == [2, 2, 1]


def test_missing_ids_time_and_version_are_filled_from_a_clock_that_only_goes_forward(
    redis_url: str, queue_name: str, read_queue: Reader,
) -> None:
    clock = VersionClock(now_ns=lambda: 1_000_000_000)  # a clock stuck in time still moves versions forward
    bare = {"kind": "item.delete", "source": "source-a", "documentId": "https://example.com/doc/1"}
    with Publisher(redis_url, clock=clock, queue_name=queue_name) as publisher:
        first, second = publisher.publish(bare), publisher.publish(bare)
    assert (first.version, second.version) == (1_000_000, 1_000_001)
    assert first.event_id != second.event_id
    [message] = read_queue(redis_url)
    assert [event["version"] for event in message["body"]["events"]] == [1_000_000, 1_000_001]


def test_an_invalid_event_is_refused_before_anything_is_sent(redis_url: str, queue_name: str, read_queue: Reader) -> None:
    with Publisher(redis_url, queue_name=queue_name) as publisher:
        with pytest.raises(InvalidEventError, match="documentId: expected a URI"):
            publisher.publish(item_upsert(1, documentId="doc-1"))
    assert read_queue(redis_url) == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("scheme", ["redis://127.0.0.1:{port}/0", "amqp://guest:secret-word@127.0.0.1:{port}//"])
def test_an_unreachable_broker_raises_publish_error_holding_the_events(scheme: str) -> None:
    publisher = Publisher(scheme.format(port=_closed_port()), retry=FAST_RETRY, events_per_message=10)
    publisher.publish(item_upsert(1))
    publisher.publish(item_upsert(2))
    with pytest.raises(PublishError) as caught:
        publisher.flush()
    error = caught.value
    assert error.not_published == 2 and [event.version for event in error.events] == [1001, 1002]
    assert "secret-word" not in str(error)
    assert publisher.published_events == 0
    with pytest.raises(PublishError):  # the failed events were handed back, not kept for a retry behind the caller's back
        publisher.publish_many([item_upsert(3)])
    publisher.close()


def test_rabbitmq_topology_is_a_quorum_queue_with_a_delivery_limit_and_a_poison_queue(
    rabbitmq_url: str, queue_name: str, read_queue: Reader,
) -> None:
    with Publisher(rabbitmq_url, queue_name=queue_name) as publisher:
        publisher.publish(item_upsert(1))
    with Connection(rabbitmq_url) as connection:
        channel = connection.default_channel
        events_queue = broker.events_queue(connection, queue_name)
        assert events_queue.queue_arguments["x-queue-type"] == "quorum"
        assert events_queue.queue_arguments["x-delivery-limit"] == broker.DELIVERY_LIMIT
        # Redeclaring with the same arguments succeeds only if the broker holds exactly these.
        _, count, _ = events_queue(channel).queue_declare(passive=False)
        assert count == 1
        # A message rejected without requeue is dead-lettered to the poison queue, not lost.
        message = events_queue(channel).get(no_ack=False)
        message.reject(requeue=False)
        poison = broker.poison_queue(queue_name)(channel)
        dead = _poll(lambda: poison.get(no_ack=False))
        assert json.loads(dead.body)["events"][0]["documentId"] == "https://example.com/doc/1"
        dead.ack()
    assert read_queue(rabbitmq_url) == []


def _poll(get: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Call `get` until it answers something (dead-lettering is asynchronous in RabbitMQ)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get()
        if found is not None:
            return found
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"nothing arrived within {timeout} s")


def test_a_full_run_is_begin_numbered_events_end_and_refuses_what_it_cannot_carry(
    broker_url: str, queue_name: str, read_queue: Reader,
) -> None:
    with Publisher(broker_url, queue_name=queue_name) as publisher:
        with publisher.full_run(source="docs", run_id="run-7", queueDelay=0) as run:
            for n in range(3):
                run.publish(item_upsert(n, source="docs"))
            with pytest.raises(InvalidEventError, match="carries only item.upsert events"):
                run.publish(item_delete(1, source="docs"))
            with pytest.raises(InvalidEventError, match="carries only item.upsert events"):
                run.publish(item_upsert(9, source="elsewhere"))
    events = [event for message in read_queue(broker_url) for event in message["body"]["events"]]
    assert [e["kind"] for e in events] == ["rebuild.begin", "item.upsert", "item.upsert", "item.upsert", "rebuild.end"]
    assert events[0]["run"] == "run-7" and events[0]["queueDelay"] == 0 and "version" not in events[0]
    assert [e["rebuild"] for e in events[1:4]] == [{"run": "run-7", "seq": n} for n in range(3)]
    assert (events[-1]["events"], events[-1]["complete"]) == (3, True)


def test_a_full_run_left_by_an_exception_is_ended_as_abandoned(redis_url: str, queue_name: str,
                                                                read_queue: Reader) -> None:
    with Publisher(redis_url, queue_name=queue_name) as publisher, pytest.raises(KeyError):
        with publisher.full_run(provider="ldap") as run:
            run.publish({"kind": "identity.upsert", "provider": "ldap", "version": 1,
                         "identity": {"name": "team", "type": "GROUP"}})
            raise KeyError("export")
    events = [event for message in read_queue(redis_url) for event in message["body"]["events"]]
    assert events[-1]["kind"] == "rebuild.end" and events[-1]["complete"] is False and events[-1]["events"] == 1
