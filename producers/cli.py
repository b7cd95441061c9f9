"""`pushsync publish` (NDJSON events to the broker) and `pushsync webhook` (CMS change hooks)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import click

from producers.broker import EVENTS_QUEUE, checked_urls
from producers.errors import ConfigError
from producers.events import MAX_EVENT_BYTES
from producers.ndjson import Report, rewindable, scan
from producers.private_files import replacing
from producers.progress import Progress
from producers.publisher import DEFAULT_EVENTS_PER_MESSAGE, DEFAULT_MAX_DELAY_SECONDS, Publisher


class CannotDo(click.ClickException):
    """What the command line asked cannot be done here: an output file it cannot write, a port in
    use. Exit 2, as a wrong command line, never 1 (every pushsync command keeps 1 for a setting)."""

    exit_code = 2


EXIT_BROKER = 4
"""The broker did not take every event (the code every pushsync command gives a broker that does not answer)."""
EXIT_INVALID = 8
"""Some lines were not valid events (the code every pushsync command gives input data it refuses)."""
SHOWN_INVALID_LINES = 20
"""Invalid lines listed on the terminal; the rest are counted (and all written with --skip-invalid)."""
DEFAULT_WEBHOOK_PORT = 8090
DEFAULT_WEBHOOK_CONFIG = "pushsync-webhooks.toml"
STDIN_INVALID_OUTPUT = "pushsync-invalid.ndjson"


def _require_broker(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if not value:
        raise click.UsageError(
            "no broker given: pass --broker-url or set BROKER_URL (or REDIS_URL), e.g. redis://127.0.0.1:6379/0",
            ctx,
        )
    try:
        checked_urls(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None
    return value


def broker_url_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """The broker URL, from --broker-url, else BROKER_URL, else REDIS_URL."""
    return click.option(
        "--broker-url",
        envvar=["BROKER_URL", "REDIS_URL"],
        callback=_require_broker,
        help="Broker the workers consume: redis://… or amqp://…, or a RabbitMQ cluster's nodes as "
             "amqp://…;amqp://… [env: BROKER_URL, then REDIS_URL]",
    )(command)


@click.command()
@click.argument("source", metavar="FILE", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=str))
@broker_url_option
@click.option(
    "--events-per-message", type=click.IntRange(min=1), default=DEFAULT_EVENTS_PER_MESSAGE, show_default=True,
    help="Most events carried by one broker message.",
)
@click.option(
    "--max-event-bytes", type=click.IntRange(min=1024), default=MAX_EVENT_BYTES, show_default=True,
    envvar="PUSHSYNC_MAX_EVENT_BYTES", help="Largest encoded event accepted; keep equal to the worker's.",
)
@click.option("--skip-invalid", is_flag=True, help="Publish the valid lines and write the invalid ones to a file.")
@click.option(
    "--invalid-output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help=f"Where --skip-invalid writes invalid lines [default: FILE.invalid.ndjson, or {STDIN_INVALID_OUTPUT}].",
)
@click.option("--progress/--no-progress", default=None, help="Draw a progress bar [default: when stderr is a terminal].")
@click.option("--queue", "queue_name", default=EVENTS_QUEUE, hidden=True, help="Queue to publish to (tests only).")
def publish(
    source: str, broker_url: str, events_per_message: int, max_event_bytes: int, skip_invalid: bool,
    invalid_output: Path | None, progress: bool | None, queue_name: str,
) -> None:
    """Publish the NDJSON change events of FILE (a path, or - for stdin), one event per line.

    Every line is validated first: unless --skip-invalid is given, nothing is published when any
    line is invalid. Exit status: 0 all published, 2 no such FILE, 4 the broker did not take them,
    8 invalid lines.
    """
    stream: BinaryIO = click.open_file(source, "rb")  # type: ignore[assignment]
    with stream:
        total = os.fstat(stream.fileno()).st_size if source != "-" else None
        if not skip_invalid:
            stream = rewindable(stream)  # type: ignore[assignment]
            checked = scan(stream, max_event_bytes=max_event_bytes, progress=_progress(progress, total, "validating"))
            if checked.invalid:
                _print_invalid(checked)
                click.echo(
                    f"nothing published: {len(checked.invalid):,} invalid line(s) "
                    "(fix them, or pass --skip-invalid to publish the valid ones)", err=True,
                )
                sys.exit(EXIT_INVALID)
            stream.seek(0)
        started = time.monotonic()
        # A file is read as fast as it publishes: its messages fill. Lines on stdin may come slowly (a stream).
        with Publisher(
            broker_url, events_per_message=events_per_message, max_event_bytes=max_event_bytes, queue_name=queue_name,
            max_delay_seconds=DEFAULT_MAX_DELAY_SECONDS if source == "-" else None,
        ) as publisher:
            report = scan(
                stream, publisher=publisher, max_event_bytes=max_event_bytes,
                progress=_progress(progress, total, "publishing"),
            )
    _summarize(report, time.monotonic() - started)
    if skip_invalid and report.invalid:
        target = invalid_output or Path(STDIN_INVALID_OUTPUT if source == "-" else source + ".invalid.ndjson")
        try:
            # Private (the lines hold content) and never through a symlink planted at the target.
            with replacing(target, "w") as stream:
                stream.writelines(line.to_json() + "\n" for line in report.invalid)
        except OSError as exc:
            raise CannotDo(f"cannot write the invalid lines to {target}: {exc.strerror or exc}") from None
        click.echo(f"wrote {len(report.invalid):,} invalid line(s) with their reasons to {target}", err=True)
    if report.failure:
        sys.exit(EXIT_BROKER)
    if report.invalid:
        sys.exit(EXIT_INVALID)


@click.command()
@broker_url_option
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_WEBHOOK_CONFIG, show_default=True, envvar="PUSHSYNC_WEBHOOK_CONFIG",
              help="TOML file configuring each hook (see docs/webhooks.md).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_WEBHOOK_PORT, show_default=True)
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True,
              envvar="PUSHSYNC_WEBHOOK_METRICS_PORT",
              help="Port serving Prometheus metrics at /metrics on the same interface; 0 serves none.")
@click.option("--queue", "queue_name", default=EVENTS_QUEUE, hidden=True, help="Queue to publish to (tests only).")
def webhook(broker_url: str, config_path: Path, host: str, port: int, metrics_port: int, queue_name: str) -> None:
    """Receive CMS change hooks on POST /hooks/{source} and publish them as change events."""
    # Imported here: the server stack is only needed by this command.
    import uvicorn

    from producers.webhook import metrics
    from producers.webhook.app import create_app
    from producers.webhook.config import load_config
    from producers.webhook.server import uvicorn_config
    from worker import redaction

    redaction.register_url(broker_url)
    try:
        config = load_config(config_path)
        redaction.register(*(hook.secret_value() for hook in config.sources.values()))
        app = create_app(config, broker_url, queue_name=queue_name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if metrics_port:
        try:
            metrics.serve(metrics_port, host)
        except OSError as exc:
            raise CannotDo(f"cannot serve metrics on {host}:{metrics_port}: {exc}") from None
    # No logging set-up of uvicorn's own: its lines go through pushsync's handler (format, redaction).
    uvicorn.Server(uvicorn_config(app, config, host=host, port=port, log_level="info", log_config=None)).run()


def _progress(enabled: bool | None, total: int | None, label: str) -> Progress:
    return Progress(sys.stderr, total_bytes=total, label=label, enabled=enabled)


def _print_invalid(report: Report) -> None:
    for line in report.invalid[:SHOWN_INVALID_LINES]:
        click.echo(f"line {line.line}: {line.reason}", err=True)
    hidden = len(report.invalid) - SHOWN_INVALID_LINES
    if hidden > 0:
        click.echo(f"… and {hidden:,} more invalid line(s)", err=True)


def _summarize(report: Report, seconds: float) -> None:
    rate = report.published / seconds if seconds > 0 else 0.0
    click.echo(
        f"published {report.published:,} event(s) in {report.messages:,} message(s) "
        f"({rate:,.0f} events/s); invalid: {len(report.invalid):,}"
    )
    if report.invalid:
        _print_invalid(report)
    if report.failure:
        where = f"; re-run from line {report.resume_line}" if report.resume_line else ""
        click.echo(f"stopped: {report.failure}{where}", err=True)
