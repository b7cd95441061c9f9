"""A paused target uploads nothing the service would refuse, and its backlog drains once the pause ends.

Against the emulator's own allowances (no fault rules): the item allowance (412
DOCUMENT_LIMIT_EXCEEDED, no Retry-After: the pause lasts PUSHSYNC_PAUSE_SECONDS, then one item
probes) and the daily item quota (429 TOO_MANY_DOCUMENTS_DAILY, whose Retry-After points at the
end of the emulator's day: the pause lasts that long).
"""

from __future__ import annotations

import pytest

from producers import Publisher
from tests.worker.e2e import converge, index, pipeline_env, wait_for
from worker.deadletter.operator import DeadLetterBrowser
from worker.store import keys

pytestmark = pytest.mark.slow

SOURCE = "quota"
PAUSE_SECONDS = 1.0
WINDOW_SECONDS = 1.0
FIRST_ITEMS = 200
"""Items of the batch the service refuses first."""
BACKLOG_ITEMS = 300
"""Items published while the source is paused."""
PROBES = 3
"""Refused probes waited for before the allowance is lifted: several pause periods go by."""
SECONDS_PER_DAY = 86_400
DAY_LEFT_SECONDS = 8
"""How much of the emulator's day is left when the items are published: the daily quota's refusal
gives the rest as its Retry-After."""
CLOCK_SLACK_SECONDS = 1.0
"""The emulator's whole-second Retry-After, and the time a request takes."""


def upserts(start: int, count: int) -> list[dict]:
    return [{"kind": "item.upsert", "source": SOURCE, "version": 1, "documentId": f"https://example.com/q/{n}",
             "item": {"data": f"item {n} " * 40, "metadata": {"n": n}}} for n in range(start, start + count)]


def is_upload(entry: dict) -> bool:
    return entry["path"].startswith("/_blob/")


def is_probe(entry: dict) -> bool:
    return entry["method"] == "PUT" and entry["path"].endswith(f"/sources/{SOURCE}/documents")


def refused(log: list[dict], status: int) -> list[dict]:
    return [entry for entry in log if f"/sources/{SOURCE}/documents" in entry["path"] and entry["status"] == status]


def start(workers, emulator, redis_url: str, broker_url: str) -> None:
    env = pipeline_env(redis_url, broker_url, emulator, PUSHSYNC_PAUSE_SECONDS=str(PAUSE_SECONDS),
                       PUSHSYNC_WINDOW_SECONDS=str(WINDOW_SECONDS), PUSHSYNC_SINGLE_CALL_MAX_ITEMS="2")
    workers.start("beat", env)
    workers.start("worker", env)


def test_an_item_limit_pause_probes_with_one_item_and_the_backlog_drains_once_lifted(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.configure(itemAllowance=0)
    start(workers, emulator, redis_url, redis_broker_url)
    first, backlog = upserts(0, FIRST_ITEMS), upserts(FIRST_ITEMS, BACKLOG_ITEMS)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(first)
        refusal = wait_for(lambda: refused(emulator.requests(), 412), 60, what="the first batch refused")[0]
        publisher.publish_many(backlog)
    # Several pause periods end meanwhile, each with one probe the service refuses.
    wait_for(lambda: len(refused(emulator.requests(refusal["id"]), 412)) >= PROBES, 60, what="refused probes")
    paused_log = emulator.requests(refusal["id"])
    assert [entry for entry in paused_log if is_upload(entry)] == []
    assert all(is_probe(entry) for entry in refused(paused_log, 412))
    assert not index(emulator, SOURCE)

    emulator.configure(itemAllowance=None)
    lifted = paused_log[-1]["id"]
    converge(emulator, first + backlog, [SOURCE], timeout=PAUSE_SECONDS + 2 * WINDOW_SECONDS + 15)
    drain = emulator.requests(lifted)
    batches = [entry for entry in drain if entry["path"].endswith("/documents/batch") and entry["status"] == 202]
    # The parked batch (less its probe, accepted alone), then the backlog's window: nothing refused again.
    assert 1 <= len(batches) <= 2
    assert not refused(drain, 412)
    assert DeadLetterBrowser(redis_broker_url).depth() == 0


def test_a_daily_quota_pause_lasts_until_the_retry_after_and_ends_with_a_probe(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.configure(dailyDocumentLimit=0)
    start(workers, emulator, redis_url, redis_broker_url)
    now = emulator.advance_clock(0)["now"]
    emulator.advance_clock(SECONDS_PER_DAY - now % SECONDS_PER_DAY - DAY_LEFT_SECONDS)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(upserts(0, FIRST_ITEMS))
    refusal = wait_for(lambda: refused(emulator.requests(), 429), 60, what="the first batch refused")[0]
    day_end = (refusal["time"] // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY
    # The emulator's day ends (its limit stays 0, so the quota does not come back): the probe is refused again.
    probe = wait_for(lambda: refused(emulator.requests(refusal["id"]), 429), 60, what="the probe")[0]
    assert is_probe(probe)
    # Not after PUSHSYNC_PAUSE_SECONDS: when the service said, at the end of its day.
    assert probe["time"] >= day_end - CLOCK_SLACK_SECONDS
    assert [entry for entry in emulator.requests(refusal["id"]) if is_upload(entry)] == []
    # Refused again: the next pause lasts till the end of the next day, as its Retry-After says.
    until = float(redis_client.hget(keys.Target(keys.SOURCE, SOURCE).pause, "until"))
    assert until + emulator.advance_clock(0)["offset"] >= day_end + SECONDS_PER_DAY - CLOCK_SLACK_SECONDS
