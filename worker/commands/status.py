"""`pushsync status`: every source and provider, the broker's queues, and the processes alive."""

from __future__ import annotations

import dataclasses
import json
import time

import click

from worker.commands.output import age, counted, echo_json, mib, table, when
from worker.commands.services import BROKER_DOWN, HEALTHY, STORE_DOWN
from worker.deadletter.queue import DEAD_LETTER_QUEUE
from worker.observe import overview
from worker.settings import load_settings

WATCH_SECONDS = 2.0
"""Default time between redraws with --watch."""
BATCH_ID_CHARS = 8
COLUMNS = ["BUFFERED", "OLDEST", "IN FLIGHT", "PAUSED", "LAST PUSH", "LAST ERROR", "DEAD LETTERS"]
"""What `cells` gives for a target, after its id."""


@click.command()
@click.option("--watch", type=click.FloatRange(min=0.1), is_flag=False, flag_value=WATCH_SECONDS, default=None,
              metavar="[SECONDS]", help=f"Redraw every SECONDS (default {WATCH_SECONDS:g}) until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line with --watch).")
def status(watch: float | None, as_json: bool) -> None:
    """Show each source and provider (buffered items, oldest event, batch in flight, pause, last
    push, last error, dead letters), the broker's queues, and the worker and beat processes alive.

    Exits 3 when the store (Redis) does not answer and 4 when the broker does not (as `pushsync
    health` does); what the other services said is shown all the same.
    """
    settings = load_settings()
    # Imported here: loading the Celery app reads every setting, which other commands need not.
    from worker.app import app

    if watch is None:
        seen = overview.gather(app, settings)
        echo_json(dataclasses.asdict(seen)) if as_json else click.echo(render(seen))
        raise SystemExit(STORE_DOWN if seen.store.error else BROKER_DOWN if seen.broker.error else HEALTHY)
    try:
        while True:
            seen = overview.gather(app, settings)
            if as_json:
                click.echo(json.dumps(dataclasses.asdict(seen), default=str))
            else:
                click.clear()
                click.echo(render(seen))
            time.sleep(watch)
    except KeyboardInterrupt:
        return


def render(seen: overview.Overview) -> str:
    """The overview as text: services and processes first, then a table per kind of target."""
    now = seen.at
    lines = [f"pushsync status at {when(now)}", ""]
    lines.append(f"store       {seen.store.error or seen.store.url + ' ok'}")
    queues = ", ".join(f"{name} {count}" for name, count in seen.queues.items())
    lines.append(f"broker      {seen.broker.error or seen.broker.url + ' ok, messages waiting: ' + queues}")
    lines += _workers(seen)
    lines.append(f"beat        {beat_state(seen)}")
    if seen.quarantined is not None:
        lines.append(f"quarantine  {seen.quarantined} entries")
    queued = seen.queues.get(DEAD_LETTER_QUEUE)
    if not seen.store.error and queued is not None and queued != seen.dead_letters_indexed:
        lines.append(f"note        the dead-letter queue holds {queued} entries and the per-target counts know "
                     f"{seen.dead_letters_indexed}: `pushsync dlq list` counts them again")
    if seen.store.error:
        return "\n".join(lines)
    for title, rows in (("SOURCE", seen.sources), ("PROVIDER", seen.providers)):
        lines.append("")
        if not rows:
            lines.append(f"no {title.lower()} seen yet")
            continue
        lines.append(table([title, *COLUMNS], [cells(row, now) for row in rows]))
        lines += reasons(rows)
    return "\n".join(lines)


def _workers(seen: overview.Overview) -> list[str]:
    if seen.broker.error:
        return ["workers     unknown: the broker does not answer"]
    if not seen.workers:
        return ["workers     none answered"]
    lines = []
    for n, worker in enumerate(seen.workers):
        label = "workers" if n == 0 else ""
        lines.append(f"{label:<12}{worker.name}: pid {worker.pid}, up {age(worker.uptime_seconds or 0)}, "
                     f"concurrency {worker.concurrency}, {counted(worker.tasks_run, 'task')} run, seen {when(worker.seen_at)}")
    return lines


def beat_state(seen: overview.Overview) -> str:
    """Whether beat is alive, and its last sweep, in words."""
    beat = seen.beat
    if beat is None:
        return "unknown: the store does not answer"
    holder = beat.holder
    held = (f"; {holder.describe()} holds the beat lock since {when(holder.since)}" if holder
            else "; no beat holds the beat lock")
    if beat.last_sweep is None:
        return f"no sweep seen yet{held}"
    last = f"last sweep {age(seen.at - beat.last_sweep)} ago ({when(beat.last_sweep)}) on {beat.worker}{held}"
    if beat.alive:
        return f"alive: {last}"
    if not seen.workers:
        return f"unknown: {last}, and no worker answers to run sweeps"
    return f"NOT SEEN: {last}; beat runs a sweep every few seconds: is it running?"


def reasons(rows: list[overview.TargetRow]) -> list[str]:
    """Why a window is held past its time, why a target is paused and what its last error said, under the table."""
    lines = []
    for row in rows:
        if row.held_for is not None:
            lines.append(f"  {row.id}: a full run holds the window open until it holds {mib(row.held_for)} "
                         f"({mib(row.buffered_bytes)} so far), to fill one file container")
        if row.paused:
            lines.append(f"  {row.id}: paused: {row.paused.reason}")
        error = row.recent.error
        if error and not (row.paused and error == f"paused: {row.paused.reason}"):
            lines.append(f"  {row.id}: last error: {error}")
    return lines


def cells(row: overview.TargetRow, now: float) -> list[str]:
    """The target's id and its COLUMNS as short text, as of `now` (epoch seconds)."""
    flight = "-"
    if row.in_flight:
        batch = row.in_flight[0]
        flight = f"{batch.batch[:BATCH_ID_CHARS]} {counted(batch.items, 'item')} {batch.state} {age(now - batch.claimed_at)}"
        if batch.attempts > 1:
            flight += f" (attempt {batch.attempts})"
    paused = f"{age(row.paused.until - now)} left" if row.paused else "-"
    last = row.recent
    pushed = f"{age(now - last.pushed_at)} ago, {counted(last.pushed_items or 0, 'item')}" if last.pushed_at else "never"
    error = f"{age(now - last.error_at)} ago" if last.error_at is not None else "-"
    held = row.dead_letters
    dead = f"{counted(held.events, 'event')} ({counted(held.entries, 'entry', 'entries')})" if held.entries else "0"
    oldest = age(now - row.oldest_at) if row.oldest_at is not None else "-"
    buffered = f"{row.buffered} held" if row.held_for is not None else str(row.buffered)
    return [row.id, buffered, oldest, flight, paused, pushed, error, dead]
