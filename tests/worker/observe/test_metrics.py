"""Metrics scraped over HTTP after real runs: a prefork worker's endpoint (its pool children's
counts added up) against what the emulator saw and the queues hold, and the webhook receiver's."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from producers import Publisher
from producers.webhook.signatures import pushsync_signature
from tests.worker.e2e import converge, pipeline_env, wait_for
from worker import hooks, runtime
from worker.children import Child
from worker.deadletter.operator import DeadLetterBrowser
from worker.observe import metric_files
from worker.store import keys
from worker.store.embedded import free_port

SOURCES = ["docs", "support"]
GHOST = "ghost"
"""A source the emulator does not have: its batches get 404 and are dead-lettered."""
SLOW = "slow"
"""A source whose window stays open for an hour, its first one too: its event is still buffered when scraped."""
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample the endpoint serves, by name and labels."""
    text = requests.get(url, timeout=10).text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def upsert(source: str, n: int, version: int) -> dict[str, Any]:
    return {**delete(source, n, version), "kind": "item.upsert",
            "item": {"metadata": {"title": f"{n}"}, "data": f"{source} {n} v{version}"}}


def delete(source: str, n: int, version: int) -> dict[str, Any]:
    return {"kind": "item.delete", "source": source, "version": version,
            "documentId": f"https://example.com/{source}/{n}"}


def operation(entry: dict[str, Any]) -> str:
    """The client operation that sent a request of the emulator's log."""
    method, path = entry["method"], entry["path"]
    if path.startswith("/_blob/"):
        return "upload"
    if method == "POST" and path.endswith("/files"):
        return "create_file_container"
    if method == "PUT" and path.endswith("/documents/batch"):
        return "push_documents_batch"
    if method == "POST" and path.endswith("/status"):
        return "set_source_status"
    raise AssertionError(f"unexpected request {method} {path}")


def file_id(entry: dict[str, Any]) -> str:
    return entry["query"].split("fileId=")[1].split("&")[0]


def requests_by_pid(directory: Path) -> dict[int, float]:
    """Push API requests each process of the worker counted, from its own value file."""
    counted = {}
    for path in directory.glob("counter_*.db"):
        for family in MultiProcessCollector.merge([str(path)]):
            if family.name == "pushsync_push_api_requests":
                counted[int(path.stem.split("_")[1])] = sum(sample.value for sample in family.samples)
    return counted


