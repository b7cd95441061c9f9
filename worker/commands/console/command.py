"""`pushsync console`: serve the operators' web page until Ctrl-C."""

from __future__ import annotations

import secrets

import click

from producers.cli import CannotDo
from worker import redaction
from worker.commands.console.server import Console, ConsoleServer
from worker.settings import load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9810
TOKEN_BYTES = 24
"""Random bytes of a token made at start (32 characters once encoded)."""


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on; any but a loopback address opens the pages (not the actions) to the network.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: a free one).")
def console(host: str, port: int) -> None:
    """Serve a web page of each source and provider (windows, batches in flight, pauses, last errors,
    events in and pushed per minute), the dead-letter queue and the quarantine, with replay and purge.

    Replays and purges need the token PUSHSYNC_CONSOLE_TOKEN sets, or else one made now and printed.
    """
    settings = load_settings()
    # Imported here: loading the Celery app reads every setting, which other commands need not.
    from worker.app import app

    given = settings.console_token
    token = given.get_secret_value() if given is not None else secrets.token_urlsafe(TOKEN_BYTES)
    redaction.register(token)
    try:
        server = ConsoleServer(Console(app, settings, token), host, port)
    except OSError as exc:
        raise CannotDo(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    url = f"http://{host}:{server.server_address[1]}/"
    click.echo(f"pushsync console on {url} (Ctrl-C stops it)")
    if given is None:
        click.echo(f"replays and purges need this token, made now: {token}\nor open {url}#token={token}")
    else:
        click.echo("replays and purges need the token PUSHSYNC_CONSOLE_TOKEN sets")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
