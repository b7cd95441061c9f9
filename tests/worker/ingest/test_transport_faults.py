"""The events transport loses nothing when a worker dies at the worst instant, on either broker.

The worst instant on kombu's Redis list transport was a worker frozen while it waited for a
message: the broker handed the message over (BRPOP) and the worker was killed before it could
record it as unacknowledged. On the stream, the entry stays pending for the dead consumer until
a living one claims it.
"""

from __future__ import annotations

import os
import resource
import signal
import struct
from pathlib import Path

import pytest
import redis

from producers import Publisher, broker
from tests.support.raw import publish_raw
from tests.worker.e2e import wait_for
from worker.ingest import quarantine
from worker.store import keys

pytestmark = pytest.mark.slow

SOURCE = keys.Target(keys.SOURCE, "frozen")
GIB = 1024**3
CLAIM = {"PUSHSYNC_EVENTS_CLAIM_SECONDS": "2", "PUSHSYNC_WINDOW_SECONDS": "600"}


def events(count: int, start: int = 0) -> list[dict]:
    return [{"kind": "item.upsert", "source": SOURCE.id, "documentId": f"https://example.com/{n}", "version": 1,
             "item": {"data": str(n)}} for n in range(start, start + count)]


def _held_by_a_consumer(broker_url: str) -> bool:
    """Whether the stream handed an entry to a consumer that has not acknowledged it (Redis only)."""
    client = redis.Redis.from_url(broker_url)
    try:
        return client.xpending(broker.events_stream(), broker.CONSUMER_GROUP)["pending"] > 0
    except redis.ResponseError:
        return False
    finally:
        client.close()


def _consuming(broker_url: str) -> bool:
    """Whether a client waits in XREADGROUP on the broker (Redis only)."""
    client = redis.Redis.from_url(broker_url)
    try:
        return any(c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "") for c in client.client_list())
    finally:
        client.close()


def test_a_worker_frozen_while_idle_then_killed_loses_no_message(workers, redis_client, redis_url, events_broker):
    env = {"REDIS_URL": redis_url, "BROKER_URL": events_broker, **CLAIM}
    victim = workers.start("worker", env)
    on_redis = not broker.is_amqp(events_broker)
    if on_redis:
        wait_for(lambda: _consuming(events_broker), 10, 0.05, "the victim waiting on the stream")
    os.killpg(victim.popen.pid, signal.SIGSTOP)
    try:
        with Publisher(events_broker) as publisher:
            publisher.publish_many(events(3))  # confirmed by the broker when this returns
        if on_redis:
            wait_for(lambda: _held_by_a_consumer(events_broker), 10, 0.05, "the message handed to the frozen worker")
    finally:
        victim.kill()
    assert not redis_client.exists(SOURCE.window)
    workers.start("worker", env)
    wait_for(lambda: redis_client.hlen(SOURCE.window) == 3, 30, what="the message ingested by the next worker")
    assert quarantine.count(redis_client) == 0


def test_a_message_whose_workers_keep_dying_is_quarantined_as_poison(workers, redis_client, redis_url,
                                                                       redis_broker_url):
    """Every worker that takes the entry dies holding it: after the delivery limit it is set aside."""
    env = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, **CLAIM}
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events(2))
    client = redis.Redis.from_url(redis_broker_url)
    stream, group = broker.events_stream(), broker.CONSUMER_GROUP
    client.xgroup_create(stream, group, id="0")
    # Consumers that die holding the entry, as a message that crashes its worker would leave it.
    for attempt in range(broker.DELIVERY_LIMIT):
        if attempt == 0:
            client.xreadgroup(group, f"dead-{attempt}", {stream: ">"}, count=1)
        else:
            entry_id = client.xpending_range(stream, group, "-", "+", 1)[0]["message_id"]
            client.xclaim(stream, group, f"dead-{attempt}", 0, [entry_id])
    assert client.xpending_range(stream, group, "-", "+", 1)[0]["times_delivered"] == broker.DELIVERY_LIMIT
    workers.start("worker", env)
    wait_for(lambda: quarantine.count(redis_client) == 1, 30, what="the poison message quarantined")
    entry = quarantine.list_entries(redis_client)[0]
    assert "poison" in entry.reason and entry.index is None
    wait_for(lambda: client.xlen(stream) == 0, 10, what="the poison entry acknowledged")
    assert not redis_client.exists(SOURCE.window)
    client.close()


def _lzma_asking_for_4_gib() -> bytes:
    """A .lzma body whose header asks for a 4 GiB dictionary: the decoder allocates it before it reads a byte."""
    return bytes([0x5D]) + struct.pack("<I", 0xFFFFFFFF) + struct.pack("<q", -1) + b"\0" * 64


def test_a_body_the_worker_lacks_memory_to_decompress_is_quarantined(workers, redis_client, redis_url,
                                                                        redis_broker_url):
    """Where a process may not map 4 GiB (a memory limit, strict overcommit), the decoder's MemoryError
    escaped decoding: the entry, and every entry read with it, was never written, claimed again and
    failed again, forever (the delivery limit is checked after decompression), never quarantined."""
    worker = workers.start("worker", {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, **CLAIM})
    wait_for(lambda: _consuming(redis_broker_url), 10, 0.05, "the worker waiting on the stream")
    # As a memory limit or strict overcommit would: 1 GiB more than it maps now, far below the 4 GiB asked.
    limit = _mapped_bytes(worker.popen.pid) + GIB
    resource.prlimit(worker.popen.pid, resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    publish_raw(redis_broker_url, [_lzma_asking_for_4_gib()], headers={"compression": "application/x-lzma"})
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events(2))
    wait_for(lambda: quarantine.count(redis_client) == 1, 30, what="the body quarantined")
    assert "memory" in quarantine.list_entries(redis_client)[0].reason.lower()
    wait_for(lambda: redis_client.hlen(SOURCE.window) == 2, 30, what="the valid messages after it")
    assert "stream consumer failed" not in worker.log()


def _mapped_bytes(pid: int) -> int:
    """Virtual memory the process maps now (VmSize)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")
