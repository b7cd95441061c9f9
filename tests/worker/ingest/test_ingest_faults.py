"""Ingestion under faults: a SIGKILLed worker, a Redis that refuses writes, a protected source, a flood of
invalid events."""

from __future__ import annotations

import json

import pytest
import redis

from producers import Publisher
from producers.events import complete_event
from tests.support.raw import publish_raw, purge_rabbit
from tests.worker.e2e import wait_for
from worker.ingest import quarantine
from worker.ingest.ingestor import MESSAGE_QUARANTINE_EVENTS
from worker.store import keys
from worker.store.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

SOURCE = keys.Target(keys.SOURCE, "ingested")


def events(count: int) -> list[dict]:
    return [{"kind": "item.upsert", "source": SOURCE.id, "documentId": f"https://example.com/{n}", "version": 1,
             "item": {"data": str(n)}} for n in range(count)]


def test_worker_killed_while_ingesting_loses_no_event(workers, redis_client, redis_url, rabbitmq_url):
    purge_rabbit(rabbitmq_url)
    env = {"REDIS_URL": redis_url, "BROKER_URL": rabbitmq_url, "PUSHSYNC_WINDOW_SECONDS": "600"}
    count = 8_000
    with Publisher(rabbitmq_url, events_per_message=1) as publisher:
        publisher.publish_many(events(count))
    victim = workers.start("worker", env)
    wait_for(lambda: int(redis_client.hget(SOURCE.stats, "received") or 0) > 100, 30, 0.005, "ingestion under way")
    victim.kill()
    assert redis_client.hlen(SOURCE.window) < count, "the kill came after ingestion ended: nothing was tested"
    workers.start("worker", env)
    wait_for(lambda: redis_client.hlen(SOURCE.window) == count, 120, what="every event in the window")


def test_redis_refusing_writes_keeps_messages_until_it_recovers(workers, redis_broker_url, tmp_path):
    store = EmbeddedRedis(tmp_path / "store")
    try:
        client = redis.Redis.from_url(store.url)
        client.config_set("maxmemory", 1)
        worker = workers.start("worker", {"REDIS_URL": store.url, "BROKER_URL": redis_broker_url,
                                          "PUSHSYNC_WINDOW_SECONDS": "600"})
        with Publisher(redis_broker_url) as publisher:
            publisher.publish_many(events(50))
        wait_for(lambda: "coalescing store refused" in worker.log(), 30, what="the refusal logged")
        assert "OOM" in worker.log() and client.hlen(SOURCE.window) == 0
        client.config_set("maxmemory", 0)
        wait_for(lambda: client.hlen(SOURCE.window) == 50, 30, what="the events after Redis recovered")
    finally:
        workers.stop_all()
        store.stop()


def test_events_for_a_protected_source_are_quarantined(workers, redis_client, redis_url, redis_broker_url):
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, "PUSHSYNC_PROTECTED_SOURCES": SOURCE.id}
    workers.start("worker", env)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events(3))
    wait_for(lambda: quarantine.count(redis_client) == 3, 30, what="quarantined events")
    assert all("PUSHSYNC_PROTECTED_SOURCES" in e.reason for e in quarantine.list_entries(redis_client))
    assert not redis_client.exists(SOURCE.window)


def test_a_message_of_many_invalid_events_takes_a_bounded_quarantine(workers, redis_client, redis_url,
                                                                      redis_broker_url):
    """A flood of tiny invalid events in one message must not become one quarantine entry each.

    `{}` is 3 bytes of message and over 400 bytes of entry: a 16 MiB message of them was 5.6 million
    entries, about 4 GB in a Redis that runs with noeviction, and an out-of-memory store stops all
    ingestion. Past a cap the rest share one entry that keeps the whole message (prefix, size, hash).
    """
    flood = MESSAGE_QUARANTINE_EVENTS * 20
    body = json.dumps({"events": [{}] * flood + [complete_event(e) for e in events(3)]}).encode()
    workers.start("worker", {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, "PUSHSYNC_WINDOW_SECONDS": "600"})
    publish_raw(redis_broker_url, [body])
    wait_for(lambda: redis_client.hlen(SOURCE.window) == 3, 30, what="the valid events beside the flood")
    wait_for(lambda: quarantine.count(redis_client) == MESSAGE_QUARANTINE_EVENTS + 1, 30, what="the capped quarantine")
    whole = [e for e in quarantine.list_entries(redis_client, limit=flood) if e.index is None]
    assert len(whole) == 1 and whole[0].size == len(body)
    assert f"{flood - MESSAGE_QUARANTINE_EVENTS} more invalid event(s)" in whole[0].reason
