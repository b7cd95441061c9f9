"""`pushsync dlq`: inspect, replay, purge and export the dead-letter queue."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import click

from producers.cli import CannotDo
from producers.errors import InvalidEventError
from producers.events import parse_event
from producers.private_files import replacing
from worker.commands.output import counted, echo_json, iso, shorten, when
from worker.commands.services import NOT_FOUND, fail, needs_store
from worker.deadletter.operator import DeadLetterBrowser
from worker.deadletter.queue import DeadLetter
from worker.ingest.horizon import Horizon
from worker.settings import load_settings
from worker.store.connection import connect, store_url


def _dead_letters() -> DeadLetterBrowser:
    settings = load_settings()
    return DeadLetterBrowser(settings.broker_url or store_url(settings), connect(settings))


@click.group()
def dlq() -> None:
    """The dead-letter queue: pushes that could not succeed, with their context."""


@dlq.command("list")
@click.option("--source", "target", help="Only entries of this source (or provider) id.")
@click.option("--error", help="Only entries whose error class or errorCode is this.")
@needs_store(broker=True)
def list_entries(target: str | None, error: str | None) -> None:
    """List entries, oldest first."""
    entries = _dead_letters().list(target=target, error=error)
    for entry in entries:
        status = entry.error.status or "-"
        click.echo(f"{entry.id}  {when(entry.last_failure)}  {entry.target}  events={len(entry.events)}  "
                   f"{entry.error.error_class} {status} {entry.error.error_code}  {shorten(entry.error.message, 60)}")
    click.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


@dlq.command()
@click.argument("entry_id")
@needs_store(broker=True)
def show(entry_id: str) -> None:
    """Show one entry whole, as JSON."""
    entry = _dead_letters().show(entry_id)
    if entry is None:
        fail(NOT_FOUND, f"no dead-letter entry {entry_id}")
    shown = dataclasses.asdict(entry)
    echo_json(shown | {"first_failure": iso(entry.first_failure), "last_failure": iso(entry.last_failure)})


@dlq.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--source", "target", help="Only entries of this source (or provider) id.")
@click.option("--error", help="Only entries whose error class or errorCode is this.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed, change nothing.")
@needs_store(broker=True)
def replay(entry_ids: tuple[str, ...], target: str | None, error: str | None, dry_run: bool) -> None:
    """Publish entries' events back to pushsync.events with their original versions.

    With ENTRY_IDS only those entries, else every entry (of --source, with --error). Exit status 9 when a
    named entry was not found (the others are replayed).
    """
    letters = _dead_letters()
    wanted = set(entry_ids) or None
    if dry_run:
        entries = [e for e in letters.list(target=target, error=error) if wanted is None or e.id in wanted]
        verb = "would replay"
    else:
        entries = letters.replay(target=target, entry_ids=wanted, error=error)
        verb = "replayed"
    events = sum(len(entry.events) for entry in entries)
    click.echo(f"{verb} {counted(len(entries), 'entry', 'entries')} ({counted(events, 'event')})")
    aged = _past_horizon(entries, Horizon.of(load_settings()), time.time())
    if aged:
        click.echo(f"{counted(aged, 'event')} past the ordering horizon (occurredAt too old, or too far ahead): "
                   "ingestion quarantines them instead of pushing them; publish those items' current state "
                   "instead (docs/operations.md, Dead-letter queue)", err=True)
    missing = sorted((wanted or set()) - {entry.id for entry in entries})
    if missing:
        click.echo(f"not found{' for --source ' + target if target else ''}: {', '.join(missing)}", err=True)
        raise SystemExit(NOT_FOUND)


def _past_horizon(entries: list[DeadLetter], horizon: Horizon, now: float) -> int:
    """How many events of `entries` ingestion will refuse as outside `horizon` at `now` (epoch seconds)."""
    aged = 0
    for entry in entries:
        for event in entry.events:
            try:
                occurred_at = parse_event(event).occurred_at
            except InvalidEventError:
                continue  # ingestion quarantines it for its own reason
            aged += horizon.refusal(occurred_at, now) is not None
    return aged


@dlq.command()
@click.option("--source", "target", help="Only entries of this source (or provider) id.")
@click.option("--error", help="Only entries whose error class or errorCode is this.")
@click.option("--yes", is_flag=True, help="Confirm that the entries are to be deleted for good.")
@needs_store(broker=True)
def purge(target: str | None, error: str | None, yes: bool) -> None:
    """Delete entries (of --source, with --error) for good."""
    if not yes:
        raise click.UsageError("purging deletes entries for good: add --yes")
    click.echo(f"purged {_dead_letters().purge(target=target, error=error)} entries")


@dlq.command()
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@needs_store(broker=True)
def export(file: str) -> None:
    """Write every entry as NDJSON to FILE (- for standard output).

    FILE is written afresh, readable by its owner only (entries hold the items' content): it
    replaces what was there, a symlink included, only once every entry is written.
    """
    entries = _dead_letters().list()
    lines = (json.dumps(dataclasses.asdict(entry)) + "\n" for entry in entries)
    if file == "-":
        click.get_text_stream("stdout").writelines(lines)
    else:
        try:
            with replacing(Path(file), "w") as stream:
                stream.writelines(lines)
        except OSError as exc:
            raise CannotDo(f"cannot write {file}: {exc.strerror or exc}") from None
    click.echo(f"exported {len(entries)} entries", err=True)
