"""A paused source: what each pause period costs, and how soon its backlog drains once the pause ends.

    .venv/bin/python bench/bench_paused_drain.py [--first N] [--backlog N] [--probes N]

A private embedded Redis (store and broker), a private emulator over HTTP, one real `celery worker`
and beat. The emulator's item allowance is set to 0, so every item call is answered 412
DOCUMENT_LIMIT_EXCEEDED (no Retry-After: the source pauses for PUSHSYNC_PAUSE_SECONDS). `--first`
items are published; their batch is built, uploaded and refused, which pauses the source; then
`--backlog` more items are published while it is paused, and `--probes` pause periods go by.
The allowance is then lifted, and the run waits until the index holds every item.

The baseline, measured in the same run, is the first refused attempt: the whole batch rebuilt
and uploaded before the batch call fails, which is what every pause period cost before a paused
source probed with one item. Figures come from the emulator's request log and are written to
bench/results/paused_drain.json. Not a test.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import click
from results import at_least, below, echo_targets, invocation, write_result
from stack import Stack, batch_calls, is_upload, wait_until

from producers import Publisher

SOURCE = "paused"
FIRST = 20_000
BACKLOG = 50_000
PROBES = 3
PAUSE_SECONDS = 2.0
WINDOW_SECONDS = 2.0
SWEEP_SECONDS = 0.5
WAIT_SECONDS = 300
ITEM_TEXT = "lorem ipsum " * 40
URL_ROOT = "https://bench.example/paused"
MIB = 1024 * 1024
BYTES_RATIO_TARGET = 1000
"""A pause period costs at least a thousand times fewer bytes than the refused batch's upload."""


def upserts(start: int, count: int) -> list[dict[str, Any]]:
    return [{"kind": "item.upsert", "source": SOURCE, "version": 1, "documentId": f"{URL_ROOT}/{n}",
             "item": {"data": ITEM_TEXT, "metadata": {"n": n}}} for n in range(start, start + count)]


def item_calls(log: list[dict[str, Any]], status: int) -> list[dict[str, Any]]:
    return [entry for entry in log if f"/sources/{SOURCE}/documents" in entry["path"] and entry["status"] == status]


def ends(entry: dict[str, Any]) -> float:
    return entry["time"] + entry["durationMs"] / 1000


