"""`show` prints an entry whole, with its times in ISO 8601 (UTC), not as epoch seconds."""

from __future__ import annotations

import json
from datetime import datetime

from click.testing import CliRunner

from producers.events import InvalidEvent
from worker.cli import main
from worker.deadletter.operator import DeadLetterBrowser
from worker.ingest import quarantine
from worker.pushapi.errors import InvalidInputError


def show(env: dict[str, str], group: str, entry_id: str) -> dict:
    """What `pushsync GROUP show ENTRY_ID` prints, decoded."""
    result = CliRunner().invoke(main, [group, "show", entry_id], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_dlq_show_prints_the_failure_times_in_iso_8601(redis_client, redis_url, redis_broker_url):
    letters = DeadLetterBrowser(redis_broker_url, redis_client)
    letters.send("source:kb", "b1", [b'{"kind": "item.delete"}'], InvalidInputError("too large"), attempts=2,
                 first_failure=1_700_000_000.25)
    (entry,) = letters.list()
    shown = show({"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}, "dlq", entry.id)
    assert shown["first_failure"] == "2023-11-14T22:13:20.250Z"
    assert 0 <= entry.last_failure - datetime.fromisoformat(shown["last_failure"]).timestamp() < 0.001
    assert shown["id"] == entry.id and shown["attempts"] == 2
    letters.purge()


def test_quarantine_show_prints_when_in_iso_8601(redis_client, redis_url, redis_broker_url):
    entry = quarantine.entry_for(InvalidEvent(reason="bad", raw={"kind": "x"}), queue="pushsync.events",
                                 now=1_700_000_000.5)
    pipe = redis_client.pipeline()
    quarantine.keep(pipe, entry)
    pipe.execute()
    shown = show({"REDIS_URL": redis_url, "BROKER_URL": redis_broker_url}, "quarantine", entry.id)
    assert shown["at"] == "2023-11-14T22:13:20.500Z" and shown["reason"] == "bad"
