"""The whole pipeline on a real Redis Cluster and on a real Sentinel-watched primary.

Every Lua script and pipeline of ingestion, claims, releases, leases, attempts, high-water marks,
idle bursts, ranks, the beat and sweep locks, the quarantine and broker-started full runs runs here
through the real worker code: a call whose keys span two slots fails with CROSSSLOT, and the index
would not converge. A Cluster primary killed mid-ingestion is waited out: nothing is counted against
an event, and the index still ends as last-write-wins.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from click.testing import CliRunner

from producers import Publisher
from tests.support.raw import publish_raw
from tests.support.topologies import free_port
from tests.worker.e2e import converge, history, pipeline_env, run_pipeline, wait_for
from worker.cli import main
from worker.ingest import quarantine
from worker.settings import load_settings
from worker.store import keys
from worker.store.connection import connect
from worker.windows.coalesce import Coalescer

pytestmark = pytest.mark.slow

RUN_SOURCE = "rebuilt"
PUBLISH_CHUNK = 10
PUBLISH_PAUSE_SECONDS = 0.05
"""Events published at a time, and the pause after each, while a Cluster primary fails over (about 2 s)."""
QUEUE_DELAY_MINUTES = 15


def test_pipeline_on_a_redis_cluster(workers, clean_emulator, cluster_store, redis_broker_url):
    run_pipeline(workers, clean_emulator, cluster_store.url, redis_broker_url)


def test_pipeline_on_a_sentinel_primary(workers, clean_emulator, sentinel_store, redis_broker_url):
    run_pipeline(workers, clean_emulator, sentinel_store.url, redis_broker_url)


def test_pipeline_on_a_redis_cluster_over_tls(workers, clean_emulator, redis_cluster_tls, redis_broker_url):
    redis_cluster_tls.wait_healthy()
    redis_cluster_tls.flush()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=redis_cluster_tls.nodes[0].port, socket_timeout=2).ping()  # TLS only: plain TCP is refused
    run_pipeline(workers, clean_emulator, redis_cluster_tls.url, redis_broker_url)


def test_a_sentinel_store_over_tls_is_also_the_broker_over_tls(workers, clean_emulator, redis_sentinel_tls):
    redis_sentinel_tls.flush()
    for server in [*redis_sentinel_tls.sentinels, redis_sentinel_tls.primary()]:
        with pytest.raises(redis.ConnectionError):
            redis.Redis(port=server.port, socket_timeout=2).ping()  # TLS only: plain TCP is refused
    # Celery's tasks through kombu's Sentinel transport over TLS, change events through the Sentinel client over TLS.
    run_pipeline(workers, clean_emulator, redis_sentinel_tls.url, redis_sentinel_tls.url, BROKER_URL="")


def _item(n: int, version: int) -> dict:
    return {"kind": "item.upsert", "source": RUN_SOURCE, "version": version, "documentId": f"https://example.com/{n}",
            "item": {"data": f"{n} v{version}"}}


def _contents(emulator) -> dict[str, str]:
    return {i["documentId"].rsplit("/", 1)[1]: i["content"] for i in emulator.items(RUN_SOURCE)}


def test_quarantine_and_a_broker_run_on_a_redis_cluster(workers, clean_emulator, cluster_store, redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(RUN_SOURCE)
    env = pipeline_env(cluster_store.seed_url(), redis_broker_url, emulator)
    workers.start("worker", env)
    workers.start("beat", env)
    store = cluster_store.client()
    before = quarantine.count(store)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([_item(n, 1) for n in range(10)])
    wait_for(lambda: len(emulator.items(RUN_SOURCE)) == 10, 60, what="the seeded items")
    publish_raw(redis_broker_url, [json.dumps({"events": [{"kind": "item.upsert", "source": RUN_SOURCE}]}).encode()])
    wait_for(lambda: quarantine.count(store) == before + 1, 30, what="the invalid event quarantined")
    assert quarantine.list_entries(store, limit=1000)[-1].target == RUN_SOURCE
    # The operator's commands read (and purge) the quarantine and the store on the Cluster too.
    for command in (["quarantine", "list"], ["status"], ["health"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 0, (command, result.output)
    assert RUN_SOURCE in CliRunner().invoke(main, ["quarantine", "list"], env=env).output
    purged = CliRunner().invoke(main, ["quarantine", "purge", "--all", "--yes"], env=env)
    assert purged.exit_code == 0 and quarantine.count(store) == 0, purged.output
    with Publisher(redis_broker_url) as publisher:
        with publisher.full_run(source=RUN_SOURCE, queueDelay=QUEUE_DELAY_MINUTES) as run:
            for n in range(7):
                run.publish(_item(n, 2))
    wait_for(lambda: any(r["path"].endswith("/olderthan") for r in emulator.requests()), 60,
             what="the delete of what the run did not push")
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    wait_for(lambda: _contents(emulator) == {str(n): f"{n} v2" for n in range(7)}, 30, what="the stale items removed")
    target = keys.Target(keys.SOURCE, RUN_SOURCE)
    wait_for(lambda: not store.exists(target.rebuild) and not store.sismember(keys.RUNS_ENDING,
                                                                             target.compound_ref(run.id)),
             30, what="the run concluded and forgotten")


def test_identities_before_items_and_a_dead_letter_replay_on_a_redis_cluster(workers, clean_emulator, cluster_store,
                                                                              redis_broker_url):
    # What a claim records for invariant 7 (its providers' sequences) and the dead letters' per-target index
    # live in other slots than the source's window: on a Cluster each is its own step.
    from tests.worker.test_identities import PROVIDER, SOURCE, identity_events, item_events
    from worker.deadletter.operator import DeadLetterBrowser

    emulator = clean_emulator
    emulator.create_provider(PROVIDER, strict=True)
    emulator.create_source(SOURCE, security_providers=(PROVIDER,))
    emulator.add_fault(method="PUT", path="*/documents/batch", status=400, errorCode="INVALID_JSON",
                       times=1)
    env = pipeline_env(cluster_store.url, redis_broker_url, emulator, PUSHSYNC_SOURCE_PROVIDERS=f"{SOURCE}={PROVIDER}",
                       PUSHSYNC_SOURCE_WINDOWS=f"{PROVIDER}=3")
    workers.start("worker", env)
    workers.start("beat", env)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([*identity_events(), *item_events(5)])
    letters = DeadLetterBrowser(redis_broker_url)
    wait_for(lambda: letters.depth() == 1, 60, what="the refused batch dead-lettered")
    cli_env = {"BROKER_URL": redis_broker_url, "REDIS_URL": cluster_store.url}
    listing = CliRunner().invoke(main, ["dlq", "list", "--source", SOURCE], env=cli_env)
    assert listing.exit_code == 0 and "InvalidRequestError 400 INVALID_JSON" in listing.output, listing.output
    replay = CliRunner().invoke(main, ["dlq", "replay", "--source", SOURCE], env=cli_env)
    assert replay.exit_code == 0, replay.output
    wait_for(lambda: len(emulator.items(SOURCE)) == 5, 60, what="the replayed items indexed")
    assert letters.depth() == 0
    batches = ["identities" if "/providers/" in r["path"] else "items" for r in emulator.requests()
               if r["path"].endswith("/batch") and r["status"] == 202]
    assert batches.index("identities") < batches.index("items"), batches


def test_a_cluster_primary_killed_mid_ingestion_is_waited_out(workers, clean_emulator, cluster_store,
                                                              redis_broker_url):
    emulator = clean_emulator
    sources = ["alpha", "beta", "gamma", "delta"]
    for source in sources:
        emulator.create_source(source)
    env = pipeline_env(cluster_store.url, redis_broker_url, emulator)
    workers.start("worker", env)
    workers.start("worker", env)
    workers.start("beat", env)
    events = history(sources, items=60, seed=11)
    first, rest = events[:len(events) // 3], events[len(events) // 3:]
    victim = keys.Target(keys.SOURCE, sources[0]).window
    killing, published = threading.Event(), threading.Event()

    def publish() -> None:
        with Publisher(redis_broker_url, events_per_message=5) as publisher:
            publisher.publish_many(first)
            # The rest arrives steadily while the primary is down and its replica takes over.
            killing.wait(60)
            for start in range(0, len(rest), PUBLISH_CHUNK):
                publisher.publish_many(rest[start:start + PUBLISH_CHUNK])
                time.sleep(PUBLISH_PAUSE_SECONDS)
        published.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    wait_for(lambda: emulator.items(sources[0]), 60, what="a first batch before the kill")
    # Synced first: this tests the outage, not what asynchronous replication may lose (PUSHSYNC_STORE_MIN_REPLICAS).
    killed, _ = cluster_store.kill_primary_of(victim, synced=True, on_killed=killing.set)
    publisher.join(120)
    assert published.is_set()
    converge(emulator, events, sources, timeout=120)
    store = cluster_store.client()
    for source in sources:
        stats = store.hgetall(keys.Target(keys.SOURCE, source).stats)
        assert b"dead_lettered" not in stats, (source, stats)
    assert quarantine.list_entries(store, limit=10_000, target=sources[0]) == []
    cluster_store.restart(killed)


def test_a_cluster_down_is_waited_out(workers, clean_emulator, cluster_store, redis_broker_url):
    emulator = clean_emulator
    sources = ["north", "south", "east"]
    for source in sources:
        emulator.create_source(source)
    env = pipeline_env(cluster_store.url, redis_broker_url, emulator)
    workers.start("worker", env)
    workers.start("beat", env)
    events = history(sources, items=30, seed=5)
    first, rest = events[:len(events) // 2], events[len(events) // 2:]
    with Publisher(redis_broker_url, events_per_message=5) as publisher:
        publisher.publish_many(first)
        wait_for(lambda: emulator.items(sources[0]), 60, what="a first batch before the shard dies")
        shard = cluster_store.kill_shard_of(keys.Target(keys.SOURCE, sources[0]).window, synced=True)
        publisher.publish_many(rest)
    # Every node answers CLUSTERDOWN while a shard has no living node: nothing is written anywhere.
    wait_for(lambda: any("CLUSTERDOWN" in child.log() or "cluster is down" in child.log()
                         for child in workers.children), 60, what="the workers meeting the Cluster down")
    for node in shard:
        cluster_store.restart(node)
    converge(emulator, events, sources, timeout=120)
    store = cluster_store.client()
    assert quarantine.count(store) == 0
    for source in sources:
        assert b"dead_lettered" not in store.hgetall(keys.Target(keys.SOURCE, source).stats), source


def test_a_worker_started_while_its_cluster_is_unreachable_waits_for_it(workers, clean_emulator, redis_broker_url):
    nowhere = f"redis+cluster://127.0.0.1:{free_port(bus=True)}"
    worker = workers.start("worker", pipeline_env(nowhere, redis_broker_url, clean_emulator))
    with Publisher(redis_broker_url) as publisher:
        publisher.publish(_item(1, 1))
    # Held unacknowledged, as on any outage: the message stays the broker's until the store answers.
    worker.wait_for_log("coalescing store refused the messages", timeout=60)
    assert "Redis Cluster cannot be connected" in worker.log()
    assert worker.popen.poll() is None, worker.log()[-3000:]


def test_a_sentinel_store_is_also_the_broker_when_none_is_set(workers, clean_emulator, sentinel_store):
    # Celery's tasks go through kombu's Sentinel transport, change events through the Sentinel client.
    run_pipeline(workers, clean_emulator, sentinel_store.url, sentinel_store.url, BROKER_URL="")
    # The operator's views of the broker read the events stream and the dead-letter queue there too.
    env = {"REDIS_URL": sentinel_store.url, "BROKER_URL": ""}
    status = CliRunner().invoke(main, ["status", "--json"], env=env)
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["queues"]["pushsync.events"] == 0, status.output
    listed = CliRunner().invoke(main, ["dlq", "list"], env=env)
    assert listed.exit_code == 0, listed.output


def test_a_node_that_lost_the_coalesce_script_gets_it_again(cluster_store):
    # What a restarted node or a replica just promoted answers: NOSCRIPT, for calls already pipelined.
    settings = load_settings(redis_url=cluster_store.url, broker_url="redis://127.0.0.1:6379/0")
    store = connect(settings)
    coalescer = Coalescer(store, settings)
    targets = [keys.Target(keys.SOURCE, f"noscript-{n}") for n in range(6)]
    assert len({cluster_store.primary_of(target.window).port for target in targets}) > 1, "one node only"
    for version in (1, 2):
        for node in cluster_store.nodes:
            node.client().script_flush()
        for target in targets:
            coalescer.add_encoded(target, [("https://example.com/a", f"{version}", json.dumps({"v": version}).encode())])
    for target in targets:
        assert json.loads(store.hget(target.window, "https://example.com/a")) == {"v": 2}
        assert store.hget(target.versions, "https://example.com/a") == b"2"


def test_beat_started_while_its_cluster_is_unreachable_schedules_on(workers, clean_emulator, redis_broker_url):
    nowhere = f"redis+cluster://127.0.0.1:{free_port(bus=True)}"
    beat = workers.start("beat", pipeline_env(nowhere, redis_broker_url, clean_emulator))
    beat.wait_for_log("cannot take the beat lock, the store does not answer", timeout=30)
    assert beat.popen.poll() is None, beat.log()[-3000:]
