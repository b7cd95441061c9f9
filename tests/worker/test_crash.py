"""Invariant 1 under crashes: a SIGKILLed worker or a restarted Redis changes when, never whether."""

from __future__ import annotations

import time

import pytest
import redis

from producers import Publisher
from tests.worker.e2e import converge, history, pipeline_env, wait_for
from worker.store import indexes, keys
from worker.store.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

SOURCE = "crashy"


def test_worker_killed_while_the_emulator_holds_its_upload(workers, clean_emulator, redis_client, redis_url,
                                                           redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path="/_blob/*", latency=60, times=1)
    env = pipeline_env(redis_url, redis_broker_url, emulator)
    victim = workers.start("worker", env)
    workers.start("beat", env)
    events = history([SOURCE], items=30, seed=5)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    wait_for(lambda: emulator.containers(), 30, what="a file container being uploaded")
    wait_for(lambda: redis_client.keys("pushsync:*:lease"), 10, what="a batch lease held by the victim")
    time.sleep(0.5)
    victim.kill()
    workers.start("worker", env)
    converge(emulator, events, [SOURCE])
    wait_for(lambda: not indexes.count(redis_client, keys.CLAIMED), 30, what="every claimed batch released")
    assert not redis_client.hlen(keys.Target(keys.SOURCE, SOURCE).window)


def test_redis_restart_loses_nothing(workers, clean_emulator, tmp_path):
    """Windows, claims and queued messages survive a restart of the Redis that is store and broker.

    Messages a worker had taken but not yet acknowledged when Redis went away come back after
    the broker's visibility timeout (docs/architecture.md, "Broker settings that no loss depends
    on"); the restart here comes once those are written.
    """
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    server = EmbeddedRedis(tmp_path / "redis")
    try:
        env = pipeline_env(server.url, server.url.replace("/0", "/1"), emulator, PUSHSYNC_WINDOW_SECONDS="3")
        workers.start("worker", env)
        workers.start("beat", env)
        events = history([SOURCE], items=30, seed=9)
        half = len(events) // 2
        with Publisher(env["BROKER_URL"]) as publisher:
            publisher.publish_many(events[:half])
        stats = keys.Target(keys.SOURCE, SOURCE).stats
        store = redis.Redis.from_url(server.url)
        wait_for(lambda: int(store.hget(stats, "received") or 0) == half, 20, what="the first half ingested")
        server.stop()
        server = EmbeddedRedis(tmp_path / "redis", port=server.port)
        with Publisher(env["BROKER_URL"]) as publisher:
            publisher.publish_many(events[half:])
        converge(emulator, events, [SOURCE], timeout=40)
    finally:
        workers.stop_all()
        server.stop()
