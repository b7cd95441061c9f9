"""Invariant 10, fenced pushes: a task that stalled past its lease makes no further Push API call."""

from __future__ import annotations

import os
import re
import signal

import pytest

from producers import Publisher
from tests.worker.e2e import index, pipeline_env, wait_for
from worker.store import keys

pytestmark = pytest.mark.slow

SOURCE = "fenced"
ITEMS = 5
UPLOAD_LATENCY_SECONDS = 3
"""Holds the first upload on the emulator long enough to freeze its sender in the middle of it."""
PUSH_ENDED = re.compile(r"Task pushsync\.push_batch\[[^]]+\] (succeeded|raised)")


def versions(version: int) -> list[dict]:
    return [{"kind": "item.upsert", "source": SOURCE, "version": version, "documentId": f"https://example.com/{n}",
             "item": {"data": f"item {n} v{version}"}} for n in range(ITEMS)]


def contents(version: int) -> dict[str, str]:
    return {event["documentId"]: event["item"]["data"] for event in versions(version)}


def test_a_worker_frozen_past_its_lease_makes_no_call_after_its_batch_was_taken_over(workers, clean_emulator,
                                                                                     redis_client, redis_url,
                                                                                     redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path="/_blob/*", latency=UPLOAD_LATENCY_SECONDS, times=1)
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_LEASE_SECONDS="1",
                       PUSHSYNC_REAP_AFTER_SECONDS="1.5")
    beat = workers.start("beat", env)
    frozen = workers.start("worker", env)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(versions(1))
    wait_for(lambda: not emulator.faults(), 30, interval=0.02, what="the first worker's upload held by the emulator")
    os.killpg(frozen.popen.pid, signal.SIGSTOP)
    try:
        assert redis_client.keys("pushsync:*:lease"), "the frozen worker holds the batch's lease mid-push"
        successor = workers.start("worker", env)
        wait_for(lambda: index(emulator, SOURCE) == contents(1), 30, what="the batch pushed by the successor")
        with Publisher(redis_broker_url) as publisher:
            publisher.publish_many(versions(2))
        wait_for(lambda: index(emulator, SOURCE) == contents(2), 30, what="the newer window pushed")
        wait_for(lambda: emulator.activities(SOURCE)["status"] == "IDLE", 30, what="the burst closed")
        # From here on, the frozen worker is the only one left that could call the service.
        successor.stop()
        beat.stop()
        wait_for(lambda: not redis_client.zcard(keys.CLAIMED), 10, what="no batch left claimed")
        mark = emulator.requests()[-1]["id"]
    finally:
        os.killpg(frozen.popen.pid, signal.SIGCONT)
    frozen.wait_until(lambda: PUSH_ENDED.search(frozen.log()), timeout=30)
    emulator.wait_idle()
    assert [(r["method"], r["path"]) for r in emulator.requests(since=mark)] == []
    assert index(emulator, SOURCE) == contents(2)
    assert "stopping this push without another call" in frozen.log()
