"""A batch's lease against real Redis: renewed while held, exclusive, and quiet once its holder ends it."""

from __future__ import annotations

import logging
import time

from worker.lease import RENEWALS_PER_LEASE, Lease

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
