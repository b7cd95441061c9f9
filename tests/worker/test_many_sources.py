"""Many sources: the sweep, the reaper and closing quiet bursts cost what is due, the indexes are
sharded (and what an earlier version left unsharded is still swept), and sweeps never wait behind pushes."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import pytest
import redis

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for
from worker.push import pause
from worker.push.brackets import StatusBrackets
from worker.runtime import push_api_client
from worker.settings import Settings, load_settings
from worker.store import indexes, keys
from worker.windows import flush
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

MARKER = "many-sources-test-marker"
"""Echoed once the action under watch is done: the monitor has seen all its commands by then."""


def window(coalescer: Coalescer, target: keys.Target) -> None:
    """Give `target` an open window of one item."""
    coalescer.add_encoded(target, [("https://example.com/1", "1.0", b'{"kind": "item.upsert"}')])


def commands_of(client: redis.Redis, action: Callable[[], object]) -> Counter:
    """The commands (by name, Lua's own left out) that `action` sent to `client`'s database."""
    db = client.connection_pool.connection_kwargs.get("db", 0)
    seen: Counter = Counter()
    with client.monitor() as monitor:
        action()
        client.echo(MARKER)
        while True:
            command = monitor.next_command()
            if MARKER in command["command"]:
                return seen
            if int(command["db"]) == db and command.get("client_type") != "lua":
                seen[command["command"].split()[0].upper()] += 1


def sources(count: int) -> list[keys.Target]:
    return [keys.Target(keys.SOURCE, f"many-{n}") for n in range(count)]


class Parts(NamedTuple):
    settings: Settings
    enqueued: list[keys.Batch]
    flusher: Flusher
    coalescer: Coalescer


def parts(client: redis.Redis, emulator=None, **overrides: object) -> Parts:
    """The windows' parts on `client` with 1-second windows and `overrides`, pushing to `emulator` if given;
    the flusher's claimed batches collect in `enqueued`."""
    if emulator is not None:
        overrides |= {"push_url": emulator.push_url, "retry_budget_seconds": 2,
                      "organization_id": emulator.organization, "api_key": emulator.api_key}
    settings = load_settings(window_seconds=1, **overrides)
    enqueued: list[keys.Batch] = []
    return Parts(settings, enqueued, Flusher(client, settings, enqueued.extend), Coalescer(client, settings))


def test_a_sweep_claims_at_most_its_bound_in_a_few_round_trips_and_says_so_once(redis_client, caplog, monkeypatch):
    monkeypatch.setattr(flush, "SWEEP_MAX_CLAIMS", 30)
    settings, enqueued, flusher, coalescer = parts(redis_client)
    targets = sources(50)
    for target in targets:
        window(coalescer, target)
    later = time.time() + 5
    with caplog.at_level(logging.INFO, logger=flush.__name__):
        first = flusher.sweep(later)
    assert len(first.claimed) == 30, "the sweep's work is bounded; the rest is left for the next sweep"
    lines = [record.getMessage() for record in caplog.records if record.name == flush.__name__]
    assert len(lines) == 1 and "claimed batches: 30 (30 items)" in lines[0], lines
    assert len(flusher.sweep(later).claimed) == 20 and flusher.sweep(later).claimed == []
    assert sorted(batch.target.id for batch in enqueued) == sorted(target.id for target in targets)
    assert not indexes.count(redis_client, keys.DEADLINES), "every due deadline is gone once claimed"
    assert {target.deadlines for target in targets} <= set(keys.DEADLINES)
    assert len({target.deadlines for target in targets}) > 1, "the targets spread over the shards"


def test_the_reaper_and_quiet_bursts_look_only_at_what_may_be_due(redis_client, clean_emulator):
    settings, enqueued, flusher, coalescer = parts(redis_client, clean_emulator, idle_after_seconds=10,
                                                   reap_after_seconds=30)
    api = push_api_client(settings)
    brackets = StatusBrackets(redis_client, api, settings)
    targets = sources(100)
    for target in targets:
        clean_emulator.create_source(target.id)
        window(coalescer, target)
    claimed_at = time.time() + 5
    assert len(flusher.sweep(claimed_at).claimed) == len(targets)
    for target in targets:
        brackets.open(target)  # as each push does before its batch
    closing: list[keys.Target] = []

    def close(now: float) -> Callable[[], object]:
        return lambda: brackets.close_quiet(lambda target, epoch: closing.append(target), now)

    # Every batch is in flight (claimed seconds ago), every burst active: nothing to look at.
    seen = commands_of(redis_client, lambda: flusher.reap(claimed_at + 1))
    assert seen["HMGET"] == 0 and seen["EVALSHA"] == 0, seen
    seen = commands_of(redis_client, close(time.time() + 1))
    assert seen["EVALSHA"] == 0 and seen["HGET"] == 0, seen
    # Past the quiet period the bursts are looked at once: their batches are still in flight, so none
    # closes, and the next sweeps leave them alone until they may be quiet.
    quiet = time.time() + settings.idle_after_seconds + 1
    assert commands_of(redis_client, close(quiet))["EVALSHA"] == len(targets) and not closing
    assert commands_of(redis_client, close(quiet + 1))["EVALSHA"] == 0
    # Lost batches (no task ever started them) are what the reaper finds, all of them.
    assert len(flusher.reap(claimed_at + settings.reap_after_seconds + 1)) == len(targets)
    api.close()


def test_what_an_earlier_version_left_in_the_unsharded_indexes_is_still_swept(redis_client, clean_emulator):
    settings, enqueued, flusher, coalescer = parts(redis_client, clean_emulator, idle_after_seconds=1,
                                                   reap_after_seconds=30)
    due, lost, quiet = keys.Target(keys.SOURCE, "old-due"), keys.Target(keys.SOURCE, "old-lost"), \
        keys.Target(keys.SOURCE, "old-quiet")
    now = time.time()
    # What a version before the sharding wrote: a due window, a claimed batch whose task was lost, an open burst.
    window(coalescer, due)
    redis_client.zrem(due.deadlines, due.ref)
    redis_client.zadd(keys.UNSHARDED_DEADLINES, {due.ref: now - 1})
    window(coalescer, lost)
    redis_client.zrem(lost.deadlines, lost.ref)
    (batch,) = flusher.claim([lost], now)[0]
    redis_client.zrem(lost.claimed, batch.claim_ref)
    redis_client.zadd(keys.UNSHARDED_CLAIMED, {batch.claim_ref: now - settings.reap_after_seconds - 1})
    redis_client.hset(quiet.burst, mapping={"state": "open", "epoch": 1, "last_activity": repr(now - 5)})
    redis_client.sadd(keys.UNSHARDED_BURSTS, quiet.ref)
    enqueued.clear()

    result = flusher.sweep(now)
    assert [b.target for b in result.claimed] == [due] and result.reaped == [batch]
    assert not redis_client.exists(keys.UNSHARDED_DEADLINES, keys.UNSHARDED_CLAIMED)
    closing: list[keys.Target] = []
    brackets = StatusBrackets(redis_client, push_api_client(settings), settings)
    assert brackets.close_quiet(lambda target, epoch: closing.append(target), now) == 1 and closing == [quiet]
    assert not redis_client.exists(keys.UNSHARDED_BURSTS)


@pytest.mark.slow
def test_sweeps_go_on_while_every_pool_process_is_busy_pushing(workers, clean_emulator, redis_client, redis_url,
                                                               redis_broker_url):
    emulator = clean_emulator
    for source in ("slow", "quick"):
        emulator.create_source(source)
    emulator.add_fault(method="PUT", path="*/sources/slow/documents/batch", latency=30, times=1)
    env = pipeline_env(redis_url, redis_broker_url, emulator)
    workers.start("worker", env)  # one pool process
    workers.start("beat", env)
    upsert = {"kind": "item.upsert", "version": 1, "documentId": "https://example.com/1", "item": {"data": "x"}}
    with Publisher(redis_broker_url) as publisher:
        publisher.publish({**upsert, "source": "slow"})
    wait_for(lambda: redis_client.keys("pushsync:{source:slow}:batch:*:lease"), 30,
             what="the one pool process pushing the slow source's batch")
    with Publisher(redis_broker_url) as publisher:
        publisher.publish({**upsert, "source": "quick"})
    quick = keys.Target(keys.SOURCE, "quick")
    # The pool is held by the slow push for 30 s; the quick window is claimed by a sweep meanwhile.
    wait_for(lambda: redis_client.scard(quick.inflight), 15, what="the quick source's window claimed")
    assert redis_client.keys("pushsync:{source:slow}:batch:*:lease"), "the slow push still holds the pool"


def test_batches_whose_pause_ends_at_once_are_resumed_a_bounded_number_per_sweep(redis_client, monkeypatch):
    # An organization's daily quota pauses every source at once, and its end frees them all in one instant.
    settings, enqueued, flusher, coalescer = parts(redis_client, reap_after_seconds=30)
    for target in sources(50):
        window(coalescer, target)
    now = time.time()
    parked = flusher.sweep(now + 2).claimed
    assert len(parked) == 50
    for batch in parked:
        pause.park(redis_client, batch)
    enqueued.clear()
    monkeypatch.setattr(flush, "SWEEP_MAX_CLAIMS", 30)
    assert len(flusher.sweep(now + 3).reaped) == 30, "one sweep resumes at most its bound"
    assert len(flusher.sweep(now + 3).reaped) == 20 and flusher.sweep(now + 3).reaped == []
    assert sorted(batch.id for batch in enqueued) == sorted(batch.id for batch in parked)


def test_a_sweep_claims_no_more_than_the_queue_has_room_for_and_the_windows_left_open_keep_filling(
        redis_client, clean_emulator, redis_broker_url):
    from producers.events import complete_event, parse_event
    from worker.deadletter.operator import DeadLetterBrowser
    from worker.push.batch import BatchPush

    def upsert(target: keys.Target, n: int) -> object:
        return parse_event(complete_event({"kind": "item.upsert", "source": target.id, "version": 1,
                                           "documentId": f"https://example.com/{n}", "item": {"data": "x"}}))

    settings, enqueued, flusher, coalescer = parts(redis_client, clean_emulator, queue_seconds=1,
                                                   idle_after_seconds=3600, single_call_max_items=0)
    targets = sources(flush.QUEUE_FLOOR + 8)
    for target in targets:
        clean_emulator.create_source(target.id)
        coalescer.add([upsert(target, 1)])  # deadlines in this order
    later = time.time() + 5
    first = flusher.sweep(later, pool_processes=1)
    assert [batch.target for batch in first.claimed] == targets[:flush.QUEUE_FLOOR], "earliest deadlines first"
    assert first.left_open == targets[flush.QUEUE_FLOOR:]
    waiting = targets[-1]
    coalescer.add([upsert(waiting, 2)])
    assert flusher.sweep(later + 0.1, pool_processes=1).claimed == [], "the queue is full until pushes finish"
    api = push_api_client(settings)
    push = BatchPush(redis_client, api, StatusBrackets(redis_client, api, settings),
                     DeadLetterBrowser(redis_broker_url), settings)
    assert {push.run(batch).state for batch in enqueued} == {"pushed"}
    third = flusher.sweep(later + 1, pool_processes=1)
    assert [batch.target for batch in third.claimed] == targets[flush.QUEUE_FLOOR:] and third.left_open == []
    assert push.run(third.claimed[-1]).pushed == 2, "the window left open took the event that came meanwhile"
    api.close()


def test_the_queues_bound_follows_the_rate_its_batches_finish_at_and_parked_ones_do_not_count(redis_client):
    settings, _, flusher, _ = parts(redis_client, queue_seconds=2)
    now = time.time()
    queued = [keys.Target(keys.SOURCE, f"q{n}").batch(str(n)) for n in range(30)]
    for batch in queued:
        redis_client.zadd(batch.target.claimed, {batch.claim_ref: now - 1})
    for batch in queued[20:25]:
        redis_client.zadd(batch.target.claimed, {batch.claim_ref: keys.PARKED_SCORE})
    for batch in queued[25:]:
        # Parked, and looked at again by the reaper only once their pause is about to end.
        redis_client.zadd(batch.target.claimed, {batch.claim_ref: now + 300})
    # The last sweep left 100 queued a second ago (by Redis's clock) and measured 20/s: 80 finished since, 80/s.
    seconds, microseconds = redis_client.time()
    redis_client.hset(keys.QUEUE, mapping={"at": repr(seconds + microseconds / 1e6 - 1), "queued": 100, "rate": 20})
    room = flusher.room(pool_processes=1, now=now)
    assert room.queued == 20 and room.rate == pytest.approx(20 + flush.RATE_WEIGHT * 60, rel=0.05)
    assert room.batches == math.ceil(room.rate * 2) - 20
    assert flusher.room(pool_processes=8, now=now).batches == 8 * flush.QUEUE_FLOOR - 20, "never below the floor"
    assert flusher.room(pool_processes=0, now=now) is None, "no pool known: no bound"
    assert parts(redis_client, queue_seconds=0).flusher.room(pool_processes=1, now=now) is None
