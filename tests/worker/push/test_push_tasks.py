"""Push tasks that carry several batches: how a sweep's batches are spread over the pools, and what one
task does when a batch of its fails or when it runs long (real Redis, the emulator over HTTP, a real
Celery app publishing to a Redis broker)."""

from __future__ import annotations

import base64
import json
import time
from types import SimpleNamespace

import pytest
import redis
from celery import Celery
from hypothesis import given
from hypothesis import strategies as st

from producers.events import complete_event, parse_event
from worker import tasks
from worker.deadletter.operator import DeadLetterBrowser
from worker.observe import liveness
from worker.push.batch import BatchPush
from worker.push.brackets import StatusBrackets
from worker.runtime import push_api_client
from worker.settings import load_settings
from worker.store import keys
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

TASKS_QUEUE = "pushsync.test.push-tasks"


@given(count=st.integers(0, 200), pools=st.integers(0, 64))
def test_a_sweeps_batches_are_spread_over_the_pools_a_bounded_number_per_task(count, pools):
    refs = [("source:s", str(n)) for n in range(count)]
    chunks = tasks.spread(refs, pools)
    assert [ref for chunk in chunks for ref in chunk] == refs
    assert all(0 < len(chunk) <= tasks.PUSH_TASK_MAX_BATCHES for chunk in chunks)
    if pools == 0:
        assert len(chunks) == count, "with no pool known, each batch goes alone"
    else:
        # Every pool process gets a task while there are batches enough, and no task is larger than it must be.
        assert len(chunks) >= min(count, pools)
        assert max(map(len, chunks), default=0) <= max(-(-count // pools), 1)


def test_the_pools_that_ran_sweeps_lately_count_and_stale_ones_are_forgotten(redis_client):
    now = time.time()
    liveness.record_sweep(redis_client, "w1@a", 4, now=now - liveness.POOL_STALE_SECONDS - 1)
    liveness.record_sweep(redis_client, "w2@b", 3, now=now)
    liveness.record_sweep(redis_client, "w3@c", None, now=now)
    assert liveness.pool_processes(redis_client, now) == 3
    assert redis_client.hkeys(keys.POOLS) == [b"w2@b"], "the stale worker is forgotten, an unknown pool not recorded"
    assert redis_client.hget(keys.SWEEPS, "worker") == b"w3@c"


def test_a_pool_recorded_again_while_a_sweep_forgets_its_stale_record_stays_counted(redis_client, monkeypatch):
    now = time.time()
    liveness.record_sweep(redis_client, "w1@a", 4, now=now - liveness.POOL_STALE_SECONDS - 1)
    read = redis_client.hgetall

    def its_sweep_comes_right_after_the_read(name):
        found = read(name)
        liveness.record_pool(redis_client, "w1@a", 4, now=now)
        return found

    monkeypatch.setattr(redis_client, "hgetall", its_sweep_comes_right_after_the_read)
    assert liveness.pool_processes(redis_client, now) == 0  # as read: stale
    monkeypatch.undo()
    assert liveness.pool_processes(redis_client, now) == 4, "the fresh record was not forgotten with the stale one"


@pytest.mark.parametrize("record", [b"", b"four 9e99", b"4", b"4 soon", b"\xff\xfe 1", b"4 nan", b"4 inf", b"4 1e999",
                                    b"0 9e99", b"-2 9e99"])
def test_a_pool_record_that_is_none_is_forgotten_and_counts_nothing(redis_client, record):
    now = time.time()
    redis_client.hset(keys.POOLS, "odd@a", record)
    liveness.record_sweep(redis_client, "w2@b", 3, now=now)
    assert liveness.pool_processes(redis_client, now) == 3
    assert redis_client.hkeys(keys.POOLS) == [b"w2@b"]


@pytest.fixture()
def pushes(redis_client, redis_url, redis_broker_url, clean_emulator, monkeypatch):
    """Three sources' claimed batches (the second source unknown to the service), pushed in this process
    by the task's own code, its tasks published to a real Redis broker."""
    for source in ("a", "c"):
        clean_emulator.create_source(source)
    settings = load_settings(redis_url=redis_url, push_url=clean_emulator.push_url,
                             organization_id=clean_emulator.organization, api_key=clean_emulator.api_key,
                             window_seconds=1, idle_after_seconds=3600, single_call_max_items=0,
                             retry_budget_seconds=2)
    api = push_api_client(settings)
    push = BatchPush(redis_client, api, StatusBrackets(redis_client, api, settings),
                     DeadLetterBrowser(redis_broker_url), settings)
    monkeypatch.setattr(tasks, "runtime", lambda: SimpleNamespace(push=push, store=redis_client))
    Coalescer(redis_client, settings).add([parse_event(complete_event({
        "kind": "item.upsert", "source": source, "version": 1, "documentId": f"https://example.com/{source}",
        "item": {"data": source}})) for source in ("a", "b", "c")])
    claimed: list[keys.Batch] = []
    Flusher(redis_client, settings, claimed.extend).sweep(time.time() + 5)
    # Its own configuration: Celery's default loader would read the project's celeryconfig (the environment's).
    app = Celery("push-tasks-test", set_as_current=False,
                 config_source={"broker_url": redis_broker_url, "task_default_queue": TASKS_QUEUE})
    monkeypatch.setattr(tasks, "push_batch", app.tasks["pushsync.push_batch"])
    yield SimpleNamespace(batches=sorted(claimed, key=lambda batch: batch.target.id), emulator=clean_emulator,
                          store=redis_client,
                          broker=redis.Redis.from_url(redis_broker_url))
    api.close()


def sent_tasks(broker: redis.Redis) -> list[list]:
    """The arguments of every task message waiting in the test's queue."""
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0] for raw in broker.lrange(TASKS_QUEUE, 0, -1)]


def test_a_batch_that_fails_does_not_keep_the_rest_of_its_task_from_landing(pushes):
    refs = [(batch.target.ref, batch.id) for batch in pushes.batches]
    with pytest.raises(tasks.BatchDeadLettered) as failed:
        tasks._push_all(tasks.push_batch, refs)
    assert "source:b" in str(failed.value) and "source:a" not in str(failed.value)
    assert [item["documentId"] for item in pushes.emulator.items("a")] == ["https://example.com/a"]
    assert [item["documentId"] for item in pushes.emulator.items("c")] == ["https://example.com/c"]
    assert sent_tasks(pushes.broker) == []


def test_a_task_that_ran_long_hands_the_batches_it_did_not_start_on_to_another_task(pushes, monkeypatch):
    monkeypatch.setattr(tasks, "HAND_ON_SECONDS", 0.0)
    first, *rest = [(batch.target.ref, batch.id) for batch in pushes.batches]
    handed_at = time.time()
    outcome = tasks._push_all(tasks.push_batch, [first, *rest])
    assert outcome["state"] == "pushed" and outcome["pushed"] == 1
    assert [item["documentId"] for item in pushes.emulator.items("a")] == ["https://example.com/a"]
    assert pushes.emulator.items("c") == [], "the batches handed on are not pushed by this task"
    assert sent_tasks(pushes.broker) == [[*rest[0], list(rest[1])]]
    # The reaper counts from the hand-on: it enqueues them again only if the new task is lost too.
    assert all(pushes.store.zscore(batch.target.claimed, batch.claim_ref) >= handed_at for batch in pushes.batches[1:])
