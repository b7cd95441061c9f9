"""`pushsync health`: a readiness check for containers, answered by its exit code and one line."""

from __future__ import annotations

from typing import NoReturn

import click

from worker.commands.services import BROKER_DOWN, NO_WORKER, STORE_DOWN
from worker.observe import liveness, probes
from worker.settings import load_settings
from worker.store.connection import store_url


@click.command()
@click.option("--no-worker", is_flag=True, help="Do not ask for a worker (for beat or webhook containers).")
@click.option("--worker", "worker_name", metavar="NAME",
              help="Ask this worker only, or those matching a pattern (e.g. 'pushsync-*@'$HOSTNAME).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=liveness.REPLY_SECONDS, show_default=True,
              help="Seconds to wait for a worker's answer.")
def health(no_worker: bool, worker_name: str | None, timeout: float) -> None:
    """Exit 0 when the store (Redis) and the broker answer and a worker answers a ping.

    \b
    Exit codes:
      0  healthy
      1  the settings are invalid (the message names the variable)
      2  wrong command line
      3  the store (Redis) does not answer
      4  the broker does not answer
      5  no worker answered the ping (or none named or matched by --worker)
    """
    settings = load_settings()
    store = store_url(settings)
    broker = settings.broker_url or store
    try:
        probes.probe_store(store)
    except probes.Unreachable as exc:
        _fail(STORE_DOWN, str(exc))
    try:
        with probes.open_broker(broker) as connection:
            if no_worker:
                click.echo("healthy: store and broker answer")
                return
            # Imported here: loading the Celery app reads every setting, which other commands need not.
            from worker.app import app

            answered = liveness.ping(app, connection, worker=worker_name, timeout=timeout)
    except probes.Unreachable as exc:
        _fail(BROKER_DOWN, str(exc))
    if not answered:
        who = f"worker {worker_name} did not answer" if worker_name else "no worker answered"
        _fail(NO_WORKER, f"{who} a ping within {timeout:g}s (broker {probes.shown(broker)})")
    click.echo(f"healthy: store and broker answer, and so does {answered[0]}")


def _fail(code: int, reason: str) -> NoReturn:
    click.echo(f"unhealthy: {reason}", err=True)
    raise SystemExit(code)
