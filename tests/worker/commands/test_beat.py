"""`pushsync beat` schedules the sweeps, writes nothing where it was started, and runs alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for
from worker.children import Child
from worker.scheduler import ANOTHER_BEAT
from worker.store import beat_lock, keys

pytestmark = pytest.mark.process

def sweeps(client) -> dict:
    """What the last sweep recorded (when, on which worker)."""
    return client.hgetall(keys.SWEEPS)


def upsert(source: str, n: int) -> dict:
    return {"kind": "item.upsert", "source": source, "version": 1, "documentId": f"https://example.com/{n}",
            "item": {"data": f"item {n}"}}


def test_beat_keeps_its_schedule_in_memory_not_in_the_working_directory(workers, redis_client, redis_url,
                                                                         redis_broker_url, clean_emulator, tmp_path):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    workers.start("worker", env)
    beat = Child("pushsync beat", [sys.executable, "-m", "worker", "beat"], env=env, log_path=tmp_path / "beat.log",
                 cwd=started_in)
    try:
        beat.wait_for_log("beat: Starting...")
        after_start = [sweeps(redis_client)]
        wait_for(lambda: after_start.append(sweeps(redis_client)) or len({tuple(s.items()) for s in after_start}) > 2,
                 30, what="sweeps scheduled by this beat")
    finally:
        beat.stop()
    assert list(started_in.iterdir()) == []


def test_sweeps_that_do_nothing_leave_no_line(workers, redis_client, redis_url, redis_broker_url, clean_emulator):
    clean_emulator.create_source("kb")
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    worker = workers.start("worker", env)
    beat = workers.start("beat", env)
    seen = [sweeps(redis_client)]
    # A sweep records itself where `pushsync status` reads it: wait for a few of them.
    wait_for(lambda: seen.append(sweeps(redis_client)) or len({tuple(s.items()) for s in seen}) > 3, 30,
             what="a few sweeps")
    with Publisher(redis_broker_url) as publisher:
        publisher.publish(upsert("kb", 1))
    worker.wait_for_log("Task pushsync.push_batch[")
    worker.wait_for_log("succeeded")
    assert "Task pushsync.sweep[" not in worker.log() and "Sending due task sweep-windows" not in beat.log()
    assert "claimed batch" in worker.log(), "a sweep that did something says so"


def pushsync_beat(env: dict[str, str], log_path) -> Child:
    return Child("pushsync beat", [sys.executable, "-m", "worker", "beat"], env=env, log_path=log_path)


def refusals(child: Child) -> list[str]:
    return [line for line in child.log().splitlines() if "another beat is running" in line]


def held_by(client, child: Child) -> bool:
    holder = beat_lock.holder(client)
    return holder is not None and holder.pid == child.popen.pid


def test_a_second_beat_is_refused_while_the_first_lives_and_starts_once_it_died(
        workers, redis_client, redis_url, redis_broker_url, clean_emulator, tmp_path):
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator)
    workers.start("worker", env)
    first = workers.start("beat", env)
    wait_for(lambda: held_by(redis_client, first), 30, what="the first beat holding the lock")
    started: list[Child] = []
    try:
        second = pushsync_beat(env, tmp_path / "second.log")
        started.append(second)
        assert second.popen.wait(60) == ANOTHER_BEAT, second.log()
        (line,) = refusals(second)
        assert f"pid {first.popen.pid} on {socket.gethostname()} holds the beat lock" in line
        assert "Traceback" not in second.log()

        wait_for(lambda: redis_client.hget(keys.SWEEPS, "at"), 30, what="a sweep of the first beat")
        shown = subprocess.run([sys.executable, "-m", "worker", "status", "--json"], env={**os.environ, **env},
                               capture_output=True, text=True, timeout=60)
        seen = json.loads(shown.stdout)["beat"]
        assert seen["holder"]["pid"] == first.popen.pid and seen["holder"]["host"] == socket.gethostname()
        assert seen["last_sweep"] is not None
        text = subprocess.run([sys.executable, "-m", "worker", "status"], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=60).stdout
        (beat_line,) = [line for line in text.splitlines() if line.startswith("beat ")]
        assert "last sweep" in beat_line and f"pid {first.popen.pid} on {socket.gethostname()} holds" in beat_line

        # A beat that dies drops nothing: its lock lapses, and a beat restarted at once (as a
        # supervisor does) waits for that instead of calling the dead one another beat.
        first.kill()
        assert beat_lock.holder(redis_client) is not None, "the dead beat's lock outlives it for a while"
        third = pushsync_beat(env, tmp_path / "third.log")
        started.append(third)
        wait_for(lambda: held_by(redis_client, third), 30, what="the new beat holding the lock")

        # A beat that finds its lock taken over (it was frozen past the lock's life) stops too.
        other = beat_lock.Holder("elsewhere", 4242, time.time(), "taken-over")
        redis_client.set(keys.BEAT_LOCK, other.encode())
        assert third.popen.wait(60) == ANOTHER_BEAT, third.log()
        (line,) = refusals(third)
        assert "pid 4242 on elsewhere holds the beat lock" in line and "Traceback" not in third.log()
    finally:
        for child in started:
            child.stop()
        redis_client.delete(keys.BEAT_LOCK)
