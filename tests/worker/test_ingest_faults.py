"""Ingestion under faults: a SIGKILLed worker, a Redis that refuses writes, a protected source."""

from __future__ import annotations

import redis

from producers import Publisher
from tests.worker.e2e import wait_for
from tests.support.raw import purge_rabbit
from worker import keys, quarantine
from worker.embedded import EmbeddedRedis

SOURCE = keys.Target(keys.SOURCE, "ingested")


def events(count: int) -> list[dict]:
    return [{"kind": "item.upsert", "source": SOURCE.id, "documentId": f"https://example.com/{n}", "version": 1,
             "item": {"data": str(n)}} for n in range(count)]


def test_worker_killed_while_ingesting_loses_no_event(workers, redis_client, redis_url, rabbitmq_url):
    purge_rabbit(rabbitmq_url)
    env = {"REDIS_URL": redis_url, "BROKER_URL": rabbitmq_url, "PUSHSYNC_WINDOW_SECONDS": "600"}
    count = 20_000
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
