"""Prometheus metrics of the worker: every counter and histogram, and the listener that updates them.

Counters and histograms are updated where the thing happens, in whichever process it happens
(the main process ingests, pool children flush and push): the stages emit their hooks
(`worker.hooks`) and the Push API client its event hooks, and `Recorder` counts them. A worker
that serves metrics keeps them in files that its endpoint adds up (`metric_files`,
`endpoint`); what is a property of the shared state is read at scrape time (`collectors`).

Labels stay few and bounded: `kind` (source or provider) and `target` (its id), `operation`
(a Push API client operation), `status` (the HTTP status, or how a request failed without
one), `cause` (of a quarantine). Every metric has labels, so no process writes a value file
before it records something (see `metric_files.clean`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from worker.hooks import Listener
from worker.ingest.quarantine import CAUSES as QUARANTINE_CAUSES
from worker.pushapi import errors
from worker.pushapi.batchfile import DELETE_SECTIONS
from worker.pushapi.client import EventHooks
from worker.store.keys import Target

TARGET = ("kind", "target")
"""Labels of what concerns one source or provider."""
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


class Recorder(Listener):
    """Counts what the stages report (see `worker.hooks.Listener` for what each hook means)."""

    def after_ingest(self, target: Target, *, received: int, superseded: int, stale: int) -> None:
        labels = (target.kind, target.id)
        EVENTS_RECEIVED.labels(*labels).inc(received)
        if superseded:
            EVENTS_SUPERSEDED.labels(*labels).inc(superseded)
        if stale:
            EVENTS_STALE.labels(*labels).inc(stale)

    def after_quarantine(self, cause: str, count: int) -> None:
        if cause not in QUARANTINE_CAUSES:
            raise ValueError(
                f"unknown quarantine cause {cause!r}: expected one of {', '.join(sorted(QUARANTINE_CAUSES))}")
        EVENTS_QUARANTINED.labels(cause).inc(count)

    def after_flush(self, target: Target) -> None:
        WINDOWS_FLUSHED.labels(target.kind, target.id).inc()

    def after_push(self, target: Target, counts: Mapping[str, int], size: int, push_seconds: float,
                   opened_at: float | None) -> None:
        labels = (target.kind, target.id)
        BATCHES_PUSHED.labels(*labels).inc()
        ITEMS_PUSHED.labels(*labels).inc(sum(n for section, n in counts.items() if section not in DELETE_SECTIONS))
        DELETES_PUSHED.labels(*labels).inc(sum(n for section, n in counts.items() if section in DELETE_SECTIONS))
        BYTES_PUSHED.labels(*labels).inc(size)
        PUSH_SECONDS.labels(target.kind).observe(push_seconds)
        if opened_at is not None:
            END_TO_END_SECONDS.labels(target.kind).observe(max(0.0, time.time() - opened_at))

    def after_dead_letter(self, target: Target, events: int) -> None:
        EVENTS_DEAD_LETTERED.labels(target.kind, target.id).inc(events)


def record_request(operation: str, status: int | None, error: errors.PushApiError | None = None) -> None:
    """Count one HTTP request of `operation`: answered with `status`, or not answered, failing with `error`."""
    if status is None:
        label = next((name for kind, name in NO_ANSWER_STATUSES if isinstance(error, kind)), NO_ANSWER_OTHER)
    else:
        label = str(status)
    API_REQUESTS.labels(operation, label).inc()


def record_retry(operation: str, wait: float, retry_after: float | None, error: BaseException | None = None) -> None:
    """Count a retry of `operation` after `wait` seconds; `retry_after` is what the service asked, if it did
    (the error retried is not a label: its text would make a series per message)."""
    API_RETRIES.labels(operation).inc()
    if retry_after is not None:
        RETRY_AFTER_WAIT.labels(operation).inc(wait)


def client_hooks() -> EventHooks:
    """The Push API client's event hooks that count its requests and retries."""
    return EventHooks(request=[record_request], retry=[record_retry])
