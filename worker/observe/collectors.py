"""What the worker's metrics read at scrape time: the shared state, and every process's values.

What is a property of the shared state (the age of each target's oldest buffered event, the
paused targets, the quarantine's size, the age of the last sweep; the change events waiting on
the broker and the dead-letter queue's depth) is read from Redis and the broker at each scrape,
so it is right however many workers there are (every worker shows the same value: aggregate those
with max, not sum).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from producers.broker import EVENTS_QUEUE
from worker.deadletter.queue import DEAD_LETTER_QUEUE
from worker.ingest import quarantine
from worker.observe import liveness, metric_files, probes
from worker.observe.metrics import TARGET
from worker.push import pause
from worker.store import indexes, keys
from worker.store.outages import STORE_ERRORS

log = logging.getLogger(__name__)


def oldest_buffered(store: redis.Redis) -> dict[keys.Target, float]:
    """Target -> when its oldest event not yet pushed entered a window (epoch seconds), over its
    open window and its claimed batches; targets with nothing buffered are absent."""
    windows = [keys.Target.from_ref(ref.decode()) for ref in indexes.members(store, keys.DEADLINES)]
    batches = [keys.Batch.from_claim_ref(claim.decode()) for claim in indexes.members(store, keys.CLAIMED)]
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


def paused_targets(store: redis.Redis, now: float) -> dict[keys.Target, str]:
    """Target -> the cause of its pause, for every target paused at `now`."""
    return pause.paused(store, [keys.Target.from_ref(ref.decode()) for ref in sorted(store.smembers(keys.TARGETS))],
                        now)


class SharedState(Collector):
    """The gauges that describe the shared state, read from Redis and the broker at each scrape.

    A part that cannot be read (Redis or the broker down) is left out and logged, so the scrape
    still answers with the rest."""

    def __init__(self, store: redis.Redis, broker_url: str) -> None:
        """
        store: the coalescing store.
        broker_url: the workers' broker, which holds `pushsync.events` and the dead-letter queue.
        """
        self.store = store
        self.broker_url = broker_url

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._from_store()
        yield from self._from_broker()

    def _from_store(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        try:
            oldest = oldest_buffered(self.store)
            paused = paused_targets(self.store, now)
            quarantined = quarantine.count(self.store)
            swept_at = liveness.last_sweep(self.store)
        except STORE_ERRORS as exc:
            log.warning("metrics: cannot read the coalescing store: %s", exc)
            return
        age = GaugeMetricFamily("pushsync_oldest_buffered_event_age_seconds",
                                "Age of the oldest event of each target not yet pushed.", labels=TARGET)
        for target, opened_at in sorted(oldest.items(), key=lambda item: item[0].ref):
            age.add_metric([target.kind, target.id], max(0.0, now - opened_at))
        yield age
        stopped = GaugeMetricFamily("pushsync_target_paused", "1 for each target paused now, by why it is paused.",
                                    labels=(*TARGET, "reason"))
        for target, cause in sorted(paused.items(), key=lambda item: item[0].ref):
            stopped.add_metric([target.kind, target.id, cause], 1)
        yield stopped
        yield GaugeMetricFamily("pushsync_quarantine_entries", "Entries in the quarantine.", value=quarantined)
        if swept_at is not None:
            yield GaugeMetricFamily("pushsync_beat_last_sweep_age_seconds",
                                    "Seconds since the last sweep that beat scheduled ran.",
                                    value=max(0.0, now - swept_at))

    def _from_broker(self) -> Iterator[GaugeMetricFamily]:
        try:
            with probes.open_broker(self.broker_url) as connection:
                depths = probes.queue_depths(connection, [EVENTS_QUEUE, DEAD_LETTER_QUEUE])
        except Exception as exc:  # noqa: BLE001 - whatever the broker raised, the scrape answers with the rest
            log.warning("metrics: cannot read the broker's queues: %s", exc)
            return
        yield GaugeMetricFamily("pushsync_events_backlog", "Change-event messages on pushsync.events not yet ingested.",
                                value=depths[EVENTS_QUEUE])
        yield GaugeMetricFamily("pushsync_dead_letter_entries", "Entries in the dead-letter queue.",
                                value=depths[DEAD_LETTER_QUEUE])


class WorkerProcesses(MultiProcessCollector):
    """Adds up the values of every process of the worker, first forgetting the live gauges of the
    processes that are gone (a SIGKILLed pool child never runs its shutdown hook).

    The files change under a scrape: a process that records its first value creates its file
    empty and sizes it a moment later, and one that exits has its live gauges' file removed.
    prometheus_client reads whatever the directory lists and fails the whole scrape on either, so
    an empty file (nothing recorded in it yet) is left out, and a file gone between the listing
    and the reading makes the scrape list the directory again."""

    def __init__(self, registry: CollectorRegistry, directory: Path) -> None:
        super().__init__(registry, str(directory))
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        for path in self.directory.glob(f"{metric_files.LIVE_GAUGES}*.db"):
            pid = metric_files.pid_of(path)
            if pid is not None and not _running(pid):
                metric_files.forget(self.directory, pid)
        attempts = READ_ATTEMPTS
        while True:
            try:
                return self.merge(_recorded(self.directory), accumulate=True)
            except FileNotFoundError:
                attempts -= 1
                if not attempts:
                    raise


READ_ATTEMPTS = 5
"""Listings a scrape reads before it gives up on a directory whose files keep vanishing."""


def _recorded(directory: Path) -> list[str]:
    """The value files in `directory` that hold at least their header."""
    files = []
    for path in directory.glob("*.db"):
        try:
            if path.stat().st_size:
                files.append(str(path))
        except FileNotFoundError:
            continue
    return files


def _running(pid: int) -> bool:
    """Whether pool child `pid` still runs; a pid another user's process took since is not ours any more."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
