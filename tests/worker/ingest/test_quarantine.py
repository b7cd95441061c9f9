"""Quarantine entries stay bounded; `pushsync quarantine replay` and `pushsync dlq replay ID` put what
is valid now back on the broker. Through the real commands, a real Redis and real brokers."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from producers import broker
from producers.events import InvalidEvent, decode_event
from tests.support.raw import drain
from tests.support.times import occurred
from tests.worker.e2e import wait_for
from worker.cli import main
from worker.commands.services import INVALID_INPUT, NOT_FOUND
from worker.deadletter.operator import DeadLetterBrowser
from worker.ingest import quarantine
from worker.ingest.ingestor import POISON_REASON
from worker.store import keys
from worker.store.embedded import free_port

HUGE = 16 * 1024 * 1024
ENTRY_OVERHEAD_CHARS = 1024
"""What an entry with a short reason and target stores beside its capped raw body, at most."""

OCCURRED_AT = occurred()
"""When these tests' events happened: inside the ordering horizon, and the same for every copy of an event."""


def event(n: int, source: str = "replayed", **extra: Any) -> dict[str, Any]:
    return {"schemaVersion": 1, "eventId": f"00000000-0000-4000-8000-{n:012d}", "kind": "item.upsert",
            "source": source, "documentId": f"https://example.com/{source}/{n}", "version": 100 + n,
            "occurredAt": OCCURRED_AT, "item": {"data": f"item {n}"}, **extra}


def message(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def kept(client, invalid: InvalidEvent) -> quarantine.QuarantineEntry:
    """Quarantine `invalid` the way ingestion does."""
    entry = quarantine.entry_for(invalid, queue=broker.EVENTS_QUEUE)
    pipe = client.pipeline()
    quarantine.keep(pipe, entry)
    pipe.execute()
    return entry


def pushsync(redis_url: str, broker_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"REDIS_URL": redis_url, "BROKER_URL": broker_url})


def consume_events(broker_url: str) -> list[dict[str, Any]]:
    """Every event waiting on `pushsync.events`, taken off the broker."""
    return [event for body in drain(broker_url) for event in json.loads(body)["events"]]


def body_of(stored: dict[str, Any]) -> bytes:
    """The raw body (or its prefix) a stored entry holds, as bytes."""
    if stored["raw_encoding"] == "json":
        return json.dumps(stored["raw"], separators=(",", ":")).encode()
    return base64.b64decode(stored["raw"]) if stored["raw_encoding"] == "base64" else stored["raw"].encode()


