"""The pipeline on a 3-node RabbitMQ cluster named by kombu's failover list, and a node SIGKILLed under load.

Workers, beat and publishers are given BROKER_URL = the three nodes' URLs joined by `;`; the store is
the session's Redis. The quorum queues (events, tasks and their poison queues) are declared while the
three nodes are up, so each has a member on every node: the node that the workers and the publisher
are connected to, which also leads the queues (they were declared through it), is SIGKILLed while
events flow. Publishers and workers carry on through the other nodes, and the index equals last
write wins afterwards. The stall of publishing and of pushing at the node loss is printed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
import redis
import requests
from kombu import Connection

from producers import Publisher, RetryPolicy, broker
from producers.webhook.signatures import pushsync_signature
from tests.plugins.rabbitmq_node import RabbitCluster, RabbitNode
from tests.producers.conftest import serve_receiver
from tests.support.raw import purge_rabbit
from tests.support.steady import SteadyPublisher
from tests.worker.e2e import converge, history, index, pipeline_env, wait_for
from worker.ingest import quarantine

pytestmark = pytest.mark.slow

QUEUES = [broker.EVENTS_QUEUE, broker.EVENTS_QUEUE + broker.POISON_SUFFIX,
          broker.TASKS_QUEUE, broker.TASKS_QUEUE + broker.POISON_SUFFIX]
"""Every queue pushsync declares on RabbitMQ: all of them must survive a node."""
BATCH_ACCEPTED = 202
INGEST_RESTART_ERROR = "Error on restarting AmqpIngestStep"
"""What Celery logs when the ingestion step fails to stop on a lost connection."""
CELERY_DELAYED_PREFIX = "celery_delayed_"
"""The queues of Celery's native delayed delivery (kombu.transport.native_delayed_delivery)."""


def members(node: RabbitNode) -> dict[str, tuple[str, list[str]]]:
    """Each queue of the default vhost, as `node` lists it: its type and the nodes holding a member."""
    listed = node.ctl("list_queues", "--quiet", "--no-table-headers", "name", "type", "members")
    assert listed.returncode == 0, listed.stderr
    queues = {}
    for line in listed.stdout.splitlines():
        name, kind, held = line.split("\t")
        queues[name] = (kind, sorted(part.strip() for part in held.strip("[]").split(",") if part.strip()))
    return queues


def connections(cluster: RabbitCluster) -> Counter[str]:
    """Client connections of the whole cluster, counted by the node that holds each."""
    listed = cluster.running()[-1].ctl("list_connections", "--quiet", "--no-table-headers", "pid")
    assert listed.returncode == 0, listed.stderr
    # A connection's process id names its node: <name@host.N.N.N>.
    return Counter(pid.strip("<>").rsplit(".", 3)[0] for pid in listed.stdout.split())


def batch_times(emulator) -> list[float]:
    """When each batch the emulator accepted arrived (time.time()), in order."""
    return [entry["time"] for entry in emulator.requests()
            if entry["path"].endswith("/documents/batch") and entry["status"] == BATCH_ACCEPTED]


HOOK_SECRET = "cluster-hook-secret"
HOOK_SOURCE = "failover-hooks"
HOOK_CONFIG = {
    # The receiver's default retries, which must outlast a quorum queue's election.
    "sources": {"direct": {"adapter": "generic", "secret": HOOK_SECRET, "source_id": HOOK_SOURCE}},
}
HOOK_EVERY_SECONDS = 0.05


