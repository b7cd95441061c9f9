"""A batch's lease against real Redis: renewed while held, exclusive, quiet once its holder ends it, and
fenced: its check fails once it can no longer be vouched for."""

from __future__ import annotations

import logging
import time

import pytest

from worker.push.lease import FENCE_MARGIN, RENEWALS_PER_LEASE, Lease, LeaseLost

KEY = "pushsync:{source:src}:batch:b1:lease"
SECONDS = 0.4
"""A short lease, so renewals happen every 0.1 s."""
RENEWAL = SECONDS / RENEWALS_PER_LEASE


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_held_lease_outlives_its_period_and_excludes_others(redis_client):
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    try:
        time.sleep(SECONDS * 3)
        assert redis_client.get(KEY) == lease.token.encode()
        assert not Lease(redis_client, KEY, SECONDS).acquire()
    finally:
        lease.release()
    assert not redis_client.exists(KEY)
    assert not lease.lost


def test_a_lease_taken_away_is_reported_lost(redis_client, caplog):
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    redis_client.set(KEY, "another task")
    try:
        assert wait_for(lambda: lease.lost)
    finally:
        lease.release()
    assert any(record.levelno == logging.ERROR and "was lost" in record.getMessage() for record in caplog.records)
    assert redis_client.get(KEY) == b"another task"


def test_a_halted_lease_stays_quiet_when_its_holder_deletes_it(redis_client, caplog):
    # What the push does when it releases a batch: halt the renewals, then a script deletes the key.
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    lease.halt()
    redis_client.delete(KEY)
    time.sleep(RENEWAL * 3)
    lease.release()
    assert not lease.lost
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_held_lease_passes_its_check_while_renewed(redis_client):
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    try:
        deadline = time.monotonic() + SECONDS * 3
        while time.monotonic() < deadline:
            lease.check("a call")
            time.sleep(RENEWAL / 2)
    finally:
        lease.release()


def test_a_lease_not_confirmed_for_most_of_its_period_fails_its_check_without_asking_redis(redis_client):
    # What a frozen process finds when it wakes: no renewal confirmed for longer than the lease can vouch for.
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    lease.halt()
    lease.check()
    time.sleep(SECONDS * (1 - FENCE_MARGIN))
    assert redis_client.get(KEY) == lease.token.encode(), "the key itself has not expired yet"
    with pytest.raises(LeaseLost, match="not sending documents/batch"):
        lease.check("documents/batch")
    assert lease.lost and not lease.held()
    lease.release()


def test_a_lease_taken_away_fails_its_check(redis_client):
    lease = Lease(redis_client, KEY, SECONDS)
    assert lease.acquire()
    redis_client.set(KEY, "another task")
    try:
        assert wait_for(lambda: lease.lost)
        with pytest.raises(LeaseLost):
            lease.check()
    finally:
        lease.release()
