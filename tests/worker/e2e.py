"""Helpers of the end-to-end tests: the pipeline's environment, event histories, expectations."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from tests.support.openapi import assert_conforms

FAST = {
    "PUSHSYNC_WINDOW_SECONDS": "1", "PUSHSYNC_IDLE_AFTER_SECONDS": "1", "PUSHSYNC_SWEEP_SECONDS": "0.5",
    "PUSHSYNC_LEASE_SECONDS": "2", "PUSHSYNC_REAP_AFTER_SECONDS": "3", "PUSHSYNC_RETRY_BUDGET_SECONDS": "90",
    "PUSHSYNC_SINGLE_CALL_MAX_ITEMS": "0",
}
"""Short windows and timers, so that tests take seconds; every batch through a file container, since
these tests fault and count the batch call whatever their windows hold (the single-item calls of
small windows: tests/worker/push/test_small_windows.py)."""


def pipeline_env(redis_url: str, broker_url: str, emulator: Any, **overrides: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "BROKER_URL": broker_url, "COVEO_PUSH_URL": emulator.push_url,
            "COVEO_ORGANIZATION_ID": emulator.organization, "COVEO_API_KEY": emulator.api_key, **FAST, **overrides}


SOURCES = ["docs", "support", "news"]


def run_pipeline(workers: Any, emulator: Any, redis_url: str, broker_url: str, sources: list[str] = SOURCES,
                 **overrides: str) -> None:
    """The whole pipeline against the store at `redis_url` and the broker at `broker_url` (both empty):
    two workers and beat, a history published in two halves; the index must end as last-write-wins,
    with honest REFRESH/IDLE brackets and conforming requests.

    workers: the `workers` fixture; emulator: a clean emulator; overrides: more environment variables.
    """
    from producers import Publisher

    for source in sources:
        emulator.create_source(source)
    env = pipeline_env(redis_url, broker_url, emulator, **overrides)
    workers.start("worker", env)
    workers.start("worker", env)
    workers.start("beat", env)
    events = history(sources, items=40, seed=3)
    with Publisher(broker_url, events_per_message=20) as publisher:
        half = len(events) // 2
        publisher.publish_many(events[:half])
        wait_for(lambda: any(source_calls(emulator.requests(), s) for s in sources), what="a first batch")
        publisher.publish_many(events[half:])
    converge(emulator, events, sources)
    for source in sources:
        wait_for(lambda: emulator.activities(source)["status"] == "IDLE", 30, what=f"IDLE of {source}")
    log = emulator.requests()
    for source in sources:
        calls = source_calls(log, source)
        assert honest_brackets(calls), (source, calls)
        assert calls.count("BATCH") >= 1
    assert_conforms(log)


def history(sources: list[str], *, items: int, seed: int, deletes: int = 3) -> list[dict[str, Any]]:
    """Several versions of each item per source, some deleted, interleaved and out of order."""
    rng = random.Random(seed)
    events = []
    for source in sources:
        for n in range(items):
            for version in rng.sample(range(1, 20), rng.randint(1, 4)):
                item = {"metadata": {"title": f"{n}", "v": version}, "data": f"{source} {n} v{version}"}
                if n % 2:
                    # Long enough to travel compressed: the index must still hold the same text.
                    item |= {"data": f"{source} {n} v{version}. " * 20, "fileExtension": ".txt"}
                events.append({"kind": "item.upsert", "source": source, "version": version,
                               "documentId": f"https://example.com/{source}/{n}", "item": item})
        for n in rng.sample(range(items), deletes):
            events.append({"kind": "item.delete", "source": source, "version": 50,
                           "documentId": f"https://example.com/{source}/{n}"})
    rng.shuffle(events)
    return events


def expected(events: list[dict[str, Any]], source: str) -> dict[str, str]:
    """documentId -> content, last write wins, deleted items absent."""
    newest: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["source"] == source:
            held = newest.get(event["documentId"])
            if held is None or event["version"] > held["version"]:
                newest[event["documentId"]] = event
    return {doc: e["item"]["data"] for doc, e in newest.items() if e["kind"] == "item.upsert"}


def index(emulator: Any, source: str) -> dict[str, str]:
    return {item["documentId"]: item["content"] for item in emulator.items(source)}


def wait_for(condition: Callable[[], Any], timeout: float = 60, interval: float = 0.25, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s: {what}")


def converge(emulator: Any, events: list[dict[str, Any]], sources: list[str], timeout: float = 90) -> None:
    """Wait until every source's index equals its last-write-wins expectation; every Push API
    request sent on the way must conform to the Swagger file."""
    for source in sources:
        want = expected(events, source)
        wait_for(lambda: index(emulator, source) == want, timeout, what=f"index of {source}")
    assert_conforms(emulator.requests())


def source_calls(log: list[dict[str, Any]], source: str) -> list[str]:
    """The source's status calls and batch calls, in order: REFRESH, IDLE, BATCH."""
    calls = []
    for entry in log:
        if f"/sources/{source}/status" in entry["path"] and entry["status"] == 201:
            calls.append(entry["query"].split("statusType=")[1].split("&")[0])
        elif entry["path"].endswith(f"/sources/{source}/documents/batch") and entry["status"] == 202:
            calls.append("BATCH")
    return calls


def honest_brackets(calls: list[str]) -> bool:
    """REFRESH before the first batch, IDLE after the last, no batch between an IDLE and a REFRESH."""
    active = False
    for call in calls:
        if call == "BATCH" and not active:
            return False
        active = call != "IDLE" if call in ("REFRESH", "IDLE", "INCREMENTAL") else active
    return bool(calls) and calls[-1] == "IDLE"
