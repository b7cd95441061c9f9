"""Push API faults end to end: outages heal, throttling is honoured, permanent failures dead-letter."""

from __future__ import annotations

import base64
import os
import time

import pytest
from click.testing import CliRunner

from producers import Publisher
from tests.support.profiles import LONG
from tests.worker.e2e import converge, history, pipeline_env, wait_for
from worker.cli import main
from worker.deadletter.operator import DeadLetterBrowser
from worker.push import pause
from worker.store import indexes, keys

pytestmark = pytest.mark.slow

SOURCE = "faulty"
BATCH = "*/documents/batch"
OUTAGE_SECONDS = 60 if LONG else 12
"""A 503 outage several backoff draws long; the long profile holds it a minute."""


def start(workers, env):
    workers.start("worker", env)
    workers.start("beat", env)


def batch_statuses(emulator) -> list[int]:
    return [r["status"] for r in emulator.requests() if r["path"].endswith("/documents/batch")]


def test_a_503_outage_heals_with_no_dead_letter(workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="*", path="/push/*", status=503)
    # The budget outlasts the outage plus one full backoff draw (at most 30 s) after it.
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_RETRY_BUDGET_SECONDS="150"))
    events = history([SOURCE], items=10, seed=1)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    outage_started = time.monotonic()
    wait_for(lambda: len([r for r in emulator.requests() if r["status"] == 503]) >= 3, 30, what="503s")
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
    emulator.clear_faults()
    converge(emulator, events, [SOURCE], timeout=90)
    assert DeadLetterBrowser(redis_broker_url).depth() == 0


def test_retry_after_3_is_honoured(workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path=BATCH, status=429, errorCode="TOO_MANY_REQUESTS", retryAfter=3, times=1)
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator))
    events = history([SOURCE], items=5, seed=2)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    converge(emulator, events, [SOURCE])
    calls = [r for r in emulator.requests() if r["path"].endswith("/documents/batch")]
    assert [c["status"] for c in calls][:2] == [429, 202]
    assert calls[1]["time"] - calls[0]["time"] >= 3.0


def test_permanent_400_dead_letters_then_replay_fixes_the_index(workers, clean_emulator, redis_client, redis_url,
                                                                redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path=BATCH, status=400, errorCode="INVALID_JSON", times=1)
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator))
    events = history([SOURCE], items=8, seed=4, deletes=0)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    letters = DeadLetterBrowser(redis_broker_url)
    wait_for(lambda: letters.depth() == 1, 30, what="a dead-letter entry")
    listing = CliRunner().invoke(main, ["dlq", "list", "--source", SOURCE], env={"BROKER_URL": redis_broker_url,
                                                                                 "REDIS_URL": redis_url})
    assert listing.exit_code == 0 and "InvalidRequestError 400 INVALID_JSON" in listing.output
    assert emulator.items(SOURCE) == []
    replay = CliRunner().invoke(main, ["dlq", "replay", "--source", SOURCE],
                                env={"BROKER_URL": redis_broker_url, "REDIS_URL": redis_url})
    assert replay.exit_code == 0, replay.output
    converge(emulator, events, [SOURCE])
    assert letters.depth() == 0


def test_oversized_item_is_dead_lettered_alone_while_the_rest_lands(workers, clean_emulator, redis_client, redis_url,
                                                                    redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_CONTAINER_MAX_BYTES=str(1024 * 1024)))
    events = history([SOURCE], items=6, seed=6, deletes=0)
    huge = {"kind": "item.upsert", "source": SOURCE, "version": 1, "documentId": "https://example.com/huge",
            "item": {"binaryData": base64.b64encode(os.urandom(1536 * 1024)).decode(), "compressionType": "GZIP"}}
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([*events, huge])
    converge(emulator, events, [SOURCE])
    letters = DeadLetterBrowser(redis_broker_url)
    wait_for(lambda: letters.depth() == 1, 30, what="the huge item dead-lettered")
    (entry,) = letters.list()
    assert entry.error.error_class == "ItemTooLargeError" and [e["documentId"] for e in entry.events] == [
        "https://example.com/huge"]


def test_unknown_source_dead_letters_with_the_reason(workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator))
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(history(["nowhere"], items=3, seed=7, deletes=0))
    letters = DeadLetterBrowser(redis_broker_url)
    wait_for(lambda: letters.depth() >= 1, 30, what="dead letter for the unknown source")
    assert {entry.error.status for entry in letters.list()} == {404}


def test_wrong_key_pauses_loudly_and_keeps_the_backlog(workers, clean_emulator, redis_client, redis_url,
                                                       redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    env = pipeline_env(redis_url, redis_broker_url, emulator, COVEO_API_KEY="wrong-key-123")
    workers.start("beat", env)
    worker = workers.start("worker", env)
    events = history([SOURCE], items=4, seed=8, deletes=0)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    target = keys.Target(keys.SOURCE, SOURCE)
    wait_for(lambda: pause.active(redis_client, target), 30, what="the source paused")
    assert "API key refused" in pause.describe(redis_client, target)["reason"]
    assert "THE API KEY IS WRONG" in worker.log() and "wrong-key-123" not in worker.log()
    assert DeadLetterBrowser(redis_broker_url).depth() == 0 and indexes.count(redis_client, keys.CLAIMED) == 1


def test_paused_organization_pauses_the_source_until_it_resumes(workers, clean_emulator, redis_client, redis_url,
                                                                 redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.pause_organization(True)
    start(workers, pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_AUTH_PAUSE_SECONDS="2"))
    events = history([SOURCE], items=4, seed=9, deletes=0)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    target = keys.Target(keys.SOURCE, SOURCE)
    wait_for(lambda: pause.describe(redis_client, target), 30, what="the source paused")
    assert "ORGANIZATION_IS_PAUSED" in pause.describe(redis_client, target)["reason"]
    emulator.pause_organization(False)
    converge(emulator, events, [SOURCE])
    assert DeadLetterBrowser(redis_broker_url).depth() == 0
