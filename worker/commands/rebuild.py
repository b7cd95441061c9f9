"""`pushsync rebuild` and `pushsync identities sync`: push a complete export, then remove the rest.

Both check the whole export first (line numbers for every refusal; `exports.py` does it once,
over every core), then hand its valid events to a full run (`worker/runs/rebuild.py`) that the
workers push; see that module for the guards.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import click

from worker.commands.services import COVEO_MISSING, INVALID_INPUT, RUN_INCOMPLETE, fail, needs_store
from worker.pushapi.errors import NotFoundError, PushApiError
from worker.runs.exports import check_export, default_processes
from worker.runs.rebuild import RebuildError, Rebuilds
from worker.runtime import push_api_client
from worker.settings import load_settings
from worker.store import keys
from worker.store.connection import connect


def _full_run_options(command: Callable) -> Callable:
    for option in reversed([
        click.option("--resume", "run_id", help="Resume the unfinished run RUN_ID (same export)."),
        click.option("--skip-invalid", is_flag=True, help="Push the valid lines of an export that has invalid ones."),
        click.option("--allow-empty", is_flag=True, help="Accept an empty export (it would remove everything)."),
        click.option("--max-delete-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
                     help="Refuse to remove anything if the run would remove more than this share of the last run's."),
        click.option("--queue-delay", type=click.IntRange(0), default=15, show_default=True,
                     help="Minutes the service waits before removing what the export no longer has."),
        click.option("--timeout", type=click.FloatRange(1), default=3600, show_default=True,
                     help="Seconds to wait for the workers to push the export."),
        click.option("--jobs", type=click.IntRange(1), default=default_processes, show_default="one per core",
                     help="Processes that check the export."),
    ]):
        command = option(command)
    return command


def _full_run(target: keys.Target, export: str, *, run_id: str | None, skip_invalid: bool, allow_empty: bool,
              max_delete_share: float, queue_delay: int, timeout: float, jobs: int) -> None:
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="pushsync-full-run-") as scratch:
        path = Path(export)
        if export == "-":
            path = Path(scratch) / "export.ndjson"
            with open(path, "wb") as copy:
                shutil.copyfileobj(sys.stdin.buffer, copy)
        with click.progressbar(length=path.stat().st_size, label="checking", file=sys.stderr) as bar:
            checked = check_export(path, target, Path(scratch), processes=jobs, compress_data=settings.compress_data,
                                   progress=bar.update)
        for number, reason in checked.invalid:
            click.echo(f"line {number}: {reason}", err=True)
        if checked.invalid_count > len(checked.invalid):
            click.echo(f"... and {checked.invalid_count - len(checked.invalid)} more invalid line(s)", err=True)
        if checked.invalid_count and not skip_invalid:
            click.echo(f"{checked.invalid_count} invalid line(s): nothing pushed, nothing deleted "
                       "(--skip-invalid pushes the valid ones)", err=True)
            raise SystemExit(INVALID_INPUT)
        if not checked.valid and not allow_empty:
            click.echo("the export is empty: a full run would remove everything; nothing done "
                       "(--allow-empty if that is meant)", err=True)
            raise SystemExit(INVALID_INPUT)
        runs = Rebuilds(connect(settings), push_api_client(settings), settings)
        try:
            run = runs.resume(target, run_id) if run_id else runs.start(target)
            run.window_bytes = checked.sample.window_bytes(settings)
            click.echo(f"run {run.id} of {target.id}: {checked.valid} change(s), orderingId {run.start_ms}", err=True)
            with click.progressbar(length=checked.lines, label="feeding", file=sys.stderr, show_pos=True) as bar:
                bar.update(run.lines_done)
                runs.feed(run, checked.entries(), checked.lines, bar.update)
            click.echo("waiting for the workers to push the export", err=True)
            outcome = runs.finish(run, queue_delay=queue_delay, max_delete_share=max_delete_share, timeout=timeout)
        except NotFoundError as exc:
            fail(COVEO_MISSING, f"the service does not know {target.kind} {target.id}: {exc}")
        except (RebuildError, PushApiError) as exc:
            click.echo(f"full run of {target.id} failed: {exc}", err=True)
            raise SystemExit(RUN_INCOMPLETE) from None
    click.echo(f"run {run.id} of {target.id}: {outcome.items} change(s) pushed; {outcome.reason}")
    if not outcome.deleted:
        raise SystemExit(RUN_INCOMPLETE)


@click.command()
@click.argument("source")
@click.argument("export", type=click.Path(exists=True, allow_dash=True, dir_okay=False))
@_full_run_options
@needs_store()
def rebuild(source: str, export: str, **options) -> None:
    """Push every item of EXPORT (NDJSON item.upsert events with versions) to SOURCE as a full
    rebuild, then delete the items the export does not have. Workers do the pushing."""
    if source in load_settings().protected_sources:
        raise click.ClickException(f"{source} is in PUSHSYNC_PROTECTED_SOURCES: pushsync never pushes to it")
    _full_run(keys.Target(keys.SOURCE, source), export, **options)


@click.group()
def identities() -> None:
    """Security identities of a provider."""


@identities.command()
@click.argument("provider")
@click.argument("export", type=click.Path(exists=True, allow_dash=True, dir_okay=False))
@_full_run_options
@needs_store()
def sync(provider: str, export: str, **options) -> None:
    """Push every identity of EXPORT (NDJSON identity.upsert / identity.alias events with versions)
    to PROVIDER, then disable the identities the export does not have."""
    linked = [source for source, providers in load_settings().source_providers.items() if provider in providers]
    if not linked:
        raise click.ClickException(f"provider {provider} is linked to no source (PUSHSYNC_SOURCE_PROVIDERS): "
                                   "its identities would not be ordered before any items; nothing done")
    _full_run(keys.Target(keys.PROVIDER, provider), export, **options)
