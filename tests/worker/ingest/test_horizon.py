"""The ordering horizon (invariant 11): no replay or late delivery can bring back what was deleted.

The end-to-end tests run the real pipeline (producer library or `pushsync dlq|quarantine replay`
-> Redis broker -> worker and beat processes -> emulator over HTTP), with high-water marks that
live seconds instead of days, or with events dated days ago; the property tests check the rule's
boundaries and the argument of docs/architecture.md.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from click.testing import CliRunner
from hypothesis import event, given, settings
from hypothesis import strategies as st

from producers import Publisher
from producers.events import decode_event
from tests.support.ids import examples
from tests.support.times import occurred
from tests.worker.e2e import pipeline_env, wait_for
from tests.worker.observe.test_metrics import scrape, value
from worker.cli import main
from worker.deadletter.operator import DeadLetterBrowser
from worker.ingest import quarantine
from worker.ingest.horizon import FUTURE, TOO_OLD, Horizon
from worker.settings import SettingsError, load_settings
from worker.store import indexes, keys
from worker.store.embedded import EmbeddedRedis, free_port

SOURCE = "replayed"
DOCUMENT = "https://example.com/replayed/1"
MARK_TTL_SECONDS = 3
SKEW_SECONDS = 1
"""Marks live 3 s, so the horizon is 2 s: the update below is too old to order once its mark is gone."""
EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
DAY = 86400.0


def received(client) -> int:
    return int(client.hget(keys.Target(keys.SOURCE, SOURCE).stats, "received") or 0)


def nothing_buffered(client) -> bool:
    return not indexes.count(client, keys.DEADLINES) and not indexes.count(client, keys.CLAIMED)


def test_a_replay_after_the_marks_expired_changes_nothing_in_the_index(workers, clean_emulator, redis_client,
                                                                        redis_url, redis_broker_url, tmp_path):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    port = free_port()
    env = pipeline_env(redis_url, redis_broker_url, emulator,
                       PUSHSYNC_HIGH_WATER_TTL_SECONDS=str(MARK_TTL_SECONDS),
                       PUSHSYNC_CLOCK_SKEW_SECONDS=str(SKEW_SECONDS), PUSHSYNC_METRICS_PORT=str(port),
                       PUSHSYNC_METRICS_DIR=str(tmp_path / "metrics"))
    workers.start("worker", env)
    workers.start("beat", env)
    mark = keys.Target(keys.SOURCE, SOURCE).high_water(DOCUMENT)
    with Publisher(redis_broker_url) as publisher:
        [update] = publisher.publish_many([{"kind": "item.upsert", "source": SOURCE, "documentId": DOCUMENT,
                                            "version": 1, "item": {"data": "old content"}}])
        wait_for(lambda: (emulator.item(SOURCE, DOCUMENT) or {}).get("content") == "old content", what="the update")
        publisher.publish_many([{"kind": "item.delete", "source": SOURCE, "documentId": DOCUMENT, "version": 2}])
        wait_for(lambda: emulator.item(SOURCE, DOCUMENT) is None and redis_client.exists(mark), what="the delete")
        wait_for(lambda: not redis_client.exists(mark), MARK_TTL_SECONDS * 10, what="the mark expired")

        # The very request of the update again, as a replayed or delayed hook would bring it.
        publisher.publish_many([json.loads(update.encoded)])
        wait_for(lambda: quarantine.count(redis_client) or received(redis_client) == 3, what="the replay ingested")
        wait_for(lambda: nothing_buffered(redis_client), what="every window pushed")
    assert emulator.item(SOURCE, DOCUMENT) is None, "the replayed update brought the deleted item back"
    [entry] = quarantine.list_entries(redis_client)
    assert entry.raw["eventId"] == update.event_id and "ordering horizon" in entry.reason, entry

    # Dated a day ahead: a clock gone wrong, or a made-up time that would keep a replay young for ever.
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([{"kind": "item.upsert", "source": SOURCE, "documentId": DOCUMENT, "version": 3,
                                 "occurredAt": occurred(-DAY), "item": {"data": "from the future"}}])
    wait_for(lambda: quarantine.count(redis_client) == 2, what="the future event quarantined")
    assert any("ahead of this worker's clock" in e.reason for e in quarantine.list_entries(redis_client))
    samples = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(samples, "pushsync_events_quarantined_total", cause=TOO_OLD) == 1
    assert value(samples, "pushsync_events_quarantined_total", cause=FUTURE) == 1
    assert emulator.item(SOURCE, DOCUMENT) is None


def test_replaying_a_week_old_dead_letter_or_its_quarantine_entry_changes_nothing(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url):
    """Default settings (marks live 7 days): a dead letter whose events occurred 8 days ago."""
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    env = pipeline_env(redis_url, redis_broker_url, emulator)
    workers.start("worker", env)
    workers.start("beat", env)
    letters = DeadLetterBrowser(redis_broker_url, redis_client)
    letters.purge()
    week_old = {"schemaVersion": 1, "eventId": "week-old", "kind": "item.upsert", "source": SOURCE,
                "documentId": DOCUMENT, "version": 1, "occurredAt": occurred(8 * DAY), "item": {"data": "stale"}}
    letters.send(f"source:{SOURCE}", "batch-1", [decode_event(json.dumps(week_old)).encoded],
                 RuntimeError("the service refused it"), attempts=1)
    cli = {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}
    replayed = CliRunner().invoke(main, ["dlq", "replay"], env=cli)
    assert replayed.exit_code == 0 and "replayed 1 entry (1 event)" in replayed.output, replayed.output
    assert "1 event past the ordering horizon" in replayed.output
    wait_for(lambda: quarantine.count(redis_client) == 1, what="the replayed event quarantined")
    [first] = quarantine.list_entries(redis_client)
    assert first.raw["eventId"] == "week-old" and "ordering horizon" in first.reason and letters.depth() == 0

    again = CliRunner().invoke(main, ["quarantine", "replay", "--all"], env=cli)
    assert again.exit_code == 0, again.output
    wait_for(lambda: [e.id for e in quarantine.list_entries(redis_client)] not in ([], [first.id]),
             what="the entry replayed and quarantined anew")
    [second] = quarantine.list_entries(redis_client)
    assert second.raw["eventId"] == "week-old" and "ordering horizon" in second.reason
    assert nothing_buffered(redis_client) and emulator.item(SOURCE, DOCUMENT) is None


def test_an_event_that_ages_past_the_horizon_while_the_store_is_out_is_quarantined_not_coalesced(
        workers, redis_broker_url, tmp_path):
    """Marks go on expiring while a worker holds a group through a store outage: the group's ages are
    judged again when the store answers."""
    store = EmbeddedRedis(tmp_path / "store")
    try:
        client = redis.Redis.from_url(store.url)
        client.config_set("maxmemory", 1)  # every write refused (OOM): an outage, nobody's fault
        worker = workers.start("worker", {"REDIS_URL": store.url, "BROKER_URL": redis_broker_url,
                                          "PUSHSYNC_WINDOW_SECONDS": "600",
                                          "PUSHSYNC_HIGH_WATER_TTL_SECONDS": str(MARK_TTL_SECONDS),
                                          "PUSHSYNC_CLOCK_SKEW_SECONDS": str(SKEW_SECONDS)})
        with Publisher(redis_broker_url) as publisher:
            [held] = publisher.publish_many([{"kind": "item.upsert", "source": SOURCE, "documentId": DOCUMENT,
                                              "version": 1, "item": {"data": "held"}}])
        wait_for(lambda: "coalescing store refused" in worker.log(), 30, what="the outage met")
        horizon = MARK_TTL_SECONDS - SKEW_SECONDS
        wait_for(lambda: time.time() - held.occurred_at.timestamp() > horizon, 30, what="the event past the horizon")
        client.config_set("maxmemory", 0)
        wait_for(lambda: quarantine.count(client), 30, what="the held event quarantined")
        [entry] = quarantine.list_entries(client)
        assert entry.raw["eventId"] == held.event_id and "ordering horizon" in entry.reason
        assert not client.exists(keys.Target(keys.SOURCE, SOURCE).window)
    finally:
        workers.stop_all()
        store.stop()


def test_the_horizon_must_stay_inside_the_life_of_the_marks():
    assert load_settings(high_water_ttl_seconds=7 * 86400).horizon_seconds == 7 * 86400 - 3600
    assert load_settings(high_water_ttl_seconds=100, clock_skew_seconds=10, ordering_horizon_seconds=90).horizon_seconds == 90
    for wrong in ({"high_water_ttl_seconds": 100, "clock_skew_seconds": 10, "ordering_horizon_seconds": 91},
                  {"high_water_ttl_seconds": 100, "clock_skew_seconds": 100},
                  {"high_water_ttl_seconds": 3600}):
        with pytest.raises(SettingsError, match="PUSHSYNC_ORDERING_HORIZON_SECONDS plus PUSHSYNC_CLOCK_SKEW_SECONDS"):
            load_settings(**wrong)


seconds = st.floats(min_value=0, max_value=30 * DAY, allow_nan=False)


@settings(max_examples=examples(200), deadline=None)
@given(ttl=st.floats(min_value=1, max_value=30 * DAY), skew_share=st.floats(0, 1), horizon_share=st.floats(0.01, 1),
       now=st.floats(0, 40 * 365 * DAY), age=st.floats(-40 * DAY, 40 * DAY))
def test_the_rule_refuses_exactly_outside_its_bounds(ttl, skew_share, horizon_share, now, age):
    skew = ttl * skew_share * 0.99
    horizon = Horizon((ttl - skew) * horizon_share, skew)
    occurred_at = EPOCH + timedelta(seconds=now - age)
    judged_age = (EPOCH + timedelta(seconds=now)).timestamp() - occurred_at.timestamp()
    refusal = horizon.refusal(occurred_at, (EPOCH + timedelta(seconds=now)).timestamp())
    if judged_age > horizon.seconds:
        assert refusal is not None and refusal[0] == TOO_OLD and "ordering horizon" in refusal[1]
    elif -judged_age > horizon.skew_seconds:
        assert refusal is not None and refusal[0] == FUTURE and "clock skew" in refusal[1]
    else:
        assert refusal is None


@settings(max_examples=examples(200), deadline=None)
@given(ttl=st.integers(1, 30 * 86400), skew_share=st.floats(0, 0.99), occurred=seconds, producer_skew_share=st.floats(-1, 1),
       pushed_after=seconds, judged_after=seconds)
def test_an_accepted_event_is_always_ordered_by_a_living_mark(ttl, skew_share, occurred, producer_skew_share,
                                                              pushed_after, judged_after):
    """The argument of invariant 11: an event that outranks this one occurred after it and was pushed after
    that, renewing the mark for TTL; if the rule accepts this event by a clock off by at most the skew,
    that mark is still remembered (true times here; the producer's clock is off by `producer_skew`)."""
    settings_ = load_settings(high_water_ttl_seconds=ttl, clock_skew_seconds=ttl * skew_share)
    horizon = Horizon.of(settings_)
    producer_skew = producer_skew_share * horizon.skew_seconds
    newer_pushed = occurred + pushed_after
    judged = newer_pushed + judged_after
    stamped = EPOCH + timedelta(seconds=occurred + producer_skew)
    accepted = horizon.refusal(stamped, EPOCH.timestamp() + judged) is None
    event("accepted" if accepted else "refused")
    if accepted:
        assert judged - newer_pushed <= settings_.high_water_ttl_seconds + 1e-6
