"""The whole pipeline in real processes: producers -> broker -> workers + beat -> emulator over HTTP."""

from __future__ import annotations

import pytest

from producers import Publisher
from tests.support.openapi import assert_conforms
from tests.worker.e2e import converge, history, honest_brackets, pipeline_env, source_calls, wait_for

SOURCES = ["docs", "support", "news"]


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_index_equals_last_write_wins_with_honest_brackets(request, workers, clean_emulator, redis_client,
                                                           redis_url, broker_kind):
    broker_url = request.getfixturevalue("redis_broker_url" if broker_kind == "redis" else "rabbitmq_url")
    if broker_kind == "rabbitmq":
        from tests.support.raw import purge_rabbit
        purge_rabbit(broker_url)
    emulator = clean_emulator
    for source in SOURCES:
        emulator.create_source(source)
    env = pipeline_env(redis_url, broker_url, emulator)
    workers.start("worker", env)
    workers.start("worker", env)
    workers.start("beat", env)
    events = history(SOURCES, items=40, seed=3)
    with Publisher(broker_url, events_per_message=20) as publisher:
        half = len(events) // 2
        publisher.publish_many(events[:half])
        wait_for(lambda: any(source_calls(emulator.requests(), s) for s in SOURCES), what="a first batch")
        publisher.publish_many(events[half:])
    converge(emulator, events, SOURCES)
    for source in SOURCES:
        wait_for(lambda: emulator.activities(source)["status"] == "IDLE", 30, what=f"IDLE of {source}")
    log = emulator.requests()
    for source in SOURCES:
        calls = source_calls(log, source)
        assert honest_brackets(calls), (source, calls)
        assert calls.count("BATCH") >= 1
    assert_conforms(log)
