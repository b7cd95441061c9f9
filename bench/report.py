"""Regenerate docs/benchmarks.md and docs/benchmarks.png from bench/results/*.json.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python bench/report.py

The page says what each benchmark measures (the descriptions below), how it was run, its figures
(pushsync and its baseline side by side), its targets and the notes its run wrote. The page and
the plot depend only on the results files: running this twice gives the same bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import matplotlib

matplotlib.use("Agg")  # no display: the plot only goes to a file
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402
from results import REPO, RESULTS_DIR  # noqa: E402

from producers.events.limits import CONTAINER_LIMIT_BYTES, MIB  # noqa: E402

PAGE = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks.png"
BASELINE_PREFIX = "baseline_"
PLOT_SIZE_INCHES = (13, 4.2)
PLOT_DPI = 110
PUSHSYNC_COLOUR, BASELINE_COLOUR = "#1f6fb4", "#c8c8c8"
LOG_TICKS = (1.0, 2.0, 5.0)
"""A log axis over a few powers of ten is labelled at 1, 2 and 5 of each, in plain numbers."""
FEW_DECADES = 2
"""Past this many powers of ten, a log axis is labelled at each power only."""


@dataclass(frozen=True)
class Description:
    """What the page says of a benchmark, whatever its last run measured."""

    measures: str
    """What it measures and against what, in a paragraph."""
    sides: tuple[str, str] = ("pushsync", "baseline")
    """Column headings for a figure and its `baseline_` twin."""
    notes: list[str] = field(default_factory=list)
    """How to read the figures, beyond what the run itself wrote."""
    derive: Callable[[dict[str, float]], list[str]] = lambda figures: []
    """Notes worked out from the run's figures."""


def fewest_rebuild_calls(figures: dict[str, float]) -> list[str]:
    """What the calls target asks of this export at best: every container filled to the limit."""
    if "uploaded_mib" not in figures:
        return []
    fixed = figures["push_api_calls"] - 2 * figures["batches"]
    containers = math.ceil(figures["uploaded_mib"] * MIB / CONTAINER_LIMIT_BYTES)
    fewest = fixed + 2 * containers
    baseline = figures["baseline_push_api_calls"]
    return [
        f"At best, every batch fills a {CONTAINER_LIMIT_BYTES // MIB} MiB container: "
        f"{figures['uploaded_mib']:,.0f} MiB of batch files need {containers} containers, 2 calls each, plus the "
        f"{fixed:,} status and olderthan calls: {fewest:,} calls, {baseline / fewest:.1f} times fewer than the "
        f"baseline's {baseline:,}. Counting the batch calls and containers alone, "
        f"{(baseline - fixed) / (2 * containers):.1f} times fewer. The run made {figures['batches']:,} batches "
        f"of {figures['uploaded_mib'] / figures['batches']:,.0f} MiB on average.",
    ]