def test_worker_metrics_add_up_to_what_the_emulator_saw(workers, clean_emulator, redis_client, redis_url,
                                                         redis_broker_url, tmp_path):
    emulator = clean_emulator
    for source in [*SOURCES, SLOW]:
        emulator.create_source(source)
    # The first batch call waits out a Retry-After while the other pool child pushes the rest.
    emulator.add_fault(method="PUT", path="*/documents/batch", status=429, retryAfter=1, times=1)
    directory = tmp_path / "metrics"
    port = free_port()
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_METRICS_PORT=str(port),
                       PUSHSYNC_METRICS_DIR=str(directory), PUSHSYNC_SOURCE_WINDOWS=f"{SLOW}=3600",
                       PUSHSYNC_FIRST_WINDOW_SECONDS="3600")
    worker = workers.start("worker", env, "--concurrency", "2")
    workers.start("beat", env)
    url = f"http://127.0.0.1:{port}/metrics"

    # Distinct items first, then updates and deletes once those are in: what is pushed is known
    # whatever the windows' timing.
    first = [upsert("docs", n, 1) for n in range(20)] + [upsert("support", n, 1) for n in range(15)]
    ghost = [upsert(GHOST, n, 1) for n in range(5)]
    second = ([upsert("docs", n, 2) for n in range(5)] + [delete("docs", n, 3) for n in range(15, 20)]
              + [delete("support", n, 2) for n in range(3)])
    started = time.time()
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([*first, *ghost, upsert(SLOW, 0, 1)])
        converge(emulator, first, SOURCES)
        publisher.publish_many(second)
    converge(emulator, first + second, SOURCES)
    for source in SOURCES:
        wait_for(lambda: emulator.activities(source)["status"] == "IDLE", 30, what=f"IDLE of {source}")
    wait_for(lambda: DeadLetterBrowser(redis_broker_url).depth(), 30, what="the ghost's events dead-lettered")

    log = emulator.requests()
    calls = Counter((operation(entry), str(entry["status"])) for entry in log)
    wait_for(lambda: {(op, status): value(scrape(url), "pushsync_push_api_requests_total", operation=op, status=status)
                      for op, status in calls} == calls, 30, what="every request counted")
    samples = scrape(url)
    counted = Counter({(dict(labels)["operation"], dict(labels)["status"]): count for (name, labels), count
                       in samples.items() if name == "pushsync_push_api_requests_total"})
    assert counted == calls
    assert calls[("push_documents_batch", "429")] == 1
    assert value(samples, "pushsync_push_api_retries_total", operation="push_documents_batch") == 1
    assert value(samples, "pushsync_retry_after_wait_seconds_total", operation="push_documents_batch") >= 1

    uploaded = {entry["path"].rsplit("/", 1)[1]: entry["bytes"] for entry in log if operation(entry) == "upload"}
    expected_items = {"docs": (25, 5), "support": (15, 3)}
    for source in SOURCES:
        accepted = [e for e in log if e["path"].endswith(f"/sources/{source}/documents/batch") and e["status"] == 202]
        labels = {"kind": "source", "target": source}
        assert value(samples, "pushsync_batches_pushed_total", **labels) == len(accepted)
        assert value(samples, "pushsync_windows_flushed_total", **labels) == len(accepted)
        assert value(samples, "pushsync_pushed_bytes_total", **labels) == sum(uploaded[file_id(e)] for e in accepted)
        items, deletes = expected_items[source]
        assert value(samples, "pushsync_items_pushed_total", **labels) == items
        assert value(samples, "pushsync_deletes_pushed_total", **labels) == deletes
    batches = sum(value(samples, "pushsync_batches_pushed_total", kind="source", target=s) for s in SOURCES)
    assert value(samples, "pushsync_push_duration_seconds_count", kind="source") == batches
    assert value(samples, "pushsync_end_to_end_latency_seconds_count", kind="source") == batches
    assert value(samples, "pushsync_push_tasks_running", kind="source") == 0

    # The main process ingests: what it counted comes through the hooks it subscribed at start.
    published = Counter(event["source"] for event in [*first, *second, *ghost, upsert(SLOW, 0, 1)])
    for source, count in published.items():
        assert value(samples, "pushsync_events_received_total", kind="source", target=source) == count

    letters = DeadLetterBrowser(redis_broker_url).list()
    assert sum(len(entry.events) for entry in letters) == len(ghost)
    assert value(samples, "pushsync_events_dead_lettered_total", kind="source", target=GHOST) == len(ghost)
    assert value(samples, "pushsync_dead_letter_entries") == len(letters)
    assert value(samples, "pushsync_windows_flushed_total", kind="source", target=GHOST) >= 1
    assert value(samples, "pushsync_quarantine_entries") == 0
    # Every message was ingested, beat sweeps, and nothing was paused.
    assert ("pushsync_events_backlog", ()) in samples and value(samples, "pushsync_events_backlog") == 0
    assert ("pushsync_beat_last_sweep_age_seconds", ()) in samples
    assert not [name for name, _ in samples if name == "pushsync_target_paused"]

    age = value(samples, "pushsync_oldest_buffered_event_age_seconds", kind="source", target=SLOW)
    assert 0 < age <= time.time() - started
    assert ("pushsync_oldest_buffered_event_age_seconds", (("kind", "source"), ("target", "docs"))) not in samples

    # Both pool children pushed, and the endpoint is the sum of every process's own file.
    by_pid = requests_by_pid(directory)
    assert len([pid for pid, count in by_pid.items() if count and pid != worker.popen.pid]) == 2, by_pid
    assert sum(by_pid.values()) == sum(calls.values())


