"""`pushsync quarantine`: messages and events that could not be used, with the reason."""

from __future__ import annotations

import dataclasses

import click

from worker import quarantine as store
from worker.commands.output import echo_json, shorten, when
from worker.settings import load_settings
from worker.store import connect


@click.group()
def quarantine() -> None:
    """Quarantined messages and events: kept whole, never acknowledged away."""


@quarantine.command("list")
@click.option("--source", "target", help="Only entries naming this source or provider.")
@click.option("--limit", default=100, show_default=True, help="At most this many entries.")
def list_entries(target: str | None, limit: int) -> None:
    """List entries, oldest first."""
    entries = store.list_entries(connect(load_settings()), limit=limit, target=target)
    for entry in entries:
        click.echo(f"{entry.id}  {when(entry.at)}  {entry.target or '-'}  {shorten(entry.reason, 90)}")
    click.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")


@quarantine.command()
@click.argument("entry_id")
def show(entry_id: str) -> None:
    """Show one entry whole, as JSON."""
    entry = store.show(connect(load_settings()), entry_id)
    if entry is None:
        raise click.ClickException(f"no quarantine entry {entry_id}")
    echo_json(dataclasses.asdict(entry))


@quarantine.command()
@click.argument("entry_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Purge every entry.")
def purge(entry_ids: tuple[str, ...], everything: bool) -> None:
    """Delete the given entries (or --all) for good."""
    if not entry_ids and not everything:
        raise click.UsageError("name the entries to purge, or give --all")
    removed = store.purge(connect(load_settings()), None if everything else list(entry_ids))
    click.echo(f"purged {removed} entries")
