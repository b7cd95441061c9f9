"""The gauges a worker reads from the shared state at each scrape (`collectors.SharedState`),
scraped from a real registry over a real Redis and each real broker: every value is what the
store or the broker holds at that moment."""

from __future__ import annotations

import json
import time

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from producers import Publisher, broker
from producers.events.codec import InvalidEvent
from tests.support.raw import on_a_fresh_connection
from worker.deadletter.operator import DeadLetterBrowser
from worker.deadletter.queue import DeadLetters
from worker.ingest import quarantine
from worker.observe import liveness, probes
from worker.observe.collectors import SharedState
from worker.push import pause
from worker.store import keys
from worker.store.embedded import free_port

SWEPT_SECONDS_AGO = 42.0
QUOTA = keys.Target(keys.SOURCE, "quota-spent")
REFUSED = keys.Target(keys.PROVIDER, "key-refused")
RESUMED = keys.Target(keys.SOURCE, "resumed")
"""A target whose pause is over: no longer counted."""
MESSAGES = 3
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry's exposition, by name and labels, as Prometheus reads it."""
    text = generate_latest(registry).decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request) -> str:
    """Each broker in turn, with no change event and no dead letter waiting."""
    url = request.getfixturevalue("redis_broker_url" if request.param == "redis" else "rabbitmq_url")
    _empty(url)
    return url


@on_a_fresh_connection
def _empty(url: str) -> None:
    with probes.open_broker(url) as connection:
        channel = connection.channel()
        broker.events_queue(connection)(channel).declare()
        channel.queue_purge(broker.EVENTS_QUEUE)
        channel.close()
    DeadLetterBrowser(url).purge()


def test_paused_targets_backlog_last_sweep_quarantine_and_dead_letters_are_read_at_scrape_time(
        redis_client, broker_url):
    pause.pause(redis_client, QUOTA, cause=pause.QUOTA, reason="429 TOO_MANY_DOCUMENTS_DAILY", seconds=3600)
    pause.pause(redis_client, REFUSED, cause=pause.KEY_REFUSED, reason="API key refused: 401", seconds=60)
    pause.pause(redis_client, RESUMED, cause=pause.QUOTA, reason="412 DOCUMENT_LIMIT_EXCEEDED", seconds=-1)
    swept_at = time.time() - SWEPT_SECONDS_AGO
    liveness.record_sweep(redis_client, "worker-0@host", now=swept_at)
    pipe = redis_client.pipeline()
    for n in range(2):
        quarantine.keep(pipe, quarantine.entry_for(InvalidEvent(f"bad {n}", {"n": n}), queue=broker.EVENTS_QUEUE))
    pipe.execute()
    with Publisher(broker_url) as publisher:
        for n in range(MESSAGES):
            publisher.publish_many([{"kind": "item.delete", "source": "docs", "version": 1,
                                     "documentId": f"https://example.com/{n}"}])
    DeadLetters(broker_url).send("source:docs", "b1", [json.dumps({"documentId": "x"}).encode()],
                                 RuntimeError("refused"), attempts=1)
    registry = CollectorRegistry()
    registry.register(SharedState(redis_client, broker_url))

    samples = scrape(registry)

    paused = {labels: value for (name, labels), value in samples.items() if name == "pushsync_target_paused"}
    assert paused == {(("kind", "source"), ("reason", "quota"), ("target", QUOTA.id)): 1,
                      (("kind", "provider"), ("reason", "key_refused"), ("target", REFUSED.id)): 1}
    age = samples[("pushsync_beat_last_sweep_age_seconds", ())]
    assert SWEPT_SECONDS_AGO <= age <= time.time() - swept_at
    assert samples[("pushsync_quarantine_entries", ())] == 2
    assert samples[("pushsync_events_backlog", ())] == MESSAGES
    assert samples[("pushsync_dead_letter_entries", ())] == 1


def test_the_redis_backlog_counts_messages_read_but_not_yet_acknowledged_and_none_after(
        redis_client, redis_broker_url):
    with Publisher(redis_broker_url) as publisher:
        for n in range(MESSAGES):
            publisher.publish_many([{"kind": "item.delete", "source": "docs", "version": 1,
                                     "documentId": f"https://example.com/{n}"}])
    events = redis.Redis.from_url(redis_broker_url)
    stream = broker.events_stream()
    events.xgroup_create(stream, broker.CONSUMER_GROUP, id="0")
    ((_, read),) = events.xreadgroup(broker.CONSUMER_GROUP, "consumer", {stream: ">"}, count=1)
    registry = CollectorRegistry()
    registry.register(SharedState(redis_client, redis_broker_url))
    assert scrape(registry)[("pushsync_events_backlog", ())] == MESSAGES, "a delivered message counts until acked"
    # What a consumer does once the store holds a message's events (worker/ingest/stream.py).
    ids = [entry_id for entry_id, _ in read]
    events.xack(stream, broker.CONSUMER_GROUP, *ids)
    events.xdel(stream, *ids)
    assert scrape(registry)[("pushsync_events_backlog", ())] == MESSAGES - 1


def test_a_store_that_does_not_answer_leaves_its_gauges_out_and_the_broker_still_answers(redis_broker_url):
    down = redis.Redis(port=free_port(), socket_connect_timeout=1)
    registry = CollectorRegistry()
    registry.register(SharedState(down, redis_broker_url))
    assert names(scrape(registry)) == {"pushsync_events_backlog", "pushsync_dead_letter_entries"}
    registry = CollectorRegistry()
    registry.register(SharedState(down, f"redis://127.0.0.1:{free_port()}/0"))
    assert names(scrape(registry)) == set()