DESCRIPTIONS = {
    "end_to_end": Description(
        "1,000,000 change events over 50 sources, 20 % of the items updated repeatedly, published to the broker "
        "and pushed by real workers into the emulator: events per second, Push API calls per 1,000 events, "
        "end-to-end latency against the window length, worker peak RSS. The baseline, on the same emulator in the "
        "same run, sends one single-item request per event, as a hand-written change hook does.",
        sides=("pushsync", "one request per event"),
    ),
    "rebuild": Description(
        "A full rebuild of 1,000,000 items (about 1 GB of NDJSON) with `pushsync rebuild` through a real worker "
        "and beat, against the same export pushed as Coveo's official push-api-client.js does it: 5 MiB batches, "
        "10 at a time, each through its own file container. Same emulator, same run: Push API calls, wall time to "
        "the full index, worker peak RSS.",
        sides=("pushsync rebuild", "5 MiB batches"),
        notes=[
            "Where the time goes: each run counts the CPU seconds of every process of each phase (above). Both "
            "phases share the same cores with the emulator and Redis, so wall time follows CPU per item. py-spy "
            "on the command (2026-11-22) puts two thirds of its CPU in checking lines (pydantic validation, strict "
            "JSON with duplicate-key checks, filling in eventId and occurredAt, encoding) and one third in feeding "
            "them to Redis; the worker's push reads the window back, decodes, compresses, encodes, writes the "
            "batch file and advances the high-water marks. Redis runs the coalescing script for every item and "
            "writes it to its append-only file. The baseline only parses and re-encodes before the emulator's share.",
            "The chain is also serial: the whole export is checked before anything is pushed (a bad export must "
            "push nothing), one batch is in flight per source, and the emulator applies the last container after "
            "its upload. Smaller windows would shorten it but cost containers; this export fits in 2.",
            "The emulator's RSS during the baseline includes what it had not given back after the reset.",
        ],
        derive=fewest_rebuild_calls,
    ),
    "chaos": Description(
        "Three workers, one SIGKILLed every few seconds, and an emulator answering 5 % 503 and 2 % 429 with "
        "`Retry-After`: the final index must equal the expectation and the dead-letter queue must be empty.",
    ),
    "ingest": Description(
        "Events per second that a real `celery worker` writes into Redis windows, against a raw kombu consumer "
        "that only acknowledges the same messages. Everything runs on a private embedded Redis, never on a shared "
        "server. In each round the same messages go first to the raw consumer, then to a worker started on the "
        "full queue, timed from its first `received` count after it is ready until every event is counted, so "
        "start-up is not counted.",
        sides=("pushsync worker", "raw kombu"),
        notes=[
            "With one event per message, kombu's Redis transport dominates: about 1.5 ms of CPU per message for "
            "delivery and acknowledgement, mostly redis-py clients built per call. Ingestion itself adds "
            "validation and one coalescing round trip per group of messages.",
            "With 500 events per message (py-spy on the worker, 2026-11-22, with one `coalesce.lua` call per "
            "target per group, a writer thread and hiredis): about two thirds of the worker's samples are on its "
            "main thread, decoding events (pydantic validation about 20 % of all samples, re-encoding each event "
            "about 10 %, JSON about 6 %) and in kombu's delivery (about 19 %); the rest are on the writer thread, "
            "mostly waiting for the coalescing script's replies, which Redis computes on the same two cores.",
            "Before the ingest step was ordered after mingle, a worker started on a full queue consumed it inside "
            "mingle's hello: it never became ready while events kept coming, and with large messages it wrote "
            "groups of 200 messages (100,000 events) at once, with a peak RSS of 789 MiB.",
        ],
    ),
    "big_window": Description(
        "One source gets 1,000,000 events, 4 versions of each of 250,000 items, through a real worker "
        "(concurrency 1) and beat on a private embedded Redis and emulator; the run waits until the index holds "
        "every item. The baseline, in the same run, is a window 100 times smaller. Default settings apply: a "
        "window closes early at 100,000 items or 200 MiB, and each batch is streamed from Redis through "
        "temporary files.",
        sides=("1,000,000 events", "100 times smaller"),
        notes=["Worker memory must not grow with the window, and no event may be lost."],
    ),
    "hosts": Description(
        "End-to-end throughput (events per second from the first publish to the acceptance of the last batch) "
        "with 1, 2 and 3 worker hosts, each a network namespace with one worker process of one pool process "
        "(tests/support/hosts.py), against one private Redis (store and broker) and the emulator on the hosts' "
        "bridge, with a 1-second window. The same 100,000-event workload runs on each host count in turn; the "
        "index is checked item by item against last-write-wins after each run, and batches must come from "
        "every host. `hostsN_ratio` is the run's throughput against the 1-host run of the same invocation.",
        notes=["On a 2-core machine the hosts add processes, not cores. One host is held back by its one "
               "ingesting main process (its run ends long after the last publish); with two and three hosts the "
               "run ends within a few seconds of the last publish, so the publisher, on the same cores, is the "
               "bottleneck. The machine is shared: `hostsN_publish_seconds` shows how much the load moved between "
               "the runs of one invocation (two invocations 20 minutes apart measured 1.97x and 2.28x, then "
               "1.50x and 3.07x)."],
    ),
    "emulator": Description(
        "The emulator must never be the bottleneck of the other benchmarks. Each part runs on a fresh emulator "
        "process: single-item PUTs per second against a trivial Starlette route on the same server stack; a "
        "100,000-item batch (upload, batch call, applied) against `json.load` of the same file; a 256 MB upload's "
        "throughput against the trivial route and the emulator's peak RSS.",
    ),
    "publish": Description(
        "Events per second a producer publishes with one event per message (the baseline) and batched, on the "
        "same broker in the same run.",
    ),
    "small_windows": Description(
        "Windows of one or two items through a real worker and beat into the emulator: the requests that carry "
        "each window's items, by single-item calls (pushsync's default) against a file container, its upload and "
        "a batch call (the baseline, `PUSHSYNC_SINGLE_CALL_MAX_ITEMS=0`), on sources of their own in the same run.",
        sides=("single-item calls", "file containers"),
    ),
    "paused_drain": Description(
        "A source paused by the emulator's item allowance (412 DOCUMENT_LIMIT_EXCEEDED) while a backlog buffers, "
        "then lifted: what each pause period sends (one probe of one item) against the refused attempt that "
        "uploaded the whole batch (the baseline, the run's first refusal), and how soon after the pause ends the "
        "parked batch is sent and the backlog drained.",
        sides=("each pause period", "the refused batch"),
    ),
    "sources": Description(
        "Many sources. First the sweep's, the reaper's and closing quiet bursts' cost with 10, 1,000 and 10,000 "
        "sources, each with one open window (real scripts on a private Redis, no push made). Then end to end: "
        "events published at a fixed rate over 10, 1,000 or 10,000 sources through 2 workers of one pool process "
        "each, beat, a private Redis and the emulator, all on the same 2 cores: p99 from each event's publishing to "
        "the acceptance of the batch that carried it (also past the first two windows), the drain after the last "
        "event, and CPU per event and per batch call. Ratios are against the 10-source point (the baseline) of the "
        "same run.",
        notes=["The targets are p99 within the window plus 2 s and a drain within two windows. At 1,000 sources "
               "and 1,000 events/s the windows of 5 s hold about 5 events each, about 200 batches a second; on "
               "2026-12-02 three 60 s runs met every target (p99 5.6-6.1 s at 1,000 sources), at about 7 ms of CPU per "
               "batch call in all; on the day before, the same code on the same machine took 10-17 ms per call and "
               "the bound on the queue lengthened the windows to about 7 s (p99 11-12 s). A quiet source's "
               "window is a first window (0.5 s), so at 10,000 sources most events are pushed within a second. "
               "This virtual machine's speed varies by up to 2x between identical runs: compare figures within "
               "one run."],
    ),
}
ORDER = ["end_to_end", "rebuild", "chaos", "ingest", "big_window", "hosts", "emulator", "publish"]
"""Sections in this order; results not named here follow, by name."""