def canonical(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as the producer library sends them (defaults filled), to compare with what the broker holds."""
    return [json.loads(decode_event(json.dumps(e)).encoded) for e in events]


@pytest.fixture(params=["redis", "rabbitmq"])
def any_broker(request: pytest.FixtureRequest) -> str:
    """Each real broker in turn, its event and dead-letter queues empty."""
    url = request.getfixturevalue("redis_broker_url" if request.param == "redis" else "rabbitmq_url")
    consume_events(url)
    DeadLetterBrowser(url).purge()
    return url


@pytest.mark.parametrize("raw, index, encoding, truncated", [
    (b"\0" * HUGE, None, "text", True),  # what a 16 KB compression bomb decompresses to
    (bytes(range(256)) * (HUGE // 256), None, "base64", True),
    ({"kind": "item.upsert", "source": "s", "item": {"data": '"\\' * HUGE}}, 0, "text", True),
    (b"0123456789" + "😀".encode() * (HUGE // 4), None, "text", True),  # the cap falls inside a surrogate pair
    (b"\0" * 1000, None, "text", False),  # escaped six times over and still under the cap
    (bytes(range(256)) * 160, None, "base64", False),  # 40 KiB: base64 still under the cap
    ({"source": "s", "x": '"' * 1000}, 3, "json", False),
], ids=["nul-bomb", "binary", "huge-json", "emoji", "small-nuls", "small-binary", "small-json"])
def test_an_entry_stores_at_most_a_capped_prefix_with_the_size_and_hash_of_the_whole(
        redis_client, redis_url, redis_broker_url, raw, index, encoding, truncated):
    whole = raw if isinstance(raw, bytes) else json.dumps(raw, separators=(",", ":")).encode()
    entry = kept(redis_client, InvalidEvent(reason="not usable", raw=raw, index=index))
    stored = redis_client.hget(keys.QUARANTINE, entry.id)
    assert len(stored) <= quarantine.RAW_CAP_CHARS + ENTRY_OVERHEAD_CHARS
    loaded = json.loads(stored)
    assert (loaded["size"], loaded["sha256"]) == (len(whole), hashlib.sha256(whole).hexdigest())
    assert (loaded["raw_encoding"], loaded["truncated"]) == (encoding, truncated)
    if truncated:
        assert len(body_of(loaded)) > quarantine.RAW_CAP_CHARS // 8 and whole.startswith(body_of(loaded))
    else:
        assert body_of(loaded) == whole
    shown = pushsync(redis_url, redis_broker_url, "quarantine", "show", entry.id)
    assert shown.exit_code == 0 and json.loads(shown.output)["truncated"] is truncated
    listed = pushsync(redis_url, redis_broker_url, "quarantine", "list")
    assert listed.exit_code == 0 and ("(truncated)" in listed.output) is truncated


def test_a_long_reason_and_target_are_capped_too(redis_client):
    entry = kept(redis_client, InvalidEvent(reason="é" * HUGE, raw={"source": "\0" * HUGE}, index=0))
    assert len(redis_client.hget(keys.QUARANTINE, entry.id)) <= quarantine.ENTRY_MAX_CHARS
    assert entry.reason == "é" * len(entry.reason) and entry.target == "\0" * len(entry.target)


def test_entries_written_before_sizes_were_kept_still_list_show_and_replay(redis_client, redis_url, redis_broker_url):
    old = {"id": "old1", "at": 1.0, "reason": POISON_REASON, "queue": broker.EVENTS_QUEUE, "target": None,
           "index": None, "raw": message(event(1)).decode(), "raw_encoding": "text"}
    redis_client.hset(keys.QUARANTINE, "old1", json.dumps(old))
    redis_client.zadd(keys.QUARANTINE_INDEX, {"old1": 1.0})
    listed = pushsync(redis_url, redis_broker_url, "quarantine", "list")
    assert listed.exit_code == 0 and listed.output.startswith("old1  ") and "1 entry" in listed.output
    shown = json.loads(pushsync(redis_url, redis_broker_url, "quarantine", "show", "old1").output)
    assert (shown["size"], shown["truncated"], shown["raw"]) == (None, False, old["raw"])
    replayed = pushsync(redis_url, redis_broker_url, "quarantine", "replay", "old1")
    assert replayed.exit_code == 0, replayed.output
    assert consume_events(redis_broker_url) == canonical([event(1)]) and quarantine.count(redis_client) == 0


def test_replay_republishes_what_is_valid_now_and_keeps_the_rest_with_its_reason(redis_client, redis_url, any_broker):
    poison = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=message(event(1), event(2))))
    refused = kept(redis_client, InvalidEvent(reason="over an older, lower size limit", raw=event(3), index=4))
    mixed = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=message(event(4), {"kind": "item.upsert"})))
    invalid = kept(redis_client, InvalidEvent(reason="an outdated reason", raw=event(5, version=-1), index=0))
    bomb = kept(redis_client, InvalidEvent(reason="not JSON", raw=b"\0" * HUGE))
    undecodable = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=b"\xff not json"))

    named = pushsync(redis_url, any_broker, "quarantine", "replay", poison.id, refused.id)
    assert named.exit_code == 0, named.output
    assert named.output.splitlines() == [f"{poison.id}  replayed  replayed 2 events", f"{refused.id}  replayed  replayed 1 event",
                                         "replayed 2 entries (3 events); 0 entries stayed"]
    assert consume_events(any_broker) == canonical([event(1), event(2), event(3)])

    everything = pushsync(redis_url, any_broker, "quarantine", "replay", "--all")
    assert everything.exit_code == INVALID_INPUT, everything.output
    lines = everything.output.splitlines()
    assert lines[0] == f"{mixed.id}  partly replayed  replayed 1 event  1 invalid event(s) kept as {mixed.id}.1"
    assert lines[1].startswith(f"{invalid.id}  still invalid  version: ")
    assert lines[2] == f"{bomb.id}  truncated  only a prefix of its {HUGE} bytes was kept"
    assert lines[3].startswith(f"{undecodable.id}  still invalid  not UTF-8 text")
    assert lines[4] == "replayed 0 entries (1 event); 4 entries stayed"
    assert consume_events(any_broker) == canonical([event(4)])

    left = {entry.id: entry for entry in quarantine.list_entries(redis_client)}
    assert sorted(left) == sorted([invalid.id, bomb.id, undecodable.id, f"{mixed.id}.1"])
    assert left[invalid.id].reason.startswith("version: ") and left[invalid.id].raw == event(5, version=-1)
    assert left[bomb.id] == bomb
    assert left[f"{mixed.id}.1"].raw == {"kind": "item.upsert"} and left[f"{mixed.id}.1"].index == 1
    assert left[f"{mixed.id}.1"].at == mixed.at and "documentId" in left[f"{mixed.id}.1"].reason


def test_a_dry_run_changes_nothing_and_an_unknown_id_stays_unreplayed(redis_client, redis_url, redis_broker_url):
    poison = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=message(event(1))))
    dry = pushsync(redis_url, redis_broker_url, "quarantine", "replay", "--all", "--dry-run")
    assert dry.exit_code == 0 and dry.output.splitlines()[-1] == "would replay 1 entry (1 event); 0 entries stayed"
    assert consume_events(redis_broker_url) == [] and quarantine.list_entries(redis_client) == [poison]
    unknown = pushsync(redis_url, redis_broker_url, "quarantine", "replay", "nope")
    assert unknown.exit_code == NOT_FOUND and unknown.output.startswith("nope  not found")
    assert pushsync(redis_url, redis_broker_url, "quarantine", "replay").exit_code == 2


def test_a_broker_that_does_not_answer_stops_the_replay_and_keeps_the_entry(redis_client, redis_url):
    poison = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=message(event(1))))
    broker = f"redis://127.0.0.1:{free_port()}/0"
    down = pushsync(redis_url, broker, "quarantine", "replay", "--all")
    assert down.exit_code == 4 and down.output.startswith(f"pushsync: broker at {broker} does not answer")
    assert quarantine.list_entries(redis_client) == [poison]


def test_a_poison_message_from_an_outage_reaches_its_window_once_replayed(workers, redis_client, redis_url,
                                                                        redis_broker_url):
    poison = kept(redis_client, InvalidEvent(reason=POISON_REASON, raw=message(event(1), event(2))))
    workers.start("worker", {"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url, "PUSHSYNC_WINDOW_SECONDS": "600"})
    replayed = pushsync(redis_url, redis_broker_url, "quarantine", "replay", poison.id)
    assert replayed.exit_code == 0, replayed.output
    window = keys.Target(keys.SOURCE, "replayed").versions
    wait_for(lambda: redis_client.hlen(window) == 2, 30, what="the replayed events in their window")
    assert quarantine.count(redis_client) == 0


def test_purging_every_entry_needs_yes(redis_client, redis_url, redis_broker_url):
    entries = [kept(redis_client, InvalidEvent(reason="r", raw=b"x")) for _ in range(2)]
    refused = pushsync(redis_url, redis_broker_url, "quarantine", "purge", "--all")
    assert refused.exit_code == 2 and "--yes" in refused.output and quarantine.count(redis_client) == 2
    one = pushsync(redis_url, redis_broker_url, "quarantine", "purge", entries[0].id)
    assert one.exit_code == 0 and one.output == "purged 1 entry\n"
    purged = pushsync(redis_url, redis_broker_url, "quarantine", "purge", "--all", "--yes")
    assert purged.exit_code == 0 and purged.output == "purged 1 entry\n" and quarantine.count(redis_client) == 0


def test_dlq_replay_of_one_entry_leaves_the_others(redis_client, redis_url, any_broker):
    letters = DeadLetterBrowser(any_broker, redis_client)
    error = RuntimeError("the service refused it")
    for source in ("a", "b", "c"):
        letters.send(f"source:{source}", f"batch-{source}", [decode_event(json.dumps(event(1, source))).encoded],
                     error, attempts=1)
    ids = {entry.target: entry.id for entry in letters.list()}

    one = pushsync(redis_url, any_broker, "dlq", "replay", ids["source:a"])
    assert one.exit_code == 0 and one.output == "replayed 1 entry (1 event)\n", one.output
    assert consume_events(any_broker) == canonical([event(1, "a")])
    assert sorted(entry.target for entry in letters.list()) == ["source:b", "source:c"]

    unknown = pushsync(redis_url, any_broker, "dlq", "replay", ids["source:b"], "nope")
    assert unknown.exit_code == NOT_FOUND and "not found: nope" in unknown.output
    assert consume_events(any_broker) == canonical([event(1, "b")])

    by_source = pushsync(redis_url, any_broker, "dlq", "replay", "--source", "c")
    assert by_source.exit_code == 0 and consume_events(any_broker) == canonical([event(1, "c")])
    assert letters.depth() == 0


def test_entries_an_earlier_version_indexed_under_the_old_name_are_listed_and_purged(redis_client):
    # Before Cluster support the index had no hash tag of the quarantine's: `pushsync:quarantine:index`.
    old = quarantine.entry_for(InvalidEvent(reason="kept by an earlier version", raw={"source": "a"}, index=0),
                               queue=broker.EVENTS_QUEUE, now=100.0)
    redis_client.hset(keys.QUARANTINE, old.id, old.to_json())
    redis_client.zadd(keys.LEGACY_QUARANTINE_INDEX, {old.id: old.at})
    new = kept(redis_client, InvalidEvent(reason="kept now", raw={"source": "b"}, index=0))
    assert quarantine.count(redis_client) == 2
    assert quarantine.ids(redis_client) == [old.id, new.id]
    assert not redis_client.exists(keys.LEGACY_QUARANTINE_INDEX)
    assert quarantine.purge(redis_client) == 2 and quarantine.count(redis_client) == 0
