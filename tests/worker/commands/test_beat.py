"""`pushsync beat` schedules the sweeps and writes nothing where it was started."""

from __future__ import annotations

import sys

import pytest

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for
from worker.children import Child
from worker.store import keys

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