INTRO = """# Benchmarks

Each script in `bench/` measures one part of pushsync against a baseline measured in the same
run, on this project's 2-core development machine, which other work shares: figures move
between runs. None is a test: each prints its figures with its targets ("met" or "NOT MET"),
exits 0, and writes `bench/results/<name>.json`. This page and its plot are generated from those
files by `python bench/report.py` (`pip install -e '.[bench]'` first); edit the descriptions
there, not here.

![Push API calls and wall time against the baselines, and ingestion against raw kombu](benchmarks.png)
"""


@dataclass(frozen=True)
class Pair:
    """One group of bars: pushsync's figure and its baseline's, from one result."""

    label: str
    result: str
    figure: str
    baseline: str


PANELS = [
    ("Push API calls (log scale)", True, [
        Pair("end to end\nvs 1 request per event", "end_to_end", "push_api_calls", "baseline_push_api_calls"),
        Pair("full rebuild\nvs 5 MiB batches", "rebuild", "push_api_calls", "baseline_push_api_calls"),
    ]),
    ("Wall time, seconds (log scale)", True, [
        Pair("end to end\nvs 1 request per event", "end_to_end", "wall_seconds", "baseline_wall_seconds"),
        Pair("full rebuild\nvs 5 MiB batches", "rebuild", "wall_seconds", "baseline_wall_seconds"),
    ]),
    ("Ingestion, events/s (log scale)", True, [
        Pair("1 event a message\nvs raw kombu", "ingest", "single_worker_events_per_second",
             "single_raw_events_per_second"),
        Pair("500 events a message\nvs raw kombu", "ingest", "batched_worker_events_per_second",
             "batched_raw_events_per_second"),
    ]),
]
"""The plot: (title, log scale, bar groups); a group whose result or figures are missing is left out."""


def load_results(directory: Path) -> dict[str, dict]:
    found = {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}
    named = [name for name in ORDER if name in found]
    return {name: found[name] for name in named + sorted(set(found) - set(named))}


def number(value: float) -> str:
    """A figure as the page shows it: thousands separated, decimals by magnitude."""
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN: the process was gone when it was read
        return "n/a"
    size = abs(value)
    return f"{value:,.0f}" if size >= 100 else f"{value:,.1f}" if size >= 10 else f"{value:,.2f}"


