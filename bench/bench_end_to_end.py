"""End to end: 1,000,000 change events through real workers into the emulator, against one request per event.

    .venv/bin/python bench/bench_end_to_end.py [--events N] [--sources N] [--workers N] [--concurrency N]
        [--paced-rate N] [--paced-seconds N] [--baseline-events N] [--baseline-threads N]

A private embedded Redis (store and broker), a private emulator over HTTP, real `celery worker`
processes and beat, with the default window. Three phases in one run:

1. bulk: the events (20 % of the items updated repeatedly, the rest once; see workload.py) are
   published with `producers.Publisher` as fast as it goes, while the workers run. Timed from the
   first publish to the acceptance of the last batch, once the emulator's index holds exactly the
   last-write-wins state (checked item by item). Push API calls come from the emulator's request
   log, items sent from the workers' metrics.
2. paced: new items published at a steady rate (the issue's 2,000 events/s) on the same workers.
   Each item's latency is read from the index: its orderingId is when the emulator accepted the
   batch that carried it, its `publishedAt` metadata when its change was handed to the publisher.
3. baseline, without pushsync: the workers are stopped, the emulator reset, and the same events
   (the bulk stream's first `--baseline-events`, a sample when that is fewer) are pushed one
   request per event, as a hand-written change hook does (PUT .../documents?documentId= or
   DELETE), with the project's PushApiClient from a small thread pool. Each item's changes go
   through one thread, in order. The sample's figures are extrapolated to the whole stream.

Figures are printed with their targets and written to bench/results/end_to_end.json. Not a test.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from expectation import Check, check, idle, last_changes, settled
from results import at_least, below, echo_targets, invocation, write_result
from stack import API_KEY, ORGANIZATION, CallCounts, Stack, batch_calls, wait_until
from workload import DELETED_HOT_EVERY, HOT_SHARE, HOT_UPDATES, MS_PER_SECOND, URL_ROOT, Change, Workload, publish

from worker.pushapi.client import PushApiClient
from worker.settings import load_settings

EVENTS = 1_000_000
SOURCES = 50
WORKERS = 2
CONCURRENCY = 1
"""Two workers of one pool process each: ingestion runs in a worker's main process, so two workers
ingest in parallel on the two cores (measured: see the notes of the results)."""
PACED_RATE = 2_000
PACED_SECONDS = 60
BASELINE_EVENTS = 50_000
"""About a minute of single requests against the emulator: the whole stream would take half an hour."""
BASELINE_THREADS = 8
"""A small pool, as a change hook in a web application or a queue consumer has."""
SEED = 7
WAIT_SECONDS = 1800
EVENTS_PER_SECOND_TARGET = 10_000
CALL_RATIO_TARGET = 300
LATENCY_MARGIN_SECONDS = 2.0
"""The p99 latency target is the window length plus this."""
CORES = os.cpu_count() or 1
ROUND_GAP_SECONDS = 1.0
"""At a steady rate the sources' windows close together; a second without a batch separates two flush rounds."""
ITEM_COUNTERS = ("pushsync_items_pushed_total", "pushsync_deletes_pushed_total")