@click.command()
@click.option("--first", default=FIRST, show_default=True, help="Items of the batch refused first.")
@click.option("--backlog", default=BACKLOG, show_default=True, help="Items published while the source is paused.")
@click.option("--probes", default=PROBES, show_default=True, help="Pause periods that go by before the lift.")
def main(first: int, backlog: int, probes: int) -> None:
    env = {"PUSHSYNC_PAUSE_SECONDS": str(PAUSE_SECONDS), "PUSHSYNC_WINDOW_SECONDS": str(WINDOW_SECONDS),
           "PUSHSYNC_SWEEP_SECONDS": str(SWEEP_SECONDS)}
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-paused-") as scratch, \
            Stack(Path(scratch), [SOURCE], env) as stack:
        emulator, logs = stack.emulator, stack.directory
        emulator.configure(itemAllowance=0)
        stack.start_worker(1)
        stack.start_beat()
        with Publisher(stack.broker_url) as publisher:
            publisher.publish_many(upserts(0, first))
            wait_until(lambda: item_calls(emulator.requests(), 412), WAIT_SECONDS, "the first refusal", logs)
            first_log = emulator.requests()
            publisher.publish_many(upserts(first, backlog))
        refusal = item_calls(first_log, 412)[0]
        wait_until(lambda: len(item_calls(emulator.requests(refusal["id"]), 412)) >= probes, WAIT_SECONDS,
                   "the refused probes", logs)
        paused_log = emulator.requests(refusal["id"])
        emulator.configure(itemAllowance=None)
        lifted = time.time()
        wait_until(lambda: emulator.count(SOURCE) == first + backlog, WAIT_SECONDS, "every item indexed", logs)
        drain_log = emulator.requests(paused_log[-1]["id"])

    attempt_uploads = [entry for entry in first_log if is_upload(entry)]
    attempt_bytes = sum(entry["bytes"] for entry in attempt_uploads)
    # The push opens the source's burst (REFRESH) before it reads and writes the batch.
    attempt_seconds = ends(refusal) - min(entry["time"] for entry in first_log if entry["path"].endswith("/status"))
    refused_probes = item_calls(paused_log, 412)
    paused_uploads = [entry for entry in paused_log if is_upload(entry)]
    period_bytes = (sum(entry["bytes"] for entry in paused_log)) / len(refused_probes)
    accepted = batch_calls(drain_log)
    probe = accepted[0]
    # The pause that the lift ended began with the last refused probe's answer.
    resumed_after = probe["time"] - (ends(refused_probes[-1]) + PAUSE_SECONDS)
    drained_after = ends(accepted[-1]) - probe["time"]
    ratio = attempt_bytes / period_bytes
    targets = [
        at_least("times fewer bytes per pause period than a refused batch", round(ratio), BYTES_RATIO_TARGET),
        below("uploads while paused", len(paused_uploads), 1),
        below("seconds from a pause's end to the parked batch's first call", round(resumed_after, 2), WINDOW_SECONDS),
    ]
    click.echo(f"paused drain: {first:,} items refused (412 DOCUMENT_LIMIT_EXCEEDED), {backlog:,} more published "
               f"while paused, {len(refused_probes)} pause periods of {PAUSE_SECONDS:g}s, window {WINDOW_SECONDS:g}s")
    click.echo(f"  baseline, the refused attempt: {len(attempt_uploads)} upload(s) of {attempt_bytes / MIB:.1f} MiB, "
               f"{attempt_seconds:.2f}s from the push's REFRESH to the refusal")
    click.echo(f"  each later pause period: {period_bytes:,.0f} bytes in {len(paused_log) / len(refused_probes):.1f} "
               f"request(s) (one probe of one item); uploads while paused: {len(paused_uploads)}")
    click.echo(f"  after the lift: the parked batch's first call {resumed_after:.2f}s after its pause ended; "
               f"{len(accepted)} accepted item call(s) drained the {first + backlog:,} items "
               f"{drained_after:.2f}s after it (the lift came {probe['time'] - lifted:.2f}s before the probe)")
    click.echo(f"ratio, refused batch / pause period: bytes {ratio:,.0f}x")
    echo_targets(targets)
    figures = {
        "first_items": first, "backlog_items": backlog, "pause_seconds": PAUSE_SECONDS, "window_seconds": WINDOW_SECONDS,
        "pause_periods": len(refused_probes), "uploads_while_paused": len(paused_uploads),
        "pause_period_bytes": round(period_bytes), "baseline_pause_period_bytes": attempt_bytes,
        "pause_period_seconds": round(sum(entry["durationMs"] for entry in refused_probes) / len(refused_probes) / 1000, 3),
        "baseline_pause_period_seconds": round(attempt_seconds, 2),
        "resume_after_pause_seconds": round(resumed_after, 2), "drain_seconds": round(drained_after, 2),
        "drain_item_calls": len(accepted), "ratio_pause_period_bytes": round(ratio),
    }
    notes = [
        "Baseline: the first refused attempt, the whole batch written and uploaded before the batch call is "
        "refused; before a paused source probed, every pause period repeated it. A pause period now costs one "
        "single-item call of one item (the probe), refused the same way.",
        f"Resume: from the end of the last pause (the last refused probe's answer plus {PAUSE_SECONDS:g}s) to the "
        f"parked batch's first call, its probe; beat sweeps every {SWEEP_SECONDS:g}s. Drain: from that probe to "
        "the last accepted item call (the parked batch, then the backlog's window).",
    ]
    write_result("paused_drain", "A paused source: cost per pause period, and the drain once it ends", invocation(),
                 figures, targets, notes)


if __name__ == "__main__":
    main()
