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


class FailsOverOnConfirm(Durability):
    """Durability whose replica is promoted (REPLICAOF NO ONE) the moment a step is confirmed: what the
    promoted replica holds then is what a failover right after the confirmation keeps."""

    def __init__(self, client, replica) -> None:
        super().__init__(client, 1)
        self.replica = replica

    def confirm(self, since: int) -> None:
        super().confirm(since)
        self.replica.client().replicaof("NO", "ONE")


def test_a_claim_confirms_what_its_push_relies_on_before_the_task_is_sent(durability, sentinel_store):
    from worker.settings import load_settings
    from worker.store import keys
    from worker.windows.coalesce import Coalescer
    from worker.windows.flush import Flusher

    primary, replica = sentinel_store.primary(), sentinel_store.replica()
    settings = load_settings(window_seconds=1, source_providers={"durable-src": ["durable-prov"]})
    source = keys.Target(keys.SOURCE, "durable-src")
    Coalescer(durability.client, settings).add_encoded(source, [("https://example.com/1", "1.0",
                                                                  b'{"kind": "item.upsert"}')])
    promoted: dict[str, dict] = {}
    failing_over = FailsOverOnConfirm(durability.shared, replica)
    flusher = Flusher(failing_over.client, settings, lambda batches: promoted.update(
        {batch.id: replica.client().hgetall(batch.meta) for batch in batches}), failing_over)
    try:
        (batch,) = flusher.sweep(time.time() + 5).claimed
    finally:
        replica.client().replicaof("127.0.0.1", primary.port)
    # The identities this batch must follow (invariant 7): lost with the old primary, it would go before them.
    assert b"needs:durable-prov" in promoted[batch.id], promoted


def test_a_lease_its_replicas_did_not_confirm_is_not_left_held(durability, sentinel_store):
    """The task that took it hands its message back (Reject, requeue): that next delivery must find the lease
    free, not held by nobody until it expires (it would be acknowledged as 'held', its batch left to the reaper)."""
    from worker.push.lease import Lease

    pid = sentinel_store.replica().child.popen.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(ReplicasUnconfirmed):
            Lease(durability.client, "durable:lease", 60, durability).acquire()
    finally:
        os.kill(pid, signal.SIGCONT)
    again = Lease(durability.client, "durable:lease", 60, durability)
    assert again.acquire(), "the lease was left held by the delivery that handed its message back"
    again.release()


def test_a_push_its_replicas_did_not_confirm_waits_before_it_hands_its_message_back(durability, sentinel_store,
                                                                                    monkeypatch):
    """Each hand-back is a delivery, and RabbitMQ sets a task aside after a few: handed back within the
    WAIT's second, a task would use them up in seconds of a replica outage."""
    from types import SimpleNamespace

    from celery.exceptions import Reject

    from worker import tasks
    from worker.deadletter.queue import DeadLetters
    from worker.push.batch import BatchPush
    from worker.push.brackets import StatusBrackets
    from worker.pushapi.client import PushApiClient
    from worker.settings import load_settings
    from worker.store import keys
    from worker.windows.coalesce import Coalescer
    from worker.windows.flush import Flusher

    settings = load_settings(window_seconds=1)
    source = keys.Target(keys.SOURCE, "handed-back")
    Coalescer(durability.client, settings).add_encoded(source, [("https://example.com/1", "1.0",
                                                                  b'{"kind": "item.upsert"}')])
    (batch,) = Flusher(durability.client, settings, lambda batches: None).sweep(time.time() + 5).claimed
    api = PushApiClient(base_url="http://127.0.0.1:9/push/v1", organization_id="org", api_key="key")
    push = BatchPush(durability.client, api, StatusBrackets(durability.client, api, settings),
                     DeadLetters(sentinel_store.url, durability.client), settings, durability=durability)
    monkeypatch.setattr(tasks, "runtime", lambda: SimpleNamespace(push=push))
    slept: list[float] = []
    monkeypatch.setattr(tasks, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    pid = sentinel_store.replica().child.popen.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        with pytest.raises(Reject) as handed_back:
            tasks._push_all(tasks.push_batch, [(source.ref, batch.id)])
    finally:
        os.kill(pid, signal.SIGCONT)
    assert handed_back.value.requeue
    assert slept == [tasks.HAND_BACK_DELAY_SECONDS] and tasks.HAND_BACK_DELAY_SECONDS >= 5


def test_an_idle_its_replicas_did_not_confirm_is_handed_back_and_its_redelivery_finds_the_burst_closed(
        durability, sentinel_store, monkeypatch):
    """Lost in a failover, a closed burst would look open still, and the next push would skip its REFRESH."""
    from types import SimpleNamespace

    from celery.exceptions import Reject

    from tests.support.scripted_server import ScriptedServer
    from worker import tasks
    from worker.deadletter.queue import DeadLetters
    from worker.push.batch import BatchPush
    from worker.push.brackets import StatusBrackets
    from worker.pushapi.client import PushApiClient
    from worker.settings import load_settings
    from worker.store import keys
    from worker.windows.coalesce import Coalescer
    from worker.windows.flush import Flusher

    settings = load_settings(window_seconds=1, idle_after_seconds=0, single_call_max_items=0)
    source = keys.Target(keys.SOURCE, "idle-handed-back")
    client = durability.client
    server = ScriptedServer()
    try:
        api = PushApiClient(base_url=server.push_url, organization_id="org", api_key="key", retry_budget_seconds=2)
        brackets = StatusBrackets(client, api, settings)
        Coalescer(client, settings).add_encoded(source, [("https://example.com/1", "1.0",
                                                          b'{"kind": "item.upsert", "version": 1, '
                                                          b'"documentId": "https://example.com/1", "item": {}}')])
        (batch,) = Flusher(client, settings, lambda batches: None).sweep(time.time() + 5).claimed
        BatchPush(client, api, brackets, DeadLetters(sentinel_store.url, client), settings,
                  durability=durability).run(batch)
        closing: list[int] = []
        brackets.close_quiet(lambda target, epoch: closing.append(epoch), now=time.time() + 5)
        (epoch,) = closing
        monkeypatch.setattr(tasks, "runtime", lambda: SimpleNamespace(durability=durability, brackets=brackets))
        monkeypatch.setattr(tasks, "time", SimpleNamespace(sleep=lambda seconds: None, monotonic=time.monotonic))
        pid = sentinel_store.replica().child.popen.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(Reject) as handed_back:
                tasks._close_burst(source.ref, epoch)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert handed_back.value.requeue
        # The primary kept the close: the redelivery sends no second IDLE.
        assert tasks._close_burst(source.ref, epoch) is False
        statuses = [r.query["statusType"][0] for r in server.matching("POST", r"/status$")]
        assert statuses == ["REFRESH", "IDLE"], statuses
    finally:
        server.close()