@dataclass
class Phase(CallCounts):
    """What one publishing phase took, from the first publish to the last batch accepted."""

    events: int
    started: float
    """Epoch seconds of the first publish."""
    published: float
    """Epoch seconds when the broker had confirmed every event."""
    finished: float = 0.0
    """Epoch seconds when the emulator answered the last batch call (the index then held the expectation)."""
    log: list[dict[str, Any]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    items_sent: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds each part used from the first publish until the index settled (the publisher: until it finished)."""

    @property
    def wall(self) -> float:
        return self.finished - self.started

    @property
    def rate(self) -> float:
        return self.events / self.wall



@dataclass(frozen=True)
class Baseline:
    """One request per event over a sample of the stream, and what it extrapolates to."""

    sample: int
    total: int
    wall: float
    calls: int
    wrong: int

    @property
    def scale(self) -> float:
        return self.total / self.sample

    @property
    def rate(self) -> float:
        return self.sample / self.wall


def items_sent(stack: Stack) -> float:
    """Items and deletes the running workers have had accepted so far."""
    return sum(stack.metrics(name).get(counter, 0.0) for name in stack.workers for counter in ITEM_COUNTERS)


def run_phase(stack: Stack, workload: Workload, rate: float | None,
              before: dict[str, dict[str, int]]) -> tuple[Phase, dict[str, dict[str, int]]]:
    """Publish `workload` on the running stack and wait for the index to hold it on top of `before`.

    Returns the phase and the whole expectation afterwards.
    """
    emulator = stack.emulator
    expected = {source: {**before.get(source, {}), **items} for source, items in workload.expected().items()}
    last = last_changes(workload)
    logs = stack.directory
    since = emulator.last_request_id()
    sent_before = items_sent(stack)
    cpu_before = stack.cpu_seconds()
    started, published = publish(stack.broker_url, workload, rate)
    publisher_cpu = stack.cpu_seconds()["publisher"] - cpu_before["publisher"]
    phase = Phase(workload.events, started, published)
    wait_until(lambda: settled(emulator, expected, last), WAIT_SECONDS, "the expected counts", logs)
    phase.cpu = {part: seconds - cpu_before[part] for part, seconds in stack.cpu_seconds().items()}
    phase.cpu["publisher"] = publisher_cpu
    result = Check()

    def exact() -> bool:
        nonlocal result
        result = check(emulator, expected, f"{URL_ROOT}/{workload.name}/")
        return result.wrong == 0

    wait_until(exact, WAIT_SECONDS, "the expected index", logs)
    # The bursts' closing IDLE calls are part of what pushsync sends for these events.
    wait_until(lambda: idle(emulator, list(expected)), WAIT_SECONDS, "every source IDLE", logs)
    phase.log = emulator.requests(since)
    phase.finished = max(entry["time"] + entry["durationMs"] / MS_PER_SECOND for entry in batch_calls(phase.log))
    phase.latencies = result.latencies
    phase.items_sent = items_sent(stack) - sent_before
    return phase, expected


def hand_written_hook(stack: Stack, workload: Workload, sample: int, threads: int) -> Baseline:
    """Push the stream's first `sample` changes one request each from `threads` threads, on a reset emulator."""
    emulator = stack.emulator
    emulator.reset()
    partitions: list[list[Change]] = [[] for _ in range(threads)]
    for change in workload.changes(sample):
        partitions[zlib.crc32(change.document_id.encode()) % threads].append(change)

    def push(changes: list[Change]) -> None:
        client = PushApiClient(base_url=f"{emulator.url}/push/v1", organization_id=ORGANIZATION, api_key=API_KEY)
        try:
            for change in changes:
                if change.deleted:
                    client.delete_document(change.source, change.document_id)
                else:
                    client.add_document(change.source, change.document(time.time() * MS_PER_SECOND))
        finally:
            client.close()

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(push, partitions))
    wall = time.monotonic() - started
    calls = len(emulator.requests())
    wrong = check(emulator, workload.expected(sample), URL_ROOT).wrong
    return Baseline(sample, workload.events, wall, calls, wrong)


def flush_rhythm(log: list[dict[str, Any]]) -> tuple[float, float]:
    """(median seconds between two batches of one source, median seconds from the first to the last batch
    of one flush round) over the accepted batch calls of `log`; a round ends at a pause of ROUND_GAP_SECONDS."""
    times: dict[str, list[float]] = {}
    for entry in batch_calls(log):
        times.setdefault(entry["path"], []).append(entry["time"])
    intervals = [later - earlier for series in times.values() for earlier, later in zip(series, series[1:])]
    moments = sorted(moment for series in times.values() for moment in series)
    rounds, first = [], moments[0]
    for earlier, later in zip(moments, moments[1:]):
        if later - earlier > ROUND_GAP_SECONDS:
            rounds.append(earlier - first)
            first = later
    rounds.append(moments[-1] - first)
    return statistics.median(intervals or [float("nan")]), statistics.median(rounds)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


@click.command()
@click.option("--events", "count", default=EVENTS, show_default=True, help="Events of the bulk phase.")
@click.option("--sources", default=SOURCES, show_default=True, help="Push sources the events are spread over.")
@click.option("--workers", default=WORKERS, show_default=True, help="Worker processes (each ingests in its main process).")
@click.option("--concurrency", default=CONCURRENCY, show_default=True, help="Pool processes of each worker.")
@click.option("--paced-rate", default=PACED_RATE, show_default=True, help="Events/s of the paced phase.")
@click.option("--paced-seconds", default=PACED_SECONDS, show_default=True, help="Length of the paced phase.")
@click.option("--baseline-events", default=BASELINE_EVENTS, show_default=True,
              help="Events pushed one request each (the bulk stream's first ones), extrapolated to the whole.")