class SteadyHooks:
    """Posts one new item to the webhook receiver every HOOK_EVERY_SECONDS from a thread until stopped."""

    def __init__(self, base: str) -> None:
        """base: the receiver's base URL."""
        self.base = base
        self.answers: dict[str, int] = {}
        """documentId -> the receiver's status."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> SteadyHooks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(HOOK_EVERY_SECONDS):
            n += 1
            document = f"https://example.com/{HOOK_SOURCE}/{n}"
            body = json.dumps({"kind": "item.upsert", "source": HOOK_SOURCE, "documentId": document, "version": 1,
                               "item": {"data": f"hook {n}"}}).encode()
            headers = {"X-Pushsync-Signature": pushsync_signature(HOOK_SECRET, body, int(time.time())),
                       "Content-Type": "application/json"}
            self.answers[document] = requests.post(f"{self.base}/hooks/direct", data=body, headers=headers,
                                                   timeout=60).status_code


def test_the_pipeline_on_a_cluster_failover_list_equals_last_write_wins(workers, clean_emulator, redis_client,
                                                                         redis_url, rabbitmq_cluster: RabbitCluster):
    """The end-to-end flow with BROKER_URL = the three nodes; every queue has a member on each node."""
    cluster, emulator = rabbitmq_cluster, clean_emulator
    purge_rabbit(cluster.url)
    sources = ["cluster-a", "cluster-b"]
    for source in sources:
        emulator.create_source(source)
    env = pipeline_env(redis_url, cluster.url, emulator)
    workers.start("worker", env)
    workers.start("beat", env)
    events = history(sources, items=30, seed=41)
    with Publisher(cluster.url, events_per_message=20) as publisher:
        publisher.publish_many(events)
    converge(emulator, events, sources)
    everywhere = sorted(node.name for node in cluster.nodes)
    queues = members(cluster.nodes[-1])
    assert {name: queues.get(name) for name in QUEUES} == {name: ("quorum", everywhere) for name in QUEUES}
    # Celery's native delayed delivery (its queues) is left out: pushsync sends no ETA, and the step
    # held a reconnected worker back on the dead node of the list.
    assert not [name for name in queues if name.startswith(CELERY_DELAYED_PREFIX)], sorted(queues)


def test_a_node_sigkilled_under_steady_publishing_loses_nothing(workers, clean_emulator, redis_client, redis_url,
                                                                 rabbitmq_cluster: RabbitCluster):
    cluster, emulator = rabbitmq_cluster, clean_emulator
    victim, *survivors = cluster.nodes
    purge_rabbit(cluster.url)
    sources = ["failover-a", "failover-b"]
    for source in (*sources, HOOK_SOURCE):
        emulator.create_source(source)
    env = pipeline_env(redis_url, cluster.url, emulator)
    first = workers.start("worker", env)
    second = workers.start("worker", env)
    workers.start("beat", env)
    events = history(sources, items=150, seed=43)
    receiver, stop_receiver = serve_receiver(HOOK_CONFIG, cluster.url)
    try:
        with (SteadyPublisher(cluster.url, events, seconds=16, per_message=5, retry=RetryPolicy()) as steady,
              SteadyHooks(receiver) as hooks):
            wait_for(lambda: batch_times(emulator), 30, 0.1, "a first batch pushed")
            # Every client went to the first node of the list, which is alive: that one dies.
            held = connections(cluster)
            assert set(held) == {victim.name} and held[victim.name] >= 3, held
            killed_at = time.time()
            victim.kill()
        converge(emulator, events, sources, timeout=120)
        accepted = {document for document, status in hooks.answers.items() if status == BATCH_ACCEPTED}
        wait_for(lambda: accepted <= set(index(emulator, HOOK_SOURCE)), 60, what="every hook answered 202 indexed")
        refused = sorted(status for status in hooks.answers.values() if status != BATCH_ACCEPTED)
        published_stall = steady.longest_gap(killed_at)
        pushed = batch_times(emulator)
        pushed_stall = min(at for at in pushed if at > killed_at) - max(at for at in pushed if at <= killed_at)
        print(f"RabbitMQ node SIGKILLed under {len(events)} events over 16 s: publishing stalled "
              f"{published_stall:.2f} s, pushing stalled {pushed_stall:.2f} s, {steady.refusals} refusal(s); "
              f"receiver: {len(accepted)} hooks answered 202, others {refused}")
        assert steady.refusals == 0
        assert set(refused) <= {503}
        assert quarantine.count(redis.Redis.from_url(redis_url)) == 0
        for worker in (first, second):
            assert worker.popen.poll() is None, worker.log()[-3000:]
            # The ingestion step closes whole even when its acknowledgements meet the dead connection.
            assert INGEST_RESTART_ERROR not in worker.log(), worker.log()[-3000:]
        held = connections(cluster)
        assert set(held) <= {node.name for node in survivors} and held.total() >= 2, held
    finally:
        stop_receiver()
        if not victim.running:
            victim.start()


def test_a_queue_declared_before_a_node_joined_has_no_member_there_until_grown(rabbitmq_cluster: RabbitCluster,
                                                                                unique_name: str):
    """RabbitMQ fixes a quorum queue's members when it is declared (docs/operations.md, "Scaling out")."""
    cluster = rabbitmq_cluster
    seed, *_, late = cluster.nodes
    queue = f"early-{unique_name}"
    late.leave()
    try:
        with Connection(seed.url) as connection:
            for declared in broker.topology(connection, queue):
                declared(connection.default_channel).declare()
    finally:
        late.join(seed)
    early = sorted(node.name for node in cluster.nodes if node is not late)
    assert members(seed)[queue] == ("quorum", early)
    grown = seed.ctl("grow", late.name, "all", "--queue-pattern", f"^{queue}", tool="rabbitmq-queues")
    assert grown.returncode == 0, grown.stderr
    try:
        assert members(seed)[queue] == ("quorum", sorted(node.name for node in cluster.nodes))
    finally:
        with Connection(seed.url) as connection:
            broker.remove(connection, queue)
