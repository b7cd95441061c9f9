"""A window of 1,000,000 events for one source: bounded worker memory, every item indexed.

    .venv/bin/python bench/bench_big_window.py [--events N] [--versions N]

Runs on a private embedded Redis and a private emulator, with a real worker and beat. The
events (`--versions` versions of each of N / versions items, newest published last) all go to
one source; the run waits until the emulator's index holds every item at its newest version.
The baseline, measured in the same run on a fresh worker, is a window 100 times smaller: the
ratio of the workers' peak RSS shows whether memory grows with the window (it must not: batches
are streamed from Redis and written to disk, and a full window closes early). Not a test: the
figures are printed, exit status 0, and written to bench/results/big_window.json.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import requests
from memory import tree_peak_rss_mib
from results import invocation, write_result

from producers import Publisher
from worker.children import celery, emulator
from worker.store.embedded import EmbeddedRedis, free_port

SOURCE = "big-window"
ORGANIZATION = "bench"
API_KEY = "bench-key"
EVENTS = 1_000_000
VERSIONS = 4
BASELINE_DIVISOR = 100
EVENTS_PER_MESSAGE = 500
WAIT_SECONDS = 1800
POLL_SECONDS = 1.0


def events(count: int, versions: int):
    items = count // versions
    for version in range(1, versions + 1):
        for n in range(items):
            yield {"kind": "item.upsert", "source": SOURCE, "version": version,
                   "documentId": f"https://example.com/{n}", "item": {"data": f"item {n} version {version}"}}


def index_count(url: str) -> int:
    response = requests.get(f"{url}/_emulator/organizations/{ORGANIZATION}/sources/{SOURCE}/items",
                            params={"documentId": "https://example.com/0"}, timeout=30)
    return response.json()["count"]


def run(directory: Path, count: int, versions: int) -> tuple[float, float, int]:
    """(seconds from first publish to full index, worker peak RSS MiB, items) for one window."""
    redis_server = EmbeddedRedis(directory / "redis")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    children = []
    try:
        children.append(emulator(port, api_key=API_KEY, log_path=directory / "emulator.log",
                                 args=["--organization", ORGANIZATION, "--source", SOURCE]))
        env = {"REDIS_URL": redis_server.url, "BROKER_URL": redis_server.url.replace("/0", "/1"),
               "COVEO_PUSH_URL": f"{url}/push/v1", "COVEO_ORGANIZATION_ID": ORGANIZATION, "COVEO_API_KEY": API_KEY}
        worker = celery("worker", env=env, log_path=directory / "worker.log", extra=["--concurrency", "1"])
        children.append(worker)
        children.append(celery("beat", env=env, log_path=directory / "beat.log"))
        items = count // versions
        started = time.monotonic()
        with Publisher(env["BROKER_URL"], events_per_message=EVENTS_PER_MESSAGE) as publisher:
            publisher.publish_many(events(count, versions))
        deadline = time.monotonic() + WAIT_SECONDS
        while index_count(url) < items:
            if time.monotonic() > deadline:
                raise RuntimeError(f"index not complete after {WAIT_SECONDS}s; logs in {directory}")
            time.sleep(POLL_SECONDS)
        return time.monotonic() - started, tree_peak_rss_mib(worker.popen.pid), items
    finally:
        for child in reversed(children):
            child.stop(timeout=20)
        redis_server.stop()


@click.command()
@click.option("--events", "count", default=EVENTS, show_default=True, help="Events in the big window.")
@click.option("--versions", default=VERSIONS, show_default=True, help="Versions of each item among them.")
def main(count: int, versions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-window-") as scratch:
        base = Path(scratch)
        small = count // BASELINE_DIVISOR
        (base / "small").mkdir()
        (base / "big").mkdir()
        small_seconds, small_rss, small_items = run(base / "small", small, versions)
        big_seconds, big_rss, big_items = run(base / "big", count, versions)
    print(f"baseline window: {small:,} events -> {small_items:,} items indexed in {small_seconds:.1f}s, "
          f"worker peak RSS {small_rss:.0f} MiB")
    print(f"big window:      {count:,} events -> {big_items:,} items indexed in {big_seconds:.1f}s, "
          f"worker peak RSS {big_rss:.0f} MiB ({count / big_seconds:,.0f} events/s end to end)")
    print(f"peak RSS ratio big/baseline: {big_rss / max(small_rss, 1):.2f} for a window {BASELINE_DIVISOR}x larger")
    figures = {"events": count, "versions": versions, "items": big_items, "seconds": big_seconds,
               "worker_peak_rss_mib": big_rss, "events_per_second": count / big_seconds,
               "baseline_events": small, "baseline_items": small_items, "baseline_seconds": small_seconds,
               "baseline_worker_peak_rss_mib": small_rss, "baseline_events_per_second": small / small_seconds,
               "rss_ratio": big_rss / max(small_rss, 1)}
    write_result("big_window", f"A window of {count:,} events", invocation(), figures, [], [
        f"The baseline window is {BASELINE_DIVISOR} times smaller; the ratio of the workers' peak RSS shows whether "
        "worker memory grows with the window. Both runs end with every item indexed at its newest version.",
    ])


if __name__ == "__main__":
    main()
