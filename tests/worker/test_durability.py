"""worker.store.durability on a real primary and replica: WAIT on the connection that wrote, a stopped
replica refused in time, and a connection replaced between the writes and the WAIT never taken as a
confirmation (its WAIT counts no write: the writes may be gone with the old primary)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.topologies import START_TIMEOUT_SECONDS, wait_until
from worker.store.durability import CONFIRM_MILLISECONDS, Durability, ReplicasUnconfirmed

pytestmark = pytest.mark.process


@pytest.fixture()
def durability(sentinel_store) -> Durability:
    """Durability of one replica on a plain client of the Sentinels' primary, once the replica is in sync
    (its first sync waits out the primary's diskless-sync delay, 5 s)."""
    wait_until(lambda: sentinel_store.replica().client().info("replication")["master_link_status"] == "up",
               START_TIMEOUT_SECONDS, "the replica in sync")
    return Durability(sentinel_store.primary().client(), 1)


def test_writes_confirmed_by_the_replica(durability, sentinel_store):
    since = durability.mark()
    durability.client.set("durable:a", 1)
    durability.confirm(since)
    assert sentinel_store.replica().client().get("durable:a") == b"1"


def test_a_stopped_replica_is_refused_in_time_and_confirms_once_back(durability, sentinel_store):
    pid = sentinel_store.replica().child.popen.pid
    since = durability.mark()
    os.kill(pid, signal.SIGSTOP)
    try:
        durability.client.set("durable:b", 1)
        started = time.monotonic()
        with pytest.raises(ReplicasUnconfirmed, match="replicas did not confirm: 0 of the 1") as refused:
            durability.confirm(since)
        assert not refused.value.lost
        assert time.monotonic() - started < CONFIRM_MILLISECONDS / 1000 + 1
    finally:
        os.kill(pid, signal.SIGCONT)
    # The same connection's WAIT again: it still counts the write made before.
    durability.confirm(since)


def test_a_replaced_connection_is_never_a_confirmation(durability, sentinel_store):
    since = durability.mark()
    durability.client.set("durable:c", 1)
    held = durability.client.client_id()
    sentinel_store.primary().client().client_kill_filter(_id=held)
    # redis-py reconnects for the WAIT; that new connection wrote nothing, so its WAIT would pass.
    with pytest.raises(ReplicasUnconfirmed, match="replaced") as refused:
        durability.confirm(since)
    assert refused.value.lost
    since = durability.mark()
    durability.client.set("durable:c", 2)
    durability.confirm(since)


def test_nothing_required_writes_through_the_shared_client(sentinel_store):
    shared = sentinel_store.primary().client()
    none = Durability(shared, 0)
    assert none.client is shared
    none.confirm(none.mark())
