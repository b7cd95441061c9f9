"""`pushsync quarantine`: messages and events that could not be used, with the reason."""

from __future__ import annotations

import dataclasses

import click

from producers.errors import PublishError
from worker.commands.output import counted, echo_json, iso, shorten, when
from worker.commands.services import BROKER_DOWN, INVALID_INPUT, NOT_FOUND, fail, needs_store
from worker.ingest import quarantine as quarantined
from worker.ingest.quarantine_replay import ReplayOutcome
from worker.ingest.quarantine_replay import replay as replay_entries
from worker.settings import load_settings
from worker.store.connection import connect, store_url


@click.group()
def quarantine() -> None:
    """Quarantined messages and events: kept (bounded) with the reason, never acknowledged away."""


@quarantine.command("list")
@click.option("--source", "target", help="Only entries naming this source or provider.")
@click.option("--limit", default=100, show_default=True, help="At most this many entries.")
@needs_store()
def list_entries(target: str | None, limit: int) -> None:
    """List entries, oldest first."""
    entries = quarantined.list_entries(connect(load_settings()), limit=limit, target=target)
    for entry in entries:
        mark = "  (truncated)" if entry.truncated else ""
        click.echo(f"{entry.id}  {when(entry.at)}  {entry.target or '-'}  {shorten(entry.reason, 90)}{mark}")
    click.echo(counted(len(entries), "entry", "entries"))


@quarantine.command()
@click.argument("entry_id")
@needs_store()
def show(entry_id: str) -> None:
    """Show one entry whole, as JSON (`truncated`: raw holds only a prefix of `size` bytes)."""
    entry = quarantined.show(connect(load_settings()), entry_id)
    if entry is None:
        fail(NOT_FOUND, f"no quarantine entry {entry_id}")
    echo_json(dataclasses.asdict(entry) | {"at": iso(entry.at)})


@quarantine.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Replay every entry, oldest first.")
@click.option("--dry-run", is_flag=True, help="Say what would be replayed, change nothing.")
@needs_store(broker=True)
def replay(entry_ids: tuple[str, ...], everything: bool, dry_run: bool) -> None:
    """Validate entries again and republish what is valid now to pushsync.events.

    An entry leaves the quarantine once the broker confirmed its events; one still invalid stays
    with its current reason; a truncated one stays. Exit status: 0 when every entry was
    replayed, 4 when the broker did not confirm (the replay stops there; nothing after it
    changed), 8 when something stayed, 9 when an id was not found.
    """
    if bool(entry_ids) == everything:
        raise click.UsageError("name the entries to replay, or give --all (not both)")
    settings = load_settings()
    verb = "would replay" if dry_run else "replayed"
    replayed = events = stayed = missing = 0
    try:
        for result in replay_entries(connect(settings), settings.broker_url or store_url(settings),
                                     None if everything else list(entry_ids), dry_run=dry_run):
            done = f"{verb} {counted(result.events, 'event')}" if result.events else ""
            click.echo("  ".join(part for part in (result.entry_id, result.outcome.value, done,
                                                   shorten(result.detail, 120)) if part))
            events += result.events
            if result.outcome is ReplayOutcome.MISSING:
                missing += 1
            elif result.outcome.stayed:
                stayed += 1
            else:
                replayed += 1
    except PublishError as exc:
        click.echo(f"stopped: the broker did not confirm: {exc}", err=True)
        raise SystemExit(BROKER_DOWN) from None
    finally:
        click.echo(f"{verb} {counted(replayed, 'entry', 'entries')} ({counted(events, 'event')}); "
                   f"{counted(stayed, 'entry', 'entries')} stayed")
    if missing:
        raise SystemExit(NOT_FOUND)
    if stayed:
        raise SystemExit(INVALID_INPUT)


@quarantine.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Purge every entry (needs --yes).")
@click.option("--yes", is_flag=True, help="Confirm that every entry is to be deleted for good.")
@needs_store()
def purge(entry_ids: tuple[str, ...], everything: bool, yes: bool) -> None:
    """Delete the given entries (or --all --yes) for good."""
    if bool(entry_ids) == everything:
        raise click.UsageError("name the entries to purge, or give --all (not both)")
    if everything and not yes:
        raise click.UsageError("purging every entry deletes them for good: add --yes")
    removed = quarantined.purge(connect(load_settings()), None if everything else list(entry_ids))
    click.echo(f"purged {counted(removed, 'entry', 'entries')}")