def figures_table(figures: dict[str, float], sides: tuple[str, str]) -> list[str]:
    """The figures, each beside its `baseline_` twin when it has one."""
    twins = {name: figures[BASELINE_PREFIX + name] for name in figures if BASELINE_PREFIX + name in figures}
    shown = [name for name in figures
             if not (name.startswith(BASELINE_PREFIX) and name.removeprefix(BASELINE_PREFIX) in twins)]
    if not twins:
        return ["| figure | value |", "| --- | ---: |", *(f"| `{name}` | {number(figures[name])} |" for name in shown)]
    rows = [f"| figure | {sides[0]} | {sides[1]} |", "| --- | ---: | ---: |"]
    for name in shown:
        twin = number(twins[name]) if name in twins else ""
        rows.append(f"| `{name}` | {number(figures[name])} | {twin} |")
    return rows


def targets_table(targets: list[dict]) -> list[str]:
    if not targets:
        return []
    rows = ["| target | measured | bound | |", "| --- | ---: | --- | --- |"]
    rows += [f"| {t['name']} | {number(t['value'])} | `{t['target']}` | {'met' if t['met'] else '**NOT MET**'} |"
             for t in targets]
    return ["Targets:", "", *rows, ""]


def section(result: dict) -> list[str]:
    description = DESCRIPTIONS.get(result["name"], Description(result["title"]))
    notes = result["notes"] + description.derive(result["figures"]) + description.notes
    return [
        f"## {result['title']}", "",
        f"    {result['command']}", "",
        description.measures, "",
        f"Measured {result['measured_at'][:10]} on {result['machine']}.", "",
        *figures_table(result["figures"], description.sides), "",
        *targets_table(result["targets"]),
        *(f"- {note}" for note in notes),
        *([""] if notes else []),
    ]


def page(results: dict[str, dict]) -> str:
    lines = [INTRO]
    for result in results.values():
        lines += section(result)
    return "\n".join(lines).rstrip() + "\n"


def plot(results: dict[str, dict]) -> None:
    """Grouped bars, pushsync beside its baseline, one panel per kind of figure."""
    figure, axes = plt.subplots(1, len(PANELS), figsize=PLOT_SIZE_INCHES)
    for axis, (title, log, pairs) in zip(axes, PANELS):
        shown = [pair for pair in pairs if {pair.figure, pair.baseline} <= set(results.get(pair.result, {})
                                                                                   .get("figures", {}))]
        axis.set_title(title)
        if not shown:
            axis.text(0.5, 0.5, "not measured yet", ha="center", va="center", transform=axis.transAxes)
            axis.set_xticks([])
            axis.set_yticks([])
            continue
        positions = range(len(shown))
        ours = [results[pair.result]["figures"][pair.figure] for pair in shown]
        theirs = [results[pair.result]["figures"][pair.baseline] for pair in shown]
        width = 0.38
        for offset, values, colour, label in ((-width / 2, ours, PUSHSYNC_COLOUR, "pushsync"),
                                              (width / 2, theirs, BASELINE_COLOUR, "baseline")):
            bars = axis.bar([p + offset for p in positions], values, width, color=colour, label=label,
                            edgecolor="#555555", linewidth=0.5)
            axis.bar_label(bars, labels=[number(v) for v in values], fontsize=8, padding=2)
        if log:
            axis.set_yscale("log")
            decades = math.log10(max(ours + theirs) / min(ours + theirs))
            axis.yaxis.set_major_locator(LogLocator(subs=LOG_TICKS if decades <= FEW_DECADES else (1.0,)))
            axis.yaxis.set_minor_formatter(NullFormatter())
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
        axis.margins(y=0.15)
        if log:
            # Bars grow from a power of ten, not from wherever the data starts: their lengths stay honest.
            axis.set_ylim(bottom=10 ** math.floor(math.log10(min(ours + theirs))))
        axis.set_xticks(list(positions), [pair.label for pair in shown], fontsize=9)
        axis.spines[["top", "right"]].set_visible(False)
    handles, labels = next((axis.get_legend_handles_labels() for axis in axes if axis.patches), ([], []))
    figure.legend(handles, labels, loc="upper center", ncol=2, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 0.92))
    # No metadata: the same results give the same bytes.
    figure.savefig(PLOT, dpi=PLOT_DPI, metadata={"Software": None})
    plt.close(figure)


@click.command()
@click.option("--results", "directory", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=RESULTS_DIR, show_default="bench/results", help="Where the results files are.")
def main(directory: Path) -> None:
    results = load_results(directory)
    PAGE.write_text(page(results))
    plot(results)
    click.echo(f"{PAGE.relative_to(REPO)} and {PLOT.relative_to(REPO)} regenerated from {len(results)} result(s)")

if __name__ == "__main__":
    main()
