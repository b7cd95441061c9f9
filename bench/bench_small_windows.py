"""Small windows: Push API calls per window of one or two items, single-item calls against file containers.

    .venv/bin/python bench/bench_small_windows.py [--sources N] [--rounds N]

A private embedded Redis (store and broker), a private emulator over HTTP, one real `celery worker`
and beat, windows of one second. Two phases in one run, on sources of their own: the baseline with
`PUSHSYNC_SINGLE_CALL_MAX_ITEMS=0` (every window through a file container: create it, upload,
batch call), then pushsync's default (windows of at most two items by single-item calls). Each
phase publishes `--rounds` rounds, each round one new item to half the sources and two to the
others, and waits until the emulator's index holds them before the next. The calls come from
the emulator's request log: Push API calls (status, container, item and batch calls) and the
uploads to containers (storage traffic) counted apart; per window, the calls that carried items.

Figures are printed with their targets and written to bench/results/small_windows.json. Not a test.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from results import at_least, echo_targets, invocation, write_result
from stack import CallCounts, Stack, wait_until

from producers import Publisher

SOURCES = 100
ROUNDS = 4
WINDOW_SECONDS = 1
SINGLE_CALL_MAX_ITEMS = 2
"""pushsync's default for PUSHSYNC_SINGLE_CALL_MAX_ITEMS."""
WAIT_SECONDS = 120
CALL_RATIO_TARGET = 1.5
"""A window of one item takes one call instead of three, one of two items two: at least 1.5x fewer."""
URL_ROOT = "https://bench.example/small"
ITEM_TEXT = "lorem ipsum " * 40


@dataclass
class Phase(CallCounts):
    """What one phase sent for its windows."""

    name: str
    windows: int
    items: int
    log: list[dict[str, Any]]
    wall: float


    @property
    def item_traffic(self) -> int:
        """Requests that carried the windows' items: containers, uploads, batch and single-item calls."""
        return sum(not entry["path"].endswith("/status") for entry in self.log)


def sources_of(phase: str, count: int) -> list[str]:
    return [f"{phase}-{n}" for n in range(count)]


def run_phase(stack: Stack, name: str, sources: list[str], rounds: int, single_max: int) -> Phase:
    """Start a worker and beat with `single_max`, publish the rounds, wait for each; stop them."""
    stack.env["PUSHSYNC_SINGLE_CALL_MAX_ITEMS"] = str(single_max)
    stack.start_worker(1)
    stack.start_beat()
    emulator = stack.emulator
    since = emulator.last_request_id()
    started = time.monotonic()
    held = dict.fromkeys(sources, 0)
    windows = items = 0
    with Publisher(stack.broker_url) as publisher:
        for round_ in range(rounds):
            events = []
            for index, source in enumerate(sources):
                count = 1 + (index + round_) % 2
                events += [{"kind": "item.upsert", "source": source, "version": 1,
                            "documentId": f"{URL_ROOT}/{round_}/{n}", "item": {"data": ITEM_TEXT}} for n in range(count)]
                held[source] += count
                windows, items = windows + 1, items + count
            publisher.publish_many(events)
            wait_until(lambda: all(emulator.count(source) == want for source, want in held.items()), WAIT_SECONDS,
                       f"round {round_} of {name} indexed", stack.directory)
    wall = time.monotonic() - started
    # A status call of the other phase's sources (a late IDLE) is not this phase's.
    log = [entry for entry in emulator.requests(since)
           if "/sources/" not in entry["path"] or f"/sources/{sources[0].rsplit('-', 1)[0]}-" in entry["path"]]
    stack.stop_workers()
    return Phase(name, windows, items, log, wall)


@click.command()
@click.option("--sources", default=SOURCES, show_default=True, help="Sources per phase.")
@click.option("--rounds", default=ROUNDS, show_default=True, help="Rounds of one or two items per source.")
def main(sources: int, rounds: int) -> None:
    baseline_sources, single_sources = sources_of("containers", sources), sources_of("single", sources)
    env = {"PUSHSYNC_WINDOW_SECONDS": str(WINDOW_SECONDS)}
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-small-") as scratch, \
            Stack(Path(scratch), baseline_sources + single_sources, env) as stack:
        baseline = run_phase(stack, "baseline", baseline_sources, rounds, 0)
        single = run_phase(stack, "pushsync", single_sources, rounds, SINGLE_CALL_MAX_ITEMS)

    per_window = single.item_traffic / single.windows
    baseline_per_window = baseline.item_traffic / baseline.windows
    ratio = baseline_per_window / per_window
    targets = [at_least("times fewer requests per window of one or two items", round(ratio, 2), CALL_RATIO_TARGET)]
    click.echo(f"small windows: {sources} sources per phase, {rounds} rounds of one or two new items each, "
               f"window {WINDOW_SECONDS}s, one worker")
    for phase in (baseline, single):
        click.echo(f"  {phase.name}: {phase.windows:,} windows of {phase.items:,} items in {phase.wall:.1f}s: "
                   f"{phase.api_calls:,} Push API calls plus {phase.uploads:,} uploads; "
                   f"{phase.item_traffic / phase.windows:.2f} requests per window carried its items")
    click.echo(f"ratio, baseline / pushsync: requests per window {ratio:.2f}x, "
               f"Push API calls {baseline.api_calls / single.api_calls:.2f}x")
    echo_targets(targets)
    figures = {
        "sources": sources, "rounds": rounds, "windows": single.windows, "items": single.items,
        "window_seconds": WINDOW_SECONDS, "single_call_max_items": SINGLE_CALL_MAX_ITEMS,
        "requests_per_window": round(per_window, 3), "baseline_requests_per_window": round(baseline_per_window, 3),
        "push_api_calls": single.api_calls, "baseline_push_api_calls": baseline.api_calls,
        "uploads": single.uploads, "baseline_uploads": baseline.uploads,
        "wall_seconds": round(single.wall, 1), "baseline_wall_seconds": round(baseline.wall, 1),
        "ratio_requests_per_window": round(ratio, 2),
    }
    notes = [
        "Requests per window: those that carried the window's items, read from the emulator's request log: "
        "a file container, its upload and the batch call for the baseline; one single-item call per item for "
        "pushsync. Status calls (REFRESH, IDLE) are the same in both and counted in the Push API calls only.",
        f"The baseline is PUSHSYNC_SINGLE_CALL_MAX_ITEMS=0 on sources of its own in the same run; pushsync is its "
        f"default ({SINGLE_CALL_MAX_ITEMS}). Half the windows of each round hold one item, half two.",
    ]
    write_result("small_windows", "Small windows: single-item calls against file containers", invocation(),
                 figures, targets, notes)


if __name__ == "__main__":
    main()