@click.option("--baseline-threads", default=BASELINE_THREADS, show_default=True, help="Threads of the change hook.")
def main(count: int, sources: int, workers: int, concurrency: int, paced_rate: int, paced_seconds: int,
         baseline_events: int, baseline_threads: int) -> None:
    settings = load_settings()
    window, sweep = settings.window_seconds, settings.sweep_seconds
    bulk_load = Workload(count, sources, "bulk", SEED)
    paced_load = Workload(paced_rate * paced_seconds, sources, "paced", SEED + 1)
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-e2e-") as scratch, \
            Stack(Path(scratch), bulk_load.source_ids) as stack:
        names = [stack.start_worker(concurrency) for _ in range(workers)]
        stack.start_beat()
        bulk, expected = run_phase(stack, bulk_load, None, {})
        paced, _ = run_phase(stack, paced_load, paced_rate, expected)
        rss = max(stack.peak_rss_mib(name) for name in names)
        stack.stop_workers()
        baseline = hand_written_hook(stack, bulk_load, min(baseline_events, count), baseline_threads)

    baseline_calls = baseline.calls * baseline.scale
    baseline_wall = baseline.wall * baseline.scale
    call_ratio = baseline_calls / bulk.api_calls
    paced_p50, paced_p99 = percentile(paced.latencies, 0.5), percentile(paced.latencies, 0.99)
    bulk_p50, bulk_p99 = percentile(bulk.latencies, 0.5), percentile(bulk.latencies, 0.99)
    targets = [
        at_least("events/s end to end", round(bulk.rate), EVENTS_PER_SECOND_TARGET),
        at_least("times fewer Push API calls than one request per event", round(call_ratio, 1), CALL_RATIO_TARGET),
        below(f"p99 end-to-end latency at {paced_rate:,} events/s (s)", round(paced_p99, 2),
              window + LATENCY_MARGIN_SECONDS),
    ]
    extrapolated = baseline.sample < baseline.total
    period, drain = flush_rhythm(paced.log)
    click.echo(f"end to end: {count:,} events over {sources} sources, {workers} worker(s) x {concurrency} pool "
               f"process(es) + beat, window {window:g}s, private embedded Redis and emulator")
    click.echo(f"pushsync, bulk: {bulk.wall:.1f}s from first publish to the last batch accepted "
               f"({bulk.rate:,.0f} events/s; the publisher alone finished after {bulk.published - bulk.started:.1f}s)")
    click.echo(f"  Push API calls: {bulk.api_calls:,} ({bulk.api_calls / count * 1000:.2f} per 1,000 events; "
               f"{len(batch_calls(bulk.log)):,} batch calls) plus {bulk.uploads:,} uploads to file containers")
    click.echo(f"  CPU seconds ({CORES} cores x {bulk.wall:.0f}s = {CORES * bulk.wall:.0f} available): "
               + ", ".join(f"{part} {seconds:.0f}" for part, seconds in bulk.cpu.items()))
    click.echo(f"  items sent: {bulk.items_sent:,.0f} (of {count:,} events); index checked item by item: exact")
    click.echo(f"  latency under full load (publish to batch accepted): p50 {bulk_p50:.1f}s, p99 {bulk_p99:.1f}s")
    click.echo(f"pushsync, paced at {paced_rate:,} events/s for {paced_seconds}s: latency p50 {paced_p50:.2f}s, "
               f"p99 {paced_p99:.2f}s (window {window:g}s; {len(paced.latencies):,} items timed)")
    click.echo(f"  a source's batches came every {period:.2f}s (median); a flush round of the sources' batches "
               f"took {drain:.2f}s from the first accepted to the last (median)")
    click.echo(f"  worker peak RSS: {rss:.0f} MiB (largest process of any worker, whole run)")
    sample_note = (f"a sample of the first {baseline.sample:,} events, extrapolated x{baseline.scale:.1f}"
                   if extrapolated else "every event")
    click.echo(f"baseline, one request per event ({baseline_threads} threads, {sample_note}): "
               f"{baseline.rate:,.0f} events/s, {baseline.calls:,} calls in {baseline.wall:.1f}s, "
               f"items wrong in the index: {baseline.wrong}")
    click.echo(f"  for {count:,} events: {baseline_calls:,.0f} calls, {baseline.total:,} items sent, "
               f"{baseline_wall:,.0f}s{' (extrapolated)' if extrapolated else ''}")
    click.echo(f"ratios, baseline / pushsync: Push API calls {call_ratio:,.0f}x, "
               f"items sent {baseline.total / bulk.items_sent:.2f}x, wall time {baseline_wall / bulk.wall:.1f}x")
    echo_targets(targets)

    figures = {
        "events": count, "sources": sources, "workers": workers, "concurrency": concurrency, "window_seconds": window,
        "wall_seconds": round(bulk.wall, 1), "publish_seconds": round(bulk.published - bulk.started, 1),
        "events_per_second": round(bulk.rate), "push_api_calls": bulk.api_calls,
        "push_api_calls_per_1000_events": round(bulk.api_calls / count * 1000, 3),
        "batch_calls": len(batch_calls(bulk.log)), "uploads": bulk.uploads, "items_sent": bulk.items_sent,
        "bulk_latency_p50_seconds": round(bulk_p50, 2), "bulk_latency_p99_seconds": round(bulk_p99, 2),
        "paced_events_per_second": paced_rate, "paced_events": paced.events,
        "paced_latency_p50_seconds": round(paced_p50, 2), "paced_latency_p99_seconds": round(paced_p99, 2),
        "paced_window_period_seconds": round(period, 2), "paced_flush_round_seconds": round(drain, 2),
        "worker_peak_rss_mib": round(rss),
        **{f"cpu_seconds_{part}": round(seconds, 1) for part, seconds in bulk.cpu.items()}, "baseline_threads": baseline_threads,
        "baseline_sample_events": baseline.sample, "baseline_events_per_second": round(baseline.rate),
        "baseline_push_api_calls": round(baseline_calls), "baseline_items_sent": baseline.total,
        "baseline_wall_seconds": round(baseline_wall), "baseline_items_wrong": baseline.wrong,
        "ratio_push_api_calls": round(call_ratio, 1), "ratio_items_sent": round(baseline.total / bulk.items_sent, 2),
        "ratio_wall_time": round(baseline_wall / bulk.wall, 2),
    }
    busy = sum(bulk.cpu.values())
    notes = [
        f"{count:,} events over {sources} sources: {HOT_SHARE:.0%} of the items changed {HOT_UPDATES} times, the "
        f"others once, one hot item in {DELETED_HOT_EVERY} ending deleted. The index was checked item by item "
        "against the last-write-wins expectation before the time was taken.",
        f"Events/s: from the first publish to the emulator's answer to the last batch call. Everything shares the "
        f"{CORES} cores: in the bulk phase the parts used " + ", ".join(
            f"{part} {seconds:.0f}" for part, seconds in bulk.cpu.items())
        + f" CPU seconds, {busy / (CORES * bulk.wall):.0%} of what the cores had. The publisher is this script "
        "calling producers.Publisher (validation, event ids, JSON, the broker).",
        "Push API calls count status, file container and batch calls; uploads to the containers go to storage "
        "and are counted apart. A hand-written hook makes one call per event.",
        "Latency: per item, from handing its change to the publisher (messages of up to 500 events) to the "
        f"emulator accepting the batch that carried it; the paced phase times {len(paced.latencies):,} items "
        "(the last change of each).",
        f"At {paced_rate:,} events/s a source's batches came every {period:.2f}s (median), not every {window:g}s: "
        f"a window opened just after a sweep falls due just after the sweep {window:g}s later, and beat sweeps "
        f"every {sweep:g}s. The sources' batches of one round then took {drain:.2f}s (median) to be accepted "
        f"through {workers * concurrency} pool process(es).",
        f"Baseline: {baseline_threads} threads of PushApiClient, each item's changes in one thread, in order; "
        + (f"run on the first {baseline.sample:,} events and extrapolated linearly." if extrapolated
           else "run on every event."),
    ]
    write_result("end_to_end", "End to end: 1,000,000 events through real workers, against one request per event",
                 invocation(), figures, targets, notes)


if __name__ == "__main__":
    main()
