"""A real worker process ingests published events into Redis windows, newest version per item."""

from __future__ import annotations

import json
import random

import pytest

from producers import Publisher
from tests.support.raw import publish_raw, purge_rabbit
from tests.support.times import occurred
from tests.worker.e2e import wait_for
from worker.ingest import quarantine
from worker.store import indexes, keys

SOURCES = ("alpha", "beta", "gamma")

OCCURRED_AT = occurred()
"""When these tests' events happened: inside the ordering horizon, and the same for every copy of an event."""


def event(source: str, n: int, version: int, **extra) -> dict:
    return {"kind": "item.upsert", "source": source, "documentId": f"https://example.com/{source}/{n}",
            "version": version, "item": {"metadata": {"title": f"{source} {n} v{version}"}, "data": f"v{version}"},
            **extra}


def shuffled_history(rng: random.Random, items: int = 30, versions: int = 4) -> tuple[list[dict], dict]:
    """Every version of every item, shuffled, with some duplicated; and the newest per item."""
    events, newest = [], {}
    for source in SOURCES:
        for n in range(items):
            for version in range(1, versions + 1):
                events.append(event(source, n, version * 10))
            newest[(source, f"https://example.com/{source}/{n}")] = versions * 10
    events += rng.sample(events, len(events) // 5)
    rng.shuffle(events)
    return events, newest


def window_versions(client, source: str) -> dict[str, int]:
    target = keys.Target(keys.SOURCE, source)
    return {k.decode(): int(v.split(b".")[0]) for k, v in client.hgetall(target.versions).items()}


def received(client) -> int:
    return sum(int(client.hget(keys.Target(keys.SOURCE, s).stats, "received") or 0) for s in SOURCES)


def expect_newest(client, newest: dict, total: int) -> None:
    wait_for(lambda: received(client) == total)
    for (source, document_id), version in newest.items():
        assert window_versions(client, source)[document_id] == version
        stored = json.loads(keys_get(client, source, document_id))
        assert stored["version"] == version and stored["item"]["data"] == f"v{version}"


def keys_get(client, source, document_id):
    return client.hget(keys.Target(keys.SOURCE, source).window, document_id)


def worker_env(redis_url: str, broker_url: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "BROKER_URL": broker_url, "PUSHSYNC_WINDOW_SECONDS": "600"}


@pytest.mark.parametrize("broker_kind", ["redis", "rabbitmq"])
def test_library_publish_out_of_order_keeps_newest(request, workers, redis_client, redis_url, broker_kind):
    broker_url = request.getfixturevalue("redis_broker_url" if broker_kind == "redis" else "rabbitmq_url")
    if broker_kind == "rabbitmq":
        purge_rabbit(broker_url)
    events, newest = shuffled_history(random.Random(7))
    workers.start("worker", worker_env(redis_url, broker_url))
    with Publisher(broker_url, events_per_message=25) as publisher:
        publisher.publish_many(events)
    expect_newest(redis_client, newest, len(events))
    assert indexes.count(redis_client, keys.DEADLINES) == len(SOURCES)


def test_single_event_messages_and_cli_publish(workers, redis_client, redis_url, redis_broker_url, tmp_path):
    from click.testing import CliRunner

    from worker.cli import main

    events, newest = shuffled_history(random.Random(11), items=10)
    workers.start("worker", worker_env(redis_url, redis_broker_url))
    half = len(events) // 2
    with Publisher(redis_broker_url, events_per_message=1) as publisher:
        publisher.publish_many(events[:half])
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text("\n".join(json.dumps(e) for e in events[half:]) + "\n")
    result = CliRunner().invoke(main, ["publish", str(ndjson), "--broker-url", redis_broker_url])
    assert result.exit_code == 0, result.output
    expect_newest(redis_client, newest, len(events))


def test_stale_events_are_dropped_and_counted(workers, redis_client, redis_url, redis_broker_url):
    target = keys.Target(keys.SOURCE, "alpha")
    redis_client.set(target.high_water("https://example.com/alpha/1"), "50.0")
    workers.start("worker", worker_env(redis_url, redis_broker_url))
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([event("alpha", 1, 40), event("alpha", 1, 50), event("alpha", 2, 1)])
    wait_for(lambda: int(redis_client.hget(target.stats, "received") or 0) == 3)
    assert window_versions(redis_client, "alpha") == {"https://example.com/alpha/2": 1}
    assert int(redis_client.hget(target.stats, "stale")) == 2


BAD_BODIES = [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b"[1, 2, 3]", 'expected a message of the form {"events"'),
    (json.dumps({"events": [{**event("alpha", 1, 1), "kind": "item.rename"}]}).encode(), "kind"),
    (json.dumps({"events": [{k: v for k, v in event("alpha", 1, 1).items() if k != "version"}]}).encode(), "version"),
    (json.dumps({"events": [event("alpha", 1, "7")]}).encode(), "version"),
    (json.dumps({"events": [event("alpha", 1, 1.5)]}).encode(), "version"),
    (json.dumps({"events": [{**event("alpha", 1, 1), "documentId": "not a uri"}]}).encode(), "documentId"),
    (json.dumps({"events": [event("alpha", 1, 1, item={"data": "x" * (10 * 1024 * 1024)})]}).encode(), "limit"),
]


def complete(obj: dict) -> dict:
    return {"schemaVersion": 1, "eventId": "00000000-0000-4000-8000-000000000001",
            "occurredAt": OCCURRED_AT, **obj}


def test_bad_messages_are_quarantined_and_never_block_the_rest(workers, redis_client, redis_url, redis_broker_url):
    workers.start("worker", worker_env(redis_url, redis_broker_url))
    good = json.dumps({"events": [complete(event("beta", 1, 1))]}).encode()
    bodies = [json.dumps({"events": [complete(e) for e in json.loads(body)["events"]]}).encode()
              if body.startswith(b"{") else body for body, _ in BAD_BODIES]
    publish_raw(redis_broker_url, [*bodies, good])
    wait_for(lambda: quarantine.count(redis_client) == len(BAD_BODIES))
    wait_for(lambda: window_versions(redis_client, "beta") == {"https://example.com/beta/1": 1})
    entries = quarantine.list_entries(redis_client)
    for (_, reason), entry in zip(BAD_BODIES, sorted(entries, key=lambda e: e.at)):
        assert reason in entry.reason, (reason, entry.reason)
    assert entries[0].raw_encoding == "base64"

