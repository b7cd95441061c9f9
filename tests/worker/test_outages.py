"""Outages under steady publishing: nothing quarantined, nothing lost, the index exact afterwards.

A store outage is nobody's fault (invariant 9): ingestion holds its messages unacknowledged until
the store answers, on either broker. The crash lane kills workers every few seconds and restarts
the store and the broker on the way.

Short profiles run by default. `PUSHSYNC_LONG_FAULTS=1` adds the 30 s and 120 s outages and a
crash lane of 200,000 events over two minutes (docs/reliability.md records their figures);
`PUSHSYNC_CRASH_EVENTS` and `PUSHSYNC_CRASH_SECONDS` size the crash lane:

    PUSHSYNC_LONG_FAULTS=1 .venv/bin/python -m pytest tests/worker/test_outages.py
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from producers import Publisher
from tests.support.profiles import LONG, long_only
from tests.support.steady import PATIENT, SteadyPublisher
from tests.worker.e2e import converge, history, pipeline_env, wait_for
from worker.ingest import quarantine
from worker.store import keys
from worker.store.embedded import EmbeddedRedis

pytestmark = pytest.mark.slow

CRASH_EVENTS = int(os.environ.get("PUSHSYNC_CRASH_EVENTS", "200000" if LONG else "600"))
"""About how many events the crash lane publishes."""
CRASH_SECONDS = float(os.environ.get("PUSHSYNC_CRASH_SECONDS", "120" if LONG else "10"))
"""How long the crash lane publishes, killing a worker every KILL_EVERY_SECONDS."""
KILL_EVERY_SECONDS = 5.0 if LONG else 3.0
BROKER_LOST = "Connection to broker lost"
"""What Celery logs when its consumer's broker connection breaks."""


def restart(server: EmbeddedRedis, directory: Path, down_seconds: float) -> EmbeddedRedis:
    """Stop `server`, keep it down for `down_seconds`, start it again on the same port and data."""
    server.stop()
    time.sleep(down_seconds)
    return EmbeddedRedis(directory, port=server.port)


@pytest.mark.timeout(900 if LONG else 300)
@pytest.mark.parametrize("down_seconds", [5, pytest.param(30, marks=long_only), pytest.param(120, marks=long_only)])
def test_a_store_outage_under_steady_publishing_loses_and_quarantines_nothing(
    workers, clean_emulator, events_broker, tmp_path, down_seconds,
):
    emulator = clean_emulator
    sources = ["outage-a", "outage-b"]
    for source in sources:
        emulator.create_source(source)
    directory = tmp_path / "store"
    store = EmbeddedRedis(directory)
    try:
        env = pipeline_env(store.url, events_broker, emulator)
        workers.start("worker", env)
        workers.start("beat", env)
        events = history(sources, items=40, seed=down_seconds)
        client = redis.Redis.from_url(store.url)
        with SteadyPublisher(events_broker, events, seconds=down_seconds + 6):
            wait_for(lambda: client.keys("pushsync:*:stats"), 20, 0.05, "ingestion under way")
            store = restart(store, directory, down_seconds)
        client = redis.Redis.from_url(store.url)
        converge(emulator, events, sources, timeout=90 + down_seconds)
        assert quarantine.count(client) == 0, [e.reason for e in quarantine.list_entries(client)]
        # Quiet through it: the outage is said once, when it starts, and once, when it ends.
        worker_log = workers.children[0].log()
        assert worker_log.count("the store (Redis) does not answer") == 1, worker_log[-3000:]
        assert worker_log.count("the store (Redis) answers again") == 1
        assert "Traceback" not in worker_log, worker_log[-3000:]
    finally:
        workers.stop_all()
        store.stop()