@pytest.mark.process
def test_the_webhook_receiver_serves_its_metrics_on_a_port_of_its_own(redis_broker_url, unique_name, tmp_path):
    secret = "metrics-test-secret"
    config = tmp_path / "hooks.toml"
    config.write_text(f'[sources.direct]\nadapter = "generic"\nsecret = "{secret}"\nsource_id = "docs"\n')
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "worker", "webhook", "--config", str(config), "--port", str(port),
               "--metrics-port", str(metrics_port), "--broker-url", redis_broker_url,
               "--queue", f"pushsync.events.test-{unique_name}"]
    receiver = Child("webhook", command, env={}, log_path=tmp_path / "webhook.log")
    base = f"http://127.0.0.1:{port}"
    try:
        receiver.wait_until(lambda: _answers(f"{base}/healthz"))
        body = json.dumps({"events": [upsert("docs", 1, 1), delete("docs", 2, 1)]}).encode()
        json_type = {"Content-Type": "application/json"}
        signed = {"X-Pushsync-Signature": pushsync_signature(secret, body, int(time.time())), **json_type}
        assert requests.post(f"{base}/hooks/direct", data=body, headers=signed, timeout=10).status_code == 202
        assert requests.post(f"{base}/hooks/direct", data=body, headers=json_type, timeout=10).status_code == 401
        assert requests.post(f"{base}/hooks/anything-at-all", data=body, timeout=10).status_code == 404
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 404
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        receiver.stop()
    assert value(samples, "pushsync_webhook_requests_total", hook="direct", status="202") == 1
    assert value(samples, "pushsync_webhook_requests_total", hook="direct", status="401") == 1
    # Every answer is counted: the unknown hook and the GET /metrics the receiver's own port does not serve.
    assert value(samples, "pushsync_webhook_requests_total", hook="(unknown)", status="404") == 2
    assert value(samples, "pushsync_webhook_events_published_total", hook="direct") == 2
    assert value(samples, "process_resident_memory_bytes") > 0
    assert not [name for name, _ in samples if name.startswith("pushsync_push")]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False


@pytest.fixture()
def observed():
    """This process's metrics attached to the stages' hooks, as a worker's are, for one test."""
    runtime.observe()
    # It counts in the store, which these tests have none of: tests/worker/observe/test_throughput.py tests it.
    hooks.unsubscribe(runtime.THROUGHPUT)
    yield
    hooks.unsubscribe(runtime.RECORDER)


def test_ingestion_outcomes_are_counted_per_target_and_quarantines_per_known_cause(unique_name, observed):
    target = {"kind": "source", "target": unique_name}
    hooks.emit("after_ingest", keys.Target("source", unique_name), received=5, superseded=2, stale=1)
    hooks.emit("after_ingest", keys.Target("source", unique_name), received=3, superseded=0, stale=0)
    assert REGISTRY.get_sample_value("pushsync_events_received_total", target) == 8
    assert REGISTRY.get_sample_value("pushsync_events_superseded_total", target) == 2
    assert REGISTRY.get_sample_value("pushsync_events_stale_total", target) == 1
    before = REGISTRY.get_sample_value("pushsync_events_quarantined_total", {"cause": "protected"}) or 0
    hooks.emit("after_quarantine", "protected", 3)
    assert REGISTRY.get_sample_value("pushsync_events_quarantined_total", {"cause": "protected"}) == before + 3
    with pytest.raises(ValueError, match="unknown quarantine cause 'typo'"):
        hooks.emit("after_quarantine", "typo", 1)


def test_a_stage_reports_only_the_hooks_there_are_and_nothing_once_unsubscribed(unique_name, observed):
    with pytest.raises(ValueError, match="unknown hook 'after_typo'"):
        hooks.emit("after_typo")
    hooks.unsubscribe(runtime.RECORDER)
    hooks.emit("after_flush", keys.Target("source", unique_name))
    assert REGISTRY.get_sample_value("pushsync_windows_flushed_total", {"kind": "source", "target": unique_name}) is None


def test_a_killed_pool_child_no_longer_counts_as_running(workers, clean_emulator, redis_client, redis_url,
                                                         redis_broker_url, tmp_path):
    emulator = clean_emulator
    emulator.create_source("held")
    emulator.add_fault(method="PUT", path="*/documents/batch", latency=30, times=1)
    directory, port = tmp_path / "metrics", free_port()
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_METRICS_PORT=str(port),
                       PUSHSYNC_METRICS_DIR=str(directory))
    worker = workers.start("worker", env)
    workers.start("beat", env)
    url = f"http://127.0.0.1:{port}/metrics"
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([upsert("held", 1, 1)])
    wait_for(lambda: value(scrape(url), "pushsync_push_tasks_running", kind="source") == 1, 30, what="a push running")
    pushing = [metric_files.pid_of(path) for path in directory.glob("gauge_livesum_*.db")]
    assert len(pushing) == 1 and pushing[0] != worker.popen.pid
    os.kill(pushing[0], signal.SIGKILL)
    wait_for(lambda: value(scrape(url), "pushsync_push_tasks_running", kind="source") == 0, 30,
             what="the killed child forgotten")
    assert not (directory / f"gauge_livesum_{pushing[0]}.db").exists()
