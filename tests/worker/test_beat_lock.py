"""The beat lock against a real Redis: one holder at a time, renewed by its holder, dropped on a
stop, lapsing after a death (the processes themselves: tests/worker/commands/test_beat.py)."""

from __future__ import annotations

from tests.worker.e2e import wait_for
from worker.store import beat_lock, keys

SHORT_SECONDS = 0.2
"""A lock that lapses quickly, to see it lapse."""


def test_one_beat_holds_the_lock_the_other_is_told_who(redis_client):
    first, second = beat_lock.BeatLock(redis_client, 30), beat_lock.BeatLock(redis_client, 30)
    assert first.hold() is None
    assert second.hold() == first.me and beat_lock.holder(redis_client) == first.me
    assert first.hold() is None, "the holder renews it"
    second.release()
    assert beat_lock.holder(redis_client) == first.me, "only the holder drops it"
    first.release()
    assert beat_lock.holder(redis_client) is None
    assert second.hold() is None and first.hold() == second.me


def test_a_renewal_restores_the_time_to_live_and_a_dead_holders_lock_lapses(redis_client):
    dead = beat_lock.BeatLock(redis_client, SHORT_SECONDS)
    assert dead.hold() is None
    redis_client.pexpire(keys.BEAT_LOCK, 1)
    wait_for(lambda: beat_lock.holder(redis_client) is None, 10, interval=0.05, what="the lock to lapse")
    assert dead.hold() is None, "a holder whose lock lapsed takes it again while it is free"
    assert redis_client.pttl(keys.BEAT_LOCK) > 1
    wait_for(lambda: beat_lock.holder(redis_client) is None, 10, interval=0.05, what="the unrenewed lock to lapse")
    successor = beat_lock.BeatLock(redis_client, 30)
    assert successor.hold() is None and dead.hold() == successor.me


def test_the_lock_lives_several_sweep_periods_and_never_less_than_its_floor():
    assert beat_lock.lock_seconds(0.01) == beat_lock.LOCK_MIN_SECONDS
    assert beat_lock.lock_seconds(60) == 60 * beat_lock.LOCK_SWEEP_PERIODS