def _killer(workers, env: dict[str, str], victims: list, every: float, stop: threading.Event,
            faults: list[tuple[float, Callable[[], None]]], kills: list[int]) -> threading.Thread:
    """Every `every` seconds SIGKILL the oldest worker and start another; run each fault at its time."""

    def run() -> None:
        started = time.monotonic()
        pending = sorted(faults, key=lambda fault: fault[0])
        while not stop.wait(every):
            victims.pop(0).kill()
            kills[0] += 1
            victims.append(workers.start("worker", env))
            while pending and time.monotonic() - started >= pending[0][0]:
                pending.pop(0)[1]()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(1800 if LONG else 300)
@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_crash_lane_kills_workers_and_restarts_store_and_broker(workers, clean_emulator, tmp_path, broker_kind,
                                                                 request):
    """Steady publishing; a worker SIGKILLed every few seconds; one store restart and one broker restart
    (an embedded Redis, or the session's private RabbitMQ node). The index is exact at the end."""
    emulator = clean_emulator
    sources = ["lane-a", "lane-b", "lane-c"]
    for source in sources:
        emulator.create_source(source)
    servers = {"store": EmbeddedRedis(tmp_path / "store")}

    def bounce(name: str) -> Callable[[], None]:
        return lambda: servers.__setitem__(name, restart(servers[name], tmp_path / name, 1.0))

    if broker_kind == "redis":
        servers["broker"] = EmbeddedRedis(tmp_path / "broker")
        broker_url, bounce_broker = servers["broker"].url, bounce("broker")
    else:
        node = request.getfixturevalue("private_rabbitmq")
        broker_url, bounce_broker = node.url, lambda: node.restart(1.0)

    seconds = CRASH_SECONDS
    faults = [(seconds * 0.3, bounce("store")), (seconds * 0.6, bounce_broker)]
    stop = threading.Event()
    try:
        env = pipeline_env(servers["store"].url, broker_url, emulator, PUSHSYNC_EVENTS_CLAIM_SECONDS="3")
        victims = [workers.start("worker", env), workers.start("worker", env)]
        workers.start("beat", env)
        # history() gives each item 1 to 4 versions and a few deletes: about 2.6 events per item.
        events = history(sources, items=max(CRASH_EVENTS // (len(sources) * 26 // 10), 1), seed=17)
        kills = [0]
        killer = _killer(workers, env, victims, KILL_EVERY_SECONDS, stop, faults, kills)
        with SteadyPublisher(broker_url, events, seconds=seconds, per_message=10 if len(events) < 10_000 else 500):
            pass
        stop.set()
        killer.join(60)
        converge(emulator, events, sources, timeout=180 + len(events) / 1000)
        client = redis.Redis.from_url(servers["store"].url)
        print(f"crash lane ({broker_kind}): {len(events):,} events over {seconds:.0f} s, {kills[0]} workers "
              f"SIGKILLed, {len(faults)} restarts; index exact, nothing quarantined")
        assert quarantine.count(client) == 0, [e.reason for e in quarantine.list_entries(client)]
    finally:
        stop.set()
        workers.stop_all()
        for server in servers.values():
            server.stop()


def _ride_out_restarts(workers, emulator, store_url: str, broker_url: str, bounce: Callable[[], None]) -> None:
    """Publish half of a history and wait until it is pushed, `bounce` the broker, the other half:
    the first worker process is still the one running, unharmed, and it lived through the restart
    connected (the first half was pushed before the bounce, the second after)."""
    emulator.create_source("riding")
    env = pipeline_env(store_url, broker_url, emulator)
    worker = workers.start("worker", env)
    workers.start("beat", env)
    events = history(["riding"], items=30, seed=23)
    halves = [events[i::2] for i in range(2)]
    published: list[dict[str, Any]] = []
    for n, part in enumerate(halves):
        if n:
            bounce()
        with Publisher(broker_url, retry=PATIENT) as publisher:
            publisher.publish_many(part)
        published += part
        converge(emulator, published, ["riding"], timeout=90)
    assert worker.popen.poll() is None, worker.log()[-3000:]
    assert worker.log().count(BROKER_LOST) >= len(halves) - 1, worker.log()[-3000:]
    assert "Unrecoverable error" not in worker.log()


def test_a_worker_rides_out_broker_restarts(workers, clean_emulator, tmp_path):
    """The Redis broker restarts under a living worker: the same worker process goes on."""
    store, directory = EmbeddedRedis(tmp_path / "store"), tmp_path / "broker"
    servers = {"broker": EmbeddedRedis(directory)}
    try:
        _ride_out_restarts(workers, clean_emulator, store.url, servers["broker"].url,
                           lambda: servers.__setitem__("broker", restart(servers["broker"], directory, 2.0)))
    finally:
        workers.stop_all()
        servers["broker"].stop()
        store.stop()


def test_a_worker_rides_out_rabbitmq_restarts(workers, clean_emulator, tmp_path, private_rabbitmq):
    """The private RabbitMQ node stops cleanly and starts again under a living worker: the same
    worker process goes on."""
    store = EmbeddedRedis(tmp_path / "store")
    try:
        _ride_out_restarts(workers, clean_emulator, store.url, private_rabbitmq.url,
                           lambda: private_rabbitmq.restart(2.0))
    finally:
        workers.stop_all()
        store.stop()


def test_a_rabbitmq_node_killed_under_steady_publishing_loses_nothing(workers, clean_emulator, tmp_path,
                                                                       private_rabbitmq):
    """SIGKILL of the broker's Erlang VM (nothing flushed, every connection cut) while events flow, then
    a start on the same data: what the quorum queue confirmed is still there, so the index is exact."""
    emulator = clean_emulator
    sources = ["killed-a", "killed-b"]
    for source in sources:
        emulator.create_source(source)
    store = EmbeddedRedis(tmp_path / "store")
    try:
        env = pipeline_env(store.url, private_rabbitmq.url, emulator)
        worker = workers.start("worker", env)
        workers.start("beat", env)
        events = history(sources, items=40, seed=29)
        client = redis.Redis.from_url(store.url)
        with SteadyPublisher(private_rabbitmq.url, events, seconds=8):
            wait_for(lambda: client.keys("pushsync:*:stats"), 20, 0.05, "ingestion under way")
            private_rabbitmq.kill()
            private_rabbitmq.start()
        converge(emulator, events, sources, timeout=90)
        assert quarantine.count(client) == 0, [e.reason for e in quarantine.list_entries(client)]
        assert worker.popen.poll() is None, worker.log()[-3000:]
    finally:
        workers.stop_all()
        store.stop()


def test_an_event_published_while_the_store_is_down_is_ingested_once_it_is_back(workers, redis_client, events_broker,
                                                                                  tmp_path):
    """The store is down when the event arrives and for 8 s after: the worker holds the message,
    counting nothing against it, and writes it once the store answers (no poison, no quarantine)."""
    directory = tmp_path / "store"
    store = EmbeddedRedis(directory)
    try:
        workers.start("worker", {"REDIS_URL": store.url, "BROKER_URL": events_broker, "PUSHSYNC_WINDOW_SECONDS": "600"})
        port = store.port
        store.stop()
        with Publisher(events_broker) as publisher:
            publisher.publish({"kind": "item.upsert", "source": "patient", "documentId": "https://example.com/1",
                               "version": 1, "item": {"data": "kept"}})
        time.sleep(8)  # the outage itself: what is measured is what happens during it
        store = EmbeddedRedis(directory, port=port)
        client = redis.Redis.from_url(store.url)
        window = keys.Target(keys.SOURCE, "patient").window
        wait_for(lambda: client.hexists(window, "https://example.com/1"), 30,
                 what="the event in its window")
        assert quarantine.count(client) == 0, [e.reason for e in quarantine.list_entries(client)]
    finally:
        workers.stop_all()
        store.stop()
