"""Events in and operations pushed per minute: counted through the stages' hooks, bounded, read back by the hour."""

from __future__ import annotations

import redis

from worker import hooks
from worker.observe.throughput import Throughput
from worker.store import keys, minutes
from worker.store.embedded import free_port

SOURCE = keys.Target(keys.SOURCE, "tp-docs")
NOW = 1_800_000_000.0
"""A fixed clock at the start of a minute."""


def test_hooks_count_per_minute_and_each_minute_expires_once_out_of_the_hour(redis_client, monkeypatch):
    listener = Throughput(lambda: redis_client)
    monkeypatch.setattr(minutes.time, "time", lambda: NOW)
    hooks.subscribe(listener)
    try:
        hooks.emit("after_ingest", SOURCE, received=5, superseded=1, stale=0)
        hooks.emit("after_ingest", SOURCE, received=2, superseded=0, stale=0)
        hooks.emit("after_push", SOURCE, {"addOrUpdate": 4, "delete": 2}, 100, 0.1, None)
    finally:
        hooks.unsubscribe(listener)
    current = int(NOW // minutes.MINUTE_SECONDS)
    assert redis_client.expiretime(SOURCE.minute(current)) == (current + minutes.MINUTES_KEPT + 1) * minutes.MINUTE_SECONDS

    later = NOW + 2 * minutes.MINUTE_SECONDS
    series = minutes.last_hour(redis_client, [SOURCE], later)[SOURCE.ref]
    assert len(series) == minutes.MINUTES_KEPT and series[-1] == minutes.Minute(later, 0, 0)
    assert series[-3] == minutes.Minute(NOW, received=7, pushed=6)
    assert sum(m.received for m in series) == 7


def test_a_store_that_does_not_answer_costs_the_stage_nothing(caplog):
    gone = redis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    Throughput(lambda: gone).after_ingest(SOURCE, received=1, superseded=0, stale=0)
    assert "could not count in for source:tp-docs" in caplog.text
