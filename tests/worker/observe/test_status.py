"""`pushsync status` and `pushsync health` against real processes: a healthy pipeline, a stopped
worker, a stopped Redis; and the per-target dead-letter counts through send, replay, purge and repair."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from producers import Publisher
from producers.events.limits import MIB
from tests.worker.e2e import converge, pipeline_env, wait_for
from worker.commands.services import BROKER_DOWN, HEALTHY, NO_WORKER, STORE_DOWN
from worker.deadletter.operator import DeadLetterBrowser
from worker.deadletter.queue import Held, held_per_target
from worker.settings import load_settings
from worker.store import keys
from worker.store.embedded import EmbeddedRedis
from worker.windows.coalesce import Coalescer

REPO = Path(__file__).resolve().parents[3]
OK, SLOW, QUOTA, BAD = "st-ok", "st-slow", "st-quota", "st-bad"
PROVIDER = "st-groups"
RUN_SOURCE = keys.Target(keys.SOURCE, "st-rebuilt")


def pushsync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command line as an operator would."""
    return subprocess.run([sys.executable, "-m", "worker", *args], env={**os.environ, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def status(env: dict[str, str]) -> dict:
    result = pushsync(env, "status", "--json")
    assert result.returncode in (HEALTHY, STORE_DOWN, BROKER_DOWN), result.stderr
    return json.loads(result.stdout)


def rows(seen: dict) -> dict[str, dict]:
    return {row["id"]: row for row in seen["sources"] + seen["providers"]}


def upserts(source: str, count: int, version: int = 1) -> list[dict]:
    return [{"kind": "item.upsert", "source": source, "version": version, "documentId": f"https://example.com/{source}/{n}",
             "item": {"data": f"{source} {n} v{version}"}} for n in range(count)]


def table_row(text: str, name: str) -> list[str]:
    """The cells of the table line of `name` (columns are two or more spaces apart)."""
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return re.split(r"\s{2,}", line)


def test_healthy_pipeline_shows_buffered_paused_pushed_and_dead_lettered_sources(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    for source in (OK, SLOW, QUOTA, BAD):
        emulator.create_source(source)
    emulator.create_provider(PROVIDER)
    # The pause lasts what Retry-After says: an hour, as a day's quota that ran out early would say.
    emulator.add_fault(method="PUT", path=f"*/sources/{QUOTA}/documents/batch", status=429,
                       errorCode="TOO_MANY_DOCUMENTS_DAILY", retryAfter=3600)
    emulator.add_fault(method="PUT", path=f"*/sources/{BAD}/documents/batch", status=400, errorCode="INVALID_JSON",
                       times=1)
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_SOURCE_WINDOWS=f"{SLOW}=300",
                       PUSHSYNC_FIRST_WINDOW_SECONDS="300")
    workers.start("worker", env)
    workers.start("beat", env)
    events = [*upserts(OK, 10), *upserts(SLOW, 7), *upserts(SLOW, 2, version=2), *upserts(QUOTA, 3), *upserts(BAD, 4),
              {"kind": "identity.upsert", "provider": PROVIDER, "version": 1,
               "identity": {"name": "staff", "type": "GROUP"}, "members": [{"name": "ann@example.com", "type": "USER"}]}]
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    converge(emulator, upserts(OK, 10), [OK])

    def settled() -> dict | None:
        seen = status(env)
        found = rows(seen)
        ready = (found.get(QUOTA, {}).get("paused") and found.get(BAD, {}).get("dead_letters", {}).get("events")
                 and found.get(PROVIDER, {}).get("recent", {}).get("pushed_at") and seen["beat"]["alive"])
        return seen if ready else None

    seen = wait_for(settled, 60, interval=0.5, what="a paused, a dead-lettered and a pushed target")
    found = rows(seen)
    assert seen["store"]["error"] is None and seen["broker"]["error"] is None
    assert [worker["name"].split("@")[0] for worker in seen["workers"]] == ["worker-0"]
    assert seen["queues"]["pushsync.dead_letter"] == 1 and seen["dead_letters_indexed"] == 1
    ok, slow, quota, bad = found[OK], found[SLOW], found[QUOTA], found[BAD]
    assert ok["counts"]["pushed"] == len(emulator.items(OK)) == 10
    assert ok["buffered"] == 0 and ok["in_flight"] == [] and ok["recent"]["error"] is None
    assert slow["buffered"] == 7 and slow["counts"]["superseded"] == 2 and slow["in_flight"] == []
    assert slow["oldest_at"] <= seen["at"] and slow["closes_at"] > seen["at"] + 200 and slow["recent"]["pushed_at"] is None
    assert "TOO_MANY_DOCUMENTS_DAILY" in quota["paused"]["reason"] and quota["paused"]["until"] > seen["at"] + 3000
    (held,) = quota["in_flight"]
    assert held["items"] == 3 and held["state"] == "queued" and quota["recent"]["error"].startswith("paused:")
    assert bad["dead_letters"] == {"entries": 1, "events": 4} and "400 INVALID_JSON" in bad["recent"]["error"]
    assert found[PROVIDER]["recent"]["pushed_items"] == 1 and found[PROVIDER]["kind"] == "provider"

    text = pushsync(env, "status")
    assert text.returncode == HEALTHY, text.stderr
    assert "workers     worker-0@" in text.stdout and "beat        alive: last sweep" in text.stdout
    name, buffered, oldest, flight, paused, pushed, error, dead = table_row(text.stdout, SLOW)
    assert (buffered, flight, paused, pushed, error, dead) == ("7", "-", "-", "never", "-", "0")
    assert table_row(text.stdout, OK)[5].endswith(f" ago, {ok['recent']['pushed_items']} items")
    assert table_row(text.stdout, PROVIDER)[5].endswith(" ago, 1 item")
    quota_row, bad_row = table_row(text.stdout, QUOTA), table_row(text.stdout, BAD)
    assert re.fullmatch(r"\w{8} 3 items queued \w+", quota_row[3]) and re.fullmatch(r"59m\d+s left", quota_row[4])
    assert f"  {QUOTA}: paused: {quota['paused']['reason']}\n" in text.stdout
    assert bad_row[6].endswith(" ago") and bad_row[7] == "4 events (1 entry)"
    assert f"  {BAD}: last error: {bad['recent']['error']}\n" in text.stdout
    health = pushsync(env, "health")
    assert health.returncode == HEALTHY and "worker-0@" in health.stdout, health.stderr


def _interruptible() -> None:
    """Ctrl-C's default in the child: a session started in the background (`pytest &`) ignores SIGINT, and a
    Python started with it ignored never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.process
def test_watch_redraws_until_interrupted(redis_client, redis_url, redis_broker_url):
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}
    watch = subprocess.Popen([sys.executable, "-m", "worker", "status", "--watch", "0.2", "--json"],
                             env={**os.environ, **env}, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, preexec_fn=_interruptible)
    try:
        first, second = json.loads(watch.stdout.readline()), json.loads(watch.stdout.readline())
        assert second["at"] > first["at"] and second["workers"] == []
    finally:
        watch.send_signal(signal.SIGINT)
        _, errors = watch.communicate(timeout=30)
    assert watch.returncode == 0 and "Traceback" not in errors


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_a_stopped_worker_fails_health_and_leaves_status_with_no_worker(request, workers, redis_client, redis_url,
                                                                        broker_kind):
    broker_url = request.getfixturevalue("redis_broker_url" if broker_kind == "redis" else "rabbitmq_url")
    env = {"REDIS_URL": redis_url, "BROKER_URL": broker_url}
    worker = workers.start("worker", env)
    named = pushsync(env, "health", "--worker", f"worker-0@{socket.gethostname()}")
    assert named.returncode == HEALTHY, named.stderr
    worker.stop()
    health = pushsync(env, "health")
    assert health.returncode == NO_WORKER and health.stdout == ""
    assert health.stderr.startswith("unhealthy: no worker answered a ping within 1s") and len(health.stderr.splitlines()) == 1
    assert pushsync(env, "health", "--no-worker").returncode == HEALTHY
    seen = status(env)
    assert seen["workers"] == [] and seen["broker"]["error"] is None
    assert "workers     none answered" in pushsync(env, "status").stdout


def test_a_stopped_redis_fails_health_and_status_says_so(workers, tmp_path, redis_broker_url):
    store = EmbeddedRedis(tmp_path / "store")
    env = {"REDIS_URL": store.url, "BROKER_URL": redis_broker_url}
    try:
        workers.start("worker", env)
        assert pushsync(env, "health").returncode == HEALTHY
    finally:
        store.stop()
    health = pushsync(env, "health")
    assert health.returncode == STORE_DOWN
    assert health.stderr.strip() == (f"unhealthy: Redis (store) at {store.url} does not answer: "
                                     f"Error 111 connecting to 127.0.0.1:{store.port}. Connection refused.")
    text = pushsync(env, "status")
    assert text.returncode == STORE_DOWN and "Traceback" not in text.stderr
    assert f"store       Redis (store) at {store.url} does not answer" in text.stdout
    assert "beat        unknown: the store does not answer" in text.stdout
    assert "workers     worker-0@" in text.stdout, "the broker still answers, and so does the worker"
    seen = status(env)
    assert seen["store"]["error"] and seen["sources"] == [] and seen["broker"]["error"] is None


@pytest.mark.process
def test_health_names_a_broker_that_does_not_answer(redis_url):
    from worker.store.embedded import free_port

    env = {"REDIS_URL": redis_url, "BROKER_URL": f"amqp://guest:secret@127.0.0.1:{free_port()}//"}
    health = pushsync(env, "health")
    assert health.returncode == BROKER_DOWN and "secret" not in health.stderr
    assert health.stderr.startswith("unhealthy: broker at amqp://guest:**@127.0.0.1:")


def test_dead_letter_counts_follow_send_replay_purge_and_a_full_listing_repairs_them(redis_client, redis_broker_url):
    letters = DeadLetterBrowser(redis_broker_url, redis_client)
    letters.purge()
    error = RuntimeError("the service refused it")
    letters.send("source:a", "b1", [json.dumps(event).encode() for event in upserts("a", 3)], error, attempts=1)
    letters.send("source:b", "b2", [json.dumps(event).encode() for event in upserts("b", 1)], error, attempts=1)
    letters.send("source:b", "b3", [json.dumps(event).encode() for event in upserts("b", 1, 2)], error, attempts=1)
    assert held_per_target(redis_client) == {"source:a": Held(1, 3), "source:b": Held(2, 2)}
    assert redis_client.hget(keys.Target("source", "a").recent, "error") == b"RuntimeError: the service refused it"
    assert letters.purge(target="b") == 2
    assert held_per_target(redis_client) == {"source:a": Held(1, 3)}
    # A crash between the broker and the store: the index lost one entry and kept a gone one.
    redis_client.delete(keys.DEAD_LETTER_INDEX)
    redis_client.hset(keys.DEAD_LETTER_INDEX, "gone", json.dumps({"target": "source:c", "events": 9, "at": 0}))
    assert [entry.target for entry in letters.list()] == ["source:a"]
    assert held_per_target(redis_client) == {"source:a": Held(1, 3)}
    assert [entry.target for entry in letters.replay(target="a")] == ["source:a"]
    assert held_per_target(redis_client) == {} and letters.depth() == 0


@pytest.mark.process
def test_status_lists_nothing_on_an_empty_store(redis_client, redis_url, redis_broker_url):
    seen = status({"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url})
    assert seen["sources"] == [] and seen["providers"] == [] and seen["beat"]["last_sweep"] is None
    assert seen["beat"]["holder"] is None
    assert redis.Redis.from_url(redis_url).dbsize() == 0, "status only reads"


ENDED = {"task-failed", "task-succeeded"}


def test_a_monitor_such_as_flower_sees_pushes_not_sweeps_and_a_dead_letter_as_a_failure(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    clean_emulator.create_source(OK)  # BAD does not exist: its batch is dead-lettered (404)
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    workers.start("worker", env)
    workers.start("beat", env)
    names: dict[str, str] = {}
    kinds: dict[str, list[str]] = {}

    def seen(event: dict) -> None:
        if event["type"].startswith("task-"):
            names.setdefault(event["uuid"], event.get("name", ""))
            kinds.setdefault(event["uuid"], []).append(event["type"])

    monitor = Celery(broker=redis_broker_url)
    with monitor.connection_for_read() as connection:
        receiver = monitor.events.Receiver(connection, handlers={"*": seen})
        with Publisher(redis_broker_url) as publisher:
            publisher.publish_many(upserts(OK, 2) + upserts(BAD, 1))
        started = time.monotonic()
        for _ in receiver.itercapture(limit=None, timeout=30, wakeup=True):
            outcomes = {uuid: kinds[uuid][-1] for uuid in kinds if names.get(uuid)}
            # Several beat periods (0.5 s) pass, so sweeps had every chance to show up.
            # A task may carry both sources' batches: the one with the dead-lettered batch fails.
            if ("task-failed" in outcomes.values() and set(outcomes.values()) <= ENDED
                    and time.monotonic() - started > 3):
                break
            assert time.monotonic() - started < 40, (names, kinds)
    assert "pushsync.sweep" not in names.values() and "" not in names.values(), names
    final = [kinds[uuid][-1] for uuid in kinds if names[uuid] == "pushsync.push_batch"]
    assert final.count("task-failed") == 1 and set(final) <= ENDED, kinds
    assert len(clean_emulator.items(OK)) == 2, "the batch that could be pushed was, in whichever task"
    pushes = [events for uuid, events in kinds.items() if names[uuid] == "pushsync.push_batch"]
    assert all(events[:2] == ["task-sent", "task-received"] for events in pushes), kinds


@pytest.mark.process
def test_status_says_when_a_full_run_holds_the_window_and_for_how_much(redis_client, redis_url, redis_broker_url):
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}
    coalescer = Coalescer(redis_client, load_settings())
    coalescer.add_encoded(RUN_SOURCE, [(f"https://example.com/{n}", f"{n}.0", json.dumps({"n": n}).encode())
                                       for n in range(3)])
    buffered = int(redis_client.hget(RUN_SOURCE.window_meta, "bytes"))
    redis_client.hset(RUN_SOURCE.rebuild, mapping={"id": "run", "state": "feeding", "window_bytes": 2 * MIB,
                                                   "saved_at": repr(time.time())})

    row = rows(status(env))[RUN_SOURCE.id]
    assert (row["buffered"], row["buffered_bytes"], row["held_for"]) == (3, buffered, 2 * MIB)
    text = pushsync(env, "status").stdout
    assert table_row(text, RUN_SOURCE.id)[1] == "3 held"
    assert (f"  {RUN_SOURCE.id}: a full run holds the window open until it holds 2.0 MiB "
            f"({buffered / MIB:,.1f} MiB so far), to fill one file container") in text

    redis_client.hset(RUN_SOURCE.rebuild, "window_bytes", buffered)
    assert rows(status(env))[RUN_SOURCE.id]["held_for"] is None, "a window that holds enough is not held"
    redis_client.hset(RUN_SOURCE.rebuild, mapping={"window_bytes": 2 * MIB, "state": "finishing"})
    text = pushsync(env, "status").stdout
    assert table_row(text, RUN_SOURCE.id)[1] == "3" and "holds the window open" not in text


def test_browses_of_the_dead_letter_queue_take_turns(redis_client, redis_broker_url):
    # A browse takes every entry off the queue for a moment: the console and a `pushsync dlq` at
    # once must each still see the whole queue.
    letters = DeadLetterBrowser(redis_broker_url, redis_client)
    letters.purge()
    error = RuntimeError("refused")
    for n in range(20):
        letters.send("source:a", f"b{n}", [json.dumps(upserts("a", 1, n + 1)[0]).encode()], error, attempts=1)
    seen: list[int] = []

    def browse() -> None:
        for _ in range(5):
            seen.append(len(DeadLetterBrowser(redis_broker_url, redis_client).list()))

    threads = [threading.Thread(target=browse) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == [20] * 15


def test_listing_dead_letters_on_redis_never_takes_an_entry_off_the_queue(tmp_path):
    # kombu's Redis transport pops a message before it records it as unacknowledged: a listing
    # killed between the two (the console's page, `pushsync dlq list`) would lose that entry. A
    # private Redis reports every command on the queue's key: a listing makes none that pops.
    broker_server = EmbeddedRedis(tmp_path / "broker")
    try:
        client = redis.Redis.from_url(broker_server.url)
        client.config_set("notify-keyspace-events", "Kl")
        letters = DeadLetterBrowser(broker_server.url)
        for n in range(3):
            letters.send("source:a", f"b{n}", [json.dumps(upserts("a", 1, n + 1)[0]).encode()],
                         RuntimeError("refused"), attempts=1)
        watcher = client.pubsub()
        watcher.subscribe("__keyspace@0__:pushsync.dead_letter")
        watcher.get_message(timeout=1)
        listed = letters.list()
        touched = [message["data"] for message in iter(lambda: watcher.get_message(timeout=0.2), None)]
        assert [entry.batch_id for entry in listed] == ["b0", "b1", "b2"]
        assert touched == [] and client.llen("pushsync.dead_letter") == 3
        watcher.close()
    finally:
        broker_server.stop()
