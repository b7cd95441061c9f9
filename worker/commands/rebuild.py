"""`pushsync rebuild SOURCE FILE|-`: push a complete export, then delete what it no longer has."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from producers.errors import InvalidEventError
from producers.events import Event, ItemUpsert
from producers.ndjson import check_line, numbered_lines
from worker.pushapi.client import PushApiClient
from worker.pushapi.errors import NotFoundError, PushApiError
from worker.rebuild import Rebuilds, RebuildError
from worker.settings import load_settings
from worker.store import connect

SHOWN_INVALID_LINES = 20
EXIT_BAD_EXPORT = 1
EXIT_RUN_FAILED = 3


def _lines(path: Path, source: str) -> Iterator[tuple[int, Event | None, str | None]]:
    """(line number, the item or None, the reason it was refused or None) for every export line."""
    with open(path, "rb") as stream:
        for number, content, _ in numbered_lines(stream):
            if not content.strip():
                continue
            try:
                event = check_line(content)
            except InvalidEventError as exc:
                yield number, None, exc.reason
                continue
            if not isinstance(event, ItemUpsert) or event.source != source:
                yield number, None, f"an export holds item.upsert events of source {source!r} only"
                continue
            yield number, event, None


def _copy_stdin(stream: BinaryIO, directory: Path) -> Path:
    path = directory / "export.ndjson"
    with open(path, "wb") as copy:
        shutil.copyfileobj(stream, copy)
    return path


@click.command()
@click.argument("source")
@click.argument("export", type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--resume", "run_id", help="Resume the unfinished run RUN_ID (same export).")
@click.option("--skip-invalid", is_flag=True, help="Push the valid lines of an export that has invalid ones.")
@click.option("--allow-empty", is_flag=True, help="Accept an export with no item (it would delete everything).")
@click.option("--max-delete-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Refuse to delete if the run would remove more than this share of the last run's items.")
@click.option("--queue-delay", type=click.IntRange(0), default=15, show_default=True,
              help="Minutes the service waits before deleting the items the export no longer has.")
@click.option("--timeout", type=click.FloatRange(1), default=3600, show_default=True,
              help="Seconds to wait for the workers to push the export.")
def rebuild(source: str, export: str, run_id: str | None, skip_invalid: bool, allow_empty: bool,
            max_delete_share: float, queue_delay: int, timeout: float) -> None:
    """Push every item of EXPORT (NDJSON item.upsert events with versions) to SOURCE as a full
    rebuild, then delete the items the export does not have. Workers do the pushing."""
    settings = load_settings()
    if source in settings.protected_sources:
        raise click.ClickException(f"{source} is in PUSHSYNC_PROTECTED_SOURCES: pushsync never pushes to it")
    with tempfile.TemporaryDirectory(prefix="pushsync-rebuild-") as scratch:
        path = _copy_stdin(sys.stdin.buffer, Path(scratch)) if export == "-" else Path(export)
        checked = [(number, event is not None, reason) for number, event, reason in _lines(path, source)]
        invalid = [(number, reason) for number, _, reason in checked if reason]
        valid = sum(1 for _, ok, _ in checked if ok)
        total_lines = checked[-1][0] if checked else 0
        for number, reason in invalid[:SHOWN_INVALID_LINES]:
            click.echo(f"line {number}: {reason}", err=True)
        if len(invalid) > SHOWN_INVALID_LINES:
            click.echo(f"... and {len(invalid) - SHOWN_INVALID_LINES} more invalid line(s)", err=True)
        if invalid and not skip_invalid:
            click.echo(f"{len(invalid)} invalid line(s): nothing pushed, nothing deleted "
                       "(--skip-invalid pushes the valid ones)", err=True)
            raise SystemExit(EXIT_BAD_EXPORT)
        if not valid and not allow_empty:
            click.echo("the export has no item: a rebuild would delete everything; nothing done "
                       "(--allow-empty if that is meant)", err=True)
            raise SystemExit(EXIT_BAD_EXPORT)
        rebuilds = Rebuilds(connect(settings), PushApiClient.from_settings(settings), settings)
        try:
            run = rebuilds.resume(source, run_id) if run_id else rebuilds.start(source)
            click.echo(f"rebuild {run.id} of {source}: {valid} item(s), orderingId {run.start_ms}", err=True)
            lines = ((number, event) for number, event, _ in _lines(path, source))
            with click.progressbar(length=total_lines, label="feeding", file=sys.stderr, show_pos=True) as bar:
                bar.update(run.lines_done)
                rebuilds.feed(run, lines, bar.update)
            click.echo("waiting for the workers to push the export", err=True)
            outcome = rebuilds.finish(run, queue_delay=queue_delay, max_delete_share=max_delete_share,
                                      timeout=timeout)
        except NotFoundError as exc:
            raise click.ClickException(f"the service does not know source {source}: {exc}") from None
        except (RebuildError, PushApiError) as exc:
            click.echo(f"rebuild of {source} failed: {exc}", err=True)
            raise SystemExit(EXIT_RUN_FAILED) from None
    click.echo(f"rebuild {run.id} of {source}: {outcome.items} item(s) pushed; {outcome.reason}")
    if not outcome.deleted:
        raise SystemExit(EXIT_RUN_FAILED)
