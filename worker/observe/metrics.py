"""Prometheus metrics of the worker: every metric, what is read at scrape time, and the endpoint.

Counters and histograms are updated where the thing happens, in whichever process it happens
(the main process ingests, pool children flush and push). A worker that serves metrics keeps
them in files that its endpoint adds up (`worker.metric_files`). What is a property of the
shared state, the dead-letter queue's depth and the age of each target's oldest buffered
event, is read from Redis and the broker at scrape time, so it is right however many workers
there are (every worker shows the same value: aggregate those with max, not sum).

Labels stay few and bounded: `kind` (source or provider) and `target` (its id), `operation`
(a Push API client operation), `status` (the HTTP status, or how a request failed without
one), `cause` (of a quarantine). Every metric has labels, so no process writes a value file
before it records something (see `metric_files.clean`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from threading import Thread
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from worker.ingest import horizon, quarantine
from worker.store import keys
from worker.observe import metric_files
from worker.pushapi import errors
from worker.settings import Settings
from worker.store.connection import connect, store_url

if TYPE_CHECKING:
    from worker.deadletter.queue import DeadLetters

log = logging.getLogger(__name__)

TARGET = ("kind", "target")
"""Labels of what concerns one source or provider."""
QUARANTINE_CAUSES = frozenset({"invalid", "undecodable", "poison", "protected", horizon.TOO_OLD, horizon.FUTURE})
"""Why events went to quarantine: an event failed validation, a message could not be decoded,
the broker gave up redelivering a message, an event named a protected source, an event was outside
the ordering horizon (older than it, or dated ahead of the worker's clock)."""
DELETE_SECTIONS = frozenset({"delete", "deleted"})
"""Batch-file sections that remove (item deletes, identity disables); the others add or update."""
PUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
"""Seconds: from a small batch on a fast link to a full container retried within the budget."""
END_TO_END_BUCKETS = (0.5, 1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600)
"""Seconds, fine around the default 5 s window where most batches land."""
NO_ANSWER_STATUSES = ((errors.TimeoutError, "timeout"), (errors.ConnectError, "connect_error"))
"""The `status` of a request that got no HTTP answer, by the client's error class."""
NO_ANSWER_OTHER = "request_error"

EVENTS_RECEIVED = Counter("pushsync_events_received", "Change events taken into coalescing.", TARGET)
EVENTS_SUPERSEDED = Counter(
    "pushsync_events_superseded", "Events a newer version of their item replaced before they were pushed.", TARGET)
EVENTS_STALE = Counter(
    "pushsync_events_stale", "Events dropped as older than what was already pushed for their item.", TARGET)
EVENTS_QUARANTINED = Counter("pushsync_events_quarantined", "Events and messages put in quarantine.", ("cause",))
WINDOWS_FLUSHED = Counter("pushsync_windows_flushed", "Windows closed and claimed as a batch.", TARGET)
BATCHES_PUSHED = Counter("pushsync_batches_pushed", "Batches the service accepted.", TARGET)
ITEMS_PUSHED = Counter(
    "pushsync_items_pushed", "Items (identities, aliases) added or updated by accepted batches.", TARGET)
DELETES_PUSHED = Counter(
    "pushsync_deletes_pushed", "Item deletes (identity disables) in accepted batches.", TARGET)
BYTES_PUSHED = Counter("pushsync_pushed_bytes", "Bytes of the batch files of accepted batches.", TARGET)
EVENTS_DEAD_LETTERED = Counter(
    "pushsync_events_dead_lettered", "Events written to the dead-letter queue (confirmed by the broker).", TARGET)
API_REQUESTS = Counter(
    "pushsync_push_api_requests", "HTTP requests to the Push API and its file storage, each attempt.",
    ("operation", "status"))
API_RETRIES = Counter("pushsync_push_api_retries", "Push API requests tried again after a retryable failure.",
                      ("operation",))
RETRY_AFTER_WAIT = Counter(
    "pushsync_retry_after_wait_seconds", "Seconds waited before retries of answers that carried Retry-After.",
    ("operation",))
PUSH_SECONDS = Histogram(
    "pushsync_push_duration_seconds", "Time to push one batch: status call, uploads, batch calls and retries.",
    ("kind",), buckets=PUSH_BUCKETS)
END_TO_END_SECONDS = Histogram(
    "pushsync_end_to_end_latency_seconds",
    "From the oldest event of a batch entering its window to the service accepting the batch.",
    ("kind",), buckets=END_TO_END_BUCKETS)
PUSHES_RUNNING = Gauge("pushsync_push_tasks_running", "Push tasks running now.", ("kind",), multiprocess_mode="livesum")


def record_ingested(target_kind: str, target_id: str, *, received: int, superseded: int, stale: int) -> None:
    """Count what coalescing did with a group of one target's events; call it once Redis holds them.

    target_kind: `source` or `provider`.
    target_id: the source or provider id.
    received: events of the group.
    superseded: events that will not be pushed because the window holds a newer version of their
        item, plus the older versions they replaced in it.
    stale: events dropped as not newer than what was already pushed for their item.
    """
    labels = (target_kind, target_id)
    EVENTS_RECEIVED.labels(*labels).inc(received)
    if superseded:
        EVENTS_SUPERSEDED.labels(*labels).inc(superseded)
    if stale:
        EVENTS_STALE.labels(*labels).inc(stale)


def record_quarantined(cause: str, count: int = 1) -> None:
    """Count `count` events or messages quarantined for `cause` (one of `QUARANTINE_CAUSES`),
    once Redis holds them."""
    if cause not in QUARANTINE_CAUSES:
        raise ValueError(f"unknown quarantine cause {cause!r}: expected one of {', '.join(sorted(QUARANTINE_CAUSES))}")
    EVENTS_QUARANTINED.labels(cause).inc(count)


def record_flushed(target: keys.Target) -> None:
    """Count a window of `target` claimed as a batch."""
    WINDOWS_FLUSHED.labels(target.kind, target.id).inc()


def record_pushed(target: keys.Target, counts: Mapping[str, int], size: int, push_seconds: float,
                  opened_at: float | None) -> None:
    """Count a batch the service accepted.

    counts: operations sent, by batch-file section.
    size: bytes of its batch files.
    push_seconds: how long pushing it took.
    opened_at: when its oldest event entered the window (epoch seconds), if the batch says.
    """
    labels = (target.kind, target.id)
    BATCHES_PUSHED.labels(*labels).inc()
    ITEMS_PUSHED.labels(*labels).inc(sum(n for section, n in counts.items() if section not in DELETE_SECTIONS))
    DELETES_PUSHED.labels(*labels).inc(sum(n for section, n in counts.items() if section in DELETE_SECTIONS))
    BYTES_PUSHED.labels(*labels).inc(size)
    PUSH_SECONDS.labels(target.kind).observe(push_seconds)
    if opened_at is not None:
        END_TO_END_SECONDS.labels(target.kind).observe(max(0.0, time.time() - opened_at))


def record_dead_lettered(target: keys.Target, events: int) -> None:
    """Count `events` of `target` the broker confirmed in the dead-letter queue."""
    EVENTS_DEAD_LETTERED.labels(target.kind, target.id).inc(events)


def record_request(operation: str, status: int | None, error: errors.PushApiError | None = None) -> None:
    """Count one HTTP request of `operation`: answered with `status`, or not answered, failing with `error`."""
    if status is None:
        label = next((name for kind, name in NO_ANSWER_STATUSES if isinstance(error, kind)), NO_ANSWER_OTHER)
    else:
        label = str(status)
    API_REQUESTS.labels(operation, label).inc()


def record_retry(operation: str, wait: float, retry_after: float | None) -> None:
    """Count a retry of `operation` after `wait` seconds; `retry_after` is what the service asked, if it did."""
    API_RETRIES.labels(operation).inc()
    if retry_after is not None:
        RETRY_AFTER_WAIT.labels(operation).inc(wait)


def oldest_buffered(store: redis.Redis) -> dict[keys.Target, float]:
    """Target -> when its oldest event not yet pushed entered a window (epoch seconds), over its
    open window and its claimed batches; targets with nothing buffered are absent."""
    windows = [keys.Target.from_ref(ref.decode()) for ref in store.zrange(keys.DEADLINES, 0, -1)]
    batches = [keys.Batch.from_claim_ref(claim.decode()) for claim in store.zrange(keys.CLAIMED, 0, -1)]
    pipe = store.pipeline(transaction=False)
    for target in windows:
        pipe.hget(target.window_meta, "opened_at")
    for batch in batches:
        pipe.hget(batch.meta, "opened_at")
    oldest: dict[keys.Target, float] = {}
    for target, opened in zip([*windows, *(batch.target for batch in batches)], pipe.execute()):
        if opened is not None:
            oldest[target] = min(oldest.get(target, math.inf), float(opened))
    return oldest


class SharedState(Collector):
    """The gauges that describe the shared state, read from Redis and the broker at each scrape.

    A part that cannot be read (Redis or the broker down) is left out and logged, so the scrape
    still answers with the rest."""

    def __init__(self, store: redis.Redis, dead_letters: DeadLetters) -> None:
        """
        store: the coalescing store.
        dead_letters: the dead-letter queue, on the workers' broker.
        """
        self.store = store
        self.dead_letters = dead_letters

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            oldest = oldest_buffered(self.store)
            quarantined = quarantine.count(self.store)
        except redis.RedisError as exc:
            log.warning("metrics: cannot read the coalescing store: %s", exc)
        else:
            now = time.time()
            age = GaugeMetricFamily("pushsync_oldest_buffered_event_age_seconds",
                                    "Age of the oldest event of each target not yet pushed.", labels=TARGET)
            for target, opened_at in sorted(oldest.items(), key=lambda item: item[0].ref):
                age.add_metric([target.kind, target.id], max(0.0, now - opened_at))
            yield age
            yield GaugeMetricFamily("pushsync_quarantine_entries", "Entries in the quarantine.", value=quarantined)
        try:
            depth = self.dead_letters.depth()
        except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the scrape answers with the rest
            log.warning("metrics: cannot read the dead-letter queue's depth: %s", exc)
        else:
            yield GaugeMetricFamily("pushsync_dead_letter_entries", "Entries in the dead-letter queue.", value=depth)


class WorkerProcesses(MultiProcessCollector):
    """Adds up the values of every process of the worker, first forgetting the live gauges of the
    processes that are gone (a SIGKILLed pool child never runs its shutdown hook)."""

    def __init__(self, registry: CollectorRegistry, directory: Path) -> None:
        super().__init__(registry, str(directory))
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        for path in self.directory.glob("gauge_live*.db"):
            pid = metric_files.pid_of(path)
            if pid is not None and not _running(pid):
                mark_process_dead(pid, str(self.directory))
        return super().collect()


def serve(settings: Settings, directory: Path) -> tuple[WSGIServer, Thread]:
    """Serve the worker's metrics over HTTP on `settings.metrics_port` from a daemon thread.

    directory: where the worker's processes keep their values.
    Raises OSError when the port cannot be bound.
    """
    # Imported here: the dead-letter queue counts what it writes through this module.
    from worker.deadletter.queue import DeadLetters

    registry = CollectorRegistry()
    WorkerProcesses(registry, directory)
    registry.register(SharedState(connect(settings), DeadLetters(settings.broker_url or store_url(settings))))
    return start_http_server(settings.metrics_port, settings.metrics_address, registry)


def forget_process(pid: int) -> None:
    """Drop the live gauges of pool child `pid`, which is exiting."""
    mark_process_dead(pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
