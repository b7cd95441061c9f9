"""Events in and operations pushed per minute: counted through the stages' hooks, bounded, read back by the hour."""

from __future__ import annotations

import time

import redis

from worker import hooks
from worker.observe.throughput import Throughput
from worker.store import keys, minutes
from worker.store.embedded import free_port

SOURCE = keys.Target(keys.SOURCE, "tp-docs")
NOW = 1_800_000_000.0
"""A fixed clock at the start of a minute."""


def test_hooks_count_per_minute_and_each_minute_expires_once_out_of_the_hour(redis_client, monkeypatch):
    listener = Throughput(lambda: redis_client, flush_seconds=60)
    monkeypatch.setattr(minutes.time, "time", lambda: NOW)
    hooks.subscribe(listener)
    try:
        hooks.emit("after_ingest", SOURCE, received=5, superseded=1, stale=0)
        hooks.emit("after_ingest", SOURCE, received=2, superseded=0, stale=0)
        hooks.emit("after_push", SOURCE, {"addOrUpdate": 4, "delete": 2}, 100, 0.1, None)
    finally:
        hooks.unsubscribe(listener)
    assert redis_client.dbsize() == 0  # gathered, not written yet
    listener.flush()
    current = int(NOW // minutes.MINUTE_SECONDS)
    assert redis_client.expiretime(SOURCE.minute(current)) == (current + minutes.MINUTES_KEPT + 1) * minutes.MINUTE_SECONDS

    later = NOW + 2 * minutes.MINUTE_SECONDS
    series = minutes.last_hour(redis_client, [SOURCE], later)[SOURCE.ref]
    assert len(series) == minutes.MINUTES_KEPT and series[-1] == minutes.Minute(later, 0, 0)
    assert series[-3] == minutes.Minute(NOW, received=7, pushed=6)
    assert sum(m.received for m in series) == 7


def test_a_store_that_does_not_answer_costs_the_stage_nothing(caplog):
    gone = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    listener = Throughput(lambda: gone, flush_seconds=60)
    started = time.perf_counter()
    listener.after_ingest(SOURCE, received=1, superseded=0, stale=0)
    assert time.perf_counter() - started < 0.1
    listener.flush()
    assert "could not count 1 figure(s) in the console's chart" in caplog.text


def test_the_counts_of_many_targets_are_written_in_one_round_trip_within_the_flush_period(redis_client):
    from tests.worker.test_stages import round_trips_of

    def trips_counting(targets: list[keys.Target]) -> int:
        last = targets[-1].minute(minutes.minute_of())

        def count_and_wait(counted):
            listener = Throughput(lambda: counted, flush_seconds=0.2)
            for target in targets:
                listener.after_ingest(target, received=1, superseded=0, stale=0)
            deadline = time.monotonic() + 10
            while not redis_client.exists(last) and time.monotonic() < deadline:  # not through the counted client
                time.sleep(0.05)

        return round_trips_of(redis_client, count_and_wait)

    many = [keys.Target(keys.SOURCE, f"tp-{n}") for n in range(200)]
    # The same as for one target (a new connection's own set-up commands included in both).
    assert trips_counting(many) == trips_counting([keys.Target(keys.SOURCE, "tp-one")])
    series = minutes.last_hour(redis_client, many)
    assert all(series[target.ref][-1].received == 1 for target in many)


EXITS_AFTER_COUNTING = """
import sys
import redis
from worker.observe.throughput import Throughput
from worker.store import keys
client = redis.Redis.from_url(sys.argv[1])
Throughput(lambda: client, flush_seconds=60).after_ingest(keys.Target(keys.SOURCE, "tp-exit"), received=3,
                                                          superseded=0, stale=0)
"""


def test_a_process_that_exits_writes_the_counts_it_gathered(redis_client, redis_url):
    """A worker stopped politely (a restart, a deploy) is not a dead one: its last second still counts."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", EXITS_AFTER_COUNTING, redis_url], check=True, timeout=60)
    series = minutes.last_hour(redis_client, [keys.Target(keys.SOURCE, "tp-exit")])
    assert sum(minute.received for minute in series["source:tp-exit"]) == 3


def test_a_flush_called_early_leaves_no_timer_thread_behind(redis_client):
    import threading

    listener = Throughput(lambda: redis_client, flush_seconds=60)
    before = threading.active_count()
    for _ in range(3):
        listener.after_ingest(SOURCE, received=1, superseded=0, stale=0)
        listener.flush()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
