"""Many sources: sweep and reaper cost, and p99 publish-to-accepted latency, against the number of sources.

    .venv/bin/python bench/bench_sources.py [--seconds N] [--points 10:1000,1000:1000,10000:100] [--micro 10,1000,10000]
        [--concurrency 1]

Two parts, each on a private embedded Redis (and, for the second, a private emulator), never on a shared server:

1. sweep and reaper cost, in this process: N sources each get one event (one open window each), and
   the real `Flusher` and `StatusBrackets` run against that store, timed:
   - a sweep with N windows open and none due (what a sweep costs between flushes);
   - the sweeps that claim all N windows once they are due (ms per due window; a sweep may bound
     its work, so this counts every sweep until none claims anything);
   - the reaper with N batches claimed and none lost (enqueued just now), then with all N lost
     (enqueued longer ago than `PUSHSYNC_REAP_AFTER_SECONDS`, no task holding them);
   - closing quiet bursts with N bursts open (their opening status recorded as a push records it,
     the call itself not made) and none quiet.
   Push tasks are not sent (the enqueue only counts).
2. end to end, for each point `sources:events per second`: 2 `celery worker`s (`--concurrency` pool processes each, 1 by default)
   and beat publish at that fixed rate for `--seconds`, then the index is read back: p99 from each
   item's publishing to the acceptance of the batch that carried it (also once past the first two windows,
   the start's wave: every source's first events come at once), the drain (from the broker's
   confirmation of the last event to the acceptance of the last batch), CPU per event (the
   workers, beat and Redis; not the emulator nor the publisher), and CPU per batch call of the
   workers' main processes, their pools, Redis and the emulator (where a batch's cost goes).

Ratios are against the first (smallest) point of each part, measured in the same run. Figures are
printed and written to bench/results/sources.json. Not a test.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import redis
from expectation import check
from results import below, echo_targets, invocation, write_result
from stack import Stack, batch_calls
from workload import MS_PER_SECOND, URL_ROOT, Workload, publish

from producers import broker
from worker.push.brackets import StatusBrackets
from worker.pushapi.client import PushApiClient
from worker.settings import load_settings
from worker.store import keys
from worker.store.embedded import EmbeddedRedis
from worker.store.ranks import rank
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

SECONDS = 20
POINTS = "10:1000,1000:1000,10000:100"
MICRO = "10,1000,10000"
WORKERS = 2
CONCURRENCY = 1
SEED = 11
DRAIN_TIMEOUT_SECONDS = 240
"""A point whose pipeline has not drained this long after publishing stopped is reported as such."""
POLL_SECONDS = 0.5
IDLE_SWEEPS = 3
SCAN_COUNT = 10_000
LATENCY_MARGIN_SECONDS = 2.0
"""The p99 target is the window plus this; the drain target is two windows."""
DRAIN_WINDOWS = 2
STEADY_AFTER_WINDOWS = 2
"""The steady p99 leaves out items published in the first windows: every source's first events come in the
first seconds, so their windows fall due together (a wave a deployment sees after a restart, not at every window)."""
MS = 1000
US = 1_000_000
EVENT_BYTES = b'{"kind":"item.upsert","data":"x"}'
UNREACHABLE_URL = "http://127.0.0.1:9/push/v1"
"""The micro part's brackets make no call: closing no burst sends nothing."""


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds `action` took, and what it returned."""
    started = time.perf_counter()
    outcome = action()
    return (time.perf_counter() - started) * MS, outcome


def micro(count: int, directory: Path) -> dict[str, float]:
    """Time the sweep, the reaper and closing quiet bursts over `count` sources (see the module docstring)."""
    settings = load_settings()
    server = EmbeddedRedis(directory / f"micro-{count}")
    try:
        client = redis.Redis(port=server.port)
        coalescer = Coalescer(client, settings)
        enqueued: list[keys.Batch] = []
        flusher = Flusher(client, settings, enqueued.extend)
        api = PushApiClient(base_url=UNREACHABLE_URL, organization_id="bench", api_key="micro-part-key")
        # The opening status as a push records it, without the call: only the sweep's cost is timed here.
        api.set_source_status = lambda source, status: None  # type: ignore[method-assign]
        brackets = StatusBrackets(client, api, settings)
        targets = [keys.Target(keys.SOURCE, f"bench-{n}") for n in range(count)]
        # Before the writes: writing thousands of windows may take longer than a window, and none is due yet.
        now = time.time()
        for target in targets:
            coalescer.add_encoded(target, [("item", rank("item.upsert", 1), EVENT_BYTES)])
        # The best of a few: the first one after the writes can meet Redis rewriting its append-only file.
        idle_ms = min(timed(lambda: flusher.sweep(now))[0] for _ in range(IDLE_SWEEPS))
        due = time.time() + settings.window_seconds + 1
        claim_ms, sweeps = 0.0, 0
        while True:
            spent, result = timed(lambda: flusher.sweep(due))
            claim_ms += spent
            sweeps += 1
            if not result.claimed:
                break
        claimed = len(enqueued)
        for target in targets:
            brackets.open(target)
        reap_none_ms, none = timed(lambda: flusher.reap(due + 1))
        quiet_ms, closing = timed(lambda: brackets.close_quiet(lambda target, epoch: None, due + 1))
        reap_all_ms, lost = timed(lambda: flusher.reap(due + settings.reap_after_seconds + 1))
        api.close()
        client.close()
    finally:
        server.stop()
    if claimed != count or none or closing or len(lost) != count:
        raise RuntimeError(f"{count} sources: claimed {claimed}, reaped early {len(none)}, closed {closing}, "
                           f"reaped lost {len(lost)}")
    return {"sweep_idle_ms": idle_ms, "sweep_due_ms": claim_ms, "sweeps_to_claim": sweeps,
            "ms_per_due_window": claim_ms / count, "reap_none_lost_ms": reap_none_ms,
            "reap_all_lost_ms": reap_all_ms, "ms_per_lost_batch": reap_all_ms / count,
            "close_quiet_none_quiet_ms": quiet_ms}


def drained(stack: Stack) -> bool:
    """The events stream is empty and no window or batch is left in the store."""
    broker_client = redis.Redis.from_url(stack.broker_url)
    store = redis.Redis.from_url(stack.store_url)
    try:
        if broker_client.exists(broker.EVENTS_QUEUE) and broker_client.xlen(broker.EVENTS_QUEUE):
            return False
        for pattern in ("pushsync:{*}:window", "pushsync:{*}:inflight"):
            for _ in store.scan_iter(match=pattern, count=SCAN_COUNT):
                return False
        return True
    finally:
        broker_client.close()
        store.close()


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))] if ordered else float("nan")


def end_to_end(sources: int, rate: int, seconds: int, directory: Path, concurrency: int) -> dict[str, float]:
    """Publish `rate` events/s over `sources` sources for `seconds` through 2 workers of `concurrency` pool
    processes each; latency, drain and CPU."""
    load = Workload(rate * seconds, sources, f"s{sources}", SEED)
    with Stack(directory / f"e2e-{sources}", load.source_ids) as stack:
        for _ in range(WORKERS):
            stack.start_worker(concurrency)
        stack.start_beat()
        since = stack.emulator.last_request_id()
        cpu_before = stack.cpu_seconds()
        started, published = publish(stack.broker_url, load, rate)
        deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
        while not drained(stack):
            if time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        finished = drained(stack)
        cpu = stack.cpu_seconds()
        log = stack.emulator.requests(since)
        expected = {source: items for source, items in load.expected().items() if items}
        result = check(stack.emulator, expected, f"{URL_ROOT}/{load.name}/")
    calls = batch_calls(log)
    last = max((entry["time"] + entry["durationMs"] / MS_PER_SECOND for entry in calls), default=published)
    busy = sum(cpu[part] - cpu_before[part] for part in ("ingest", "push", "beat", "redis"))
    per_batch = {f"cpu_ms_per_batch_{part}": (cpu[part] - cpu_before[part]) / max(len(calls), 1) * MS
                 for part in ("ingest", "push", "redis", "emulator")}
    steady_from = started + STEADY_AFTER_WINDOWS * load_settings().window_seconds
    steady = [latency for latency, at in zip(result.latencies, result.published_at) if at >= steady_from]
    return {"sources": sources, "events_per_second": rate, "events": load.events,
            "p50_seconds": percentile(result.latencies, 0.5), "p99_seconds": percentile(result.latencies, 0.99),
            "p99_steady_seconds": percentile(steady, 0.99),
            "drain_seconds": (last - published) if finished else float("inf"), "drained": int(finished),
            "items_wrong": result.wrong, "batch_calls": len(calls), "push_api_calls": len(log),
            "cpu_us_per_event": busy / load.events * US, "publish_seconds": published - started, **per_batch}


def points(text: str) -> list[tuple[int, int]]:
    return [(int(sources), int(rate)) for sources, rate in (point.split(":") for point in text.split(",") if point)]


@click.command()
@click.option("--seconds", default=SECONDS, show_default=True, help="Publishing time of each end-to-end point.")
@click.option("--points", "point_text", default=POINTS, show_default=True,
              help="End-to-end points, sources:events per second, comma-separated; the first is the baseline.")
@click.option("--micro", "micro_text", default=MICRO, show_default=True,
              help="Source counts of the sweep and reaper timings; the first is the baseline ('' skips them).")
@click.option("--name", default="sources", show_default=True, help="Results file name (bench/results/NAME.json).")
@click.option("--concurrency", default=CONCURRENCY, show_default=True, help="Pool processes of each worker.")
def main(seconds: int, point_text: str, micro_text: str, name: str, concurrency: int) -> None:
    settings = load_settings()
    window = settings.window_seconds
    figures: dict[str, float] = {"window_seconds": window, "seconds_per_point": seconds}
    targets = []
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-sources-") as scratch:
        counts = [int(n) for n in micro_text.split(",") if n]
        timings = {count: micro(count, Path(scratch)) for count in counts}
        for count, timing in timings.items():
            base = timings[counts[0]]
            click.echo(f"{count:>6} sources: sweep, none due {timing['sweep_idle_ms']:.1f} ms "
                       f"(x{timing['sweep_idle_ms'] / base['sweep_idle_ms']:.1f}); all due {timing['sweep_due_ms']:.0f} ms "
                       f"in {timing['sweeps_to_claim']:.0f} sweep(s), {timing['ms_per_due_window']:.3f} ms per due window "
                       f"(x{timing['ms_per_due_window'] / base['ms_per_due_window']:.2f}); reaper, none lost "
                       f"{timing['reap_none_lost_ms']:.1f} ms (x{timing['reap_none_lost_ms'] / base['reap_none_lost_ms']:.1f}), "
                       f"all lost {timing['ms_per_lost_batch']:.3f} ms per batch; close_quiet, none quiet "
                       f"{timing['close_quiet_none_quiet_ms']:.1f} ms "
                       f"(x{timing['close_quiet_none_quiet_ms'] / base['close_quiet_none_quiet_ms']:.1f})")
            figures |= {f"micro_{count}_{figure}": round(value, 3) for figure, value in timing.items()}
        runs = [end_to_end(sources, rate, seconds, Path(scratch), concurrency) for sources, rate in points(point_text)]
    base = runs[0] if runs else {}
    for run in runs:
        sources = run["sources"]
        click.echo(f"{sources:>6} sources at {run['events_per_second']:,} events/s for {seconds}s: p50 "
                   f"{run['p50_seconds']:.2f}s, p99 {run['p99_seconds']:.2f}s (x{run['p99_seconds'] / base['p99_seconds']:.1f}); "
                   f"p99 once past the first {STEADY_AFTER_WINDOWS} windows {run['p99_steady_seconds']:.2f}s; "
                   f"drain {run['drain_seconds']:.1f}s; CPU {run['cpu_us_per_event']:,.0f} us/event "
                   f"(x{run['cpu_us_per_event'] / base['cpu_us_per_event']:.1f}); {run['batch_calls']:,} batch calls, "
                   f"{run['push_api_calls']:,} requests; items wrong {run['items_wrong']}; published in "
                   f"{run['publish_seconds']:.1f}s; CPU ms per batch call: main processes "
                   f"{run['cpu_ms_per_batch_ingest']:.1f}, pools {run['cpu_ms_per_batch_push']:.1f}, Redis "
                   f"{run['cpu_ms_per_batch_redis']:.1f}, emulator {run['cpu_ms_per_batch_emulator']:.1f}")
        figures |= {f"e2e_{sources}_{figure}": round(value, 3) if isinstance(value, float) else value
                    for figure, value in run.items() if figure != "sources"}
        targets += [below(f"p99 publish-to-accepted, {sources} sources (s)", round(run["p99_seconds"], 2),
                          window + LATENCY_MARGIN_SECONDS),
                    below(f"drain after publishing, {sources} sources (s)", round(run["drain_seconds"], 2),
                          DRAIN_WINDOWS * window)]
    echo_targets(targets)
    notes = [f"{WORKERS} workers x {concurrency} pool process, beat, a private embedded Redis (store and broker) "
             f"and emulator on one machine shared with other work; {seconds}s of publishing per point."]
    write_result(name, "Many sources: sweep and reaper cost, p99 latency against the number of sources",
                 invocation(), figures, targets, notes)


if __name__ == "__main__":
    main()
