"""`pushsync health`: a readiness check for containers, answered by its exit code and one line."""

from __future__ import annotations

from typing import NoReturn

import click
from kombu import Connection

from worker.commands.check import EXIT_CODES, run_check
from worker.commands.services import BROKER_DOWN, HEALTHY, NO_WORKER, STORE_DOWN
from worker.observe import coveo, liveness, probes
from worker.settings import load_settings
from worker.store.connection import store_url


@click.command()
@click.option("--no-worker", is_flag=True, help="Do not ask for a worker (for beat or webhook containers).")
@click.option("--worker", "worker_name", metavar="NAME",
              help="Ask this worker only, or those matching a pattern (e.g. 'pushsync-*@'$HOSTNAME).")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=liveness.REPLY_SECONDS, show_default=True,
              help="Seconds to wait for a worker's answer.")
@click.option("--coveo", "ask_coveo", is_flag=True,
              help="Also run `pushsync check`: the key, organization, sources and providers, against Coveo.")
def health(no_worker: bool, worker_name: str | None, timeout: float, ask_coveo: bool) -> None:
    """Exit 0 when the store (Redis) and the broker answer and a worker answers a ping (and,
    with --coveo, Coveo accepts the key and has every source and provider checked).

    \b
    Exit codes:
      0  healthy
      1  the settings are invalid (the message names the variable)
      2  wrong command line
      3  the store (Redis) does not answer
      4  the broker does not answer
      5  no worker answered the ping (or none named or matched by --worker)
      10 --coveo: the Push API does not answer
      11 --coveo: Coveo refuses the key or the organization
      12 --coveo: a source or provider does not exist
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
            answered = [] if no_worker else _ping(connection, worker_name, timeout)
    except probes.Unreachable as exc:
        _fail(BROKER_DOWN, str(exc))
    if not no_worker and not answered:
        who = f"worker {worker_name} did not answer" if worker_name else "no worker answered"
        _fail(NO_WORKER, f"{who} a ping within {timeout:g}s (broker {probes.shown(broker)})")
    said = "store and broker answer" + (f", and so does {answered[0]}" if answered else "")
    if ask_coveo:
        report = run_check(settings)
        code = EXIT_CODES[report.worst]
        if code != HEALTHY:
            worst = next(finding for finding in report.findings if finding.outcome is report.worst)
            _fail(code, f"{worst.subject}: {worst.detail}")
        counts = report.counts()
        said += (f"; Coveo accepts the key ({counts[coveo.Outcome.VERIFIED]} verified, "
                 f"{counts[coveo.Outcome.NOT_VERIFIED]} not verified)")
    click.echo(f"healthy: {said}")


def _ping(connection: Connection, worker_name: str | None, timeout: float) -> list[str]:
    # Imported here: loading the Celery app reads every setting, which other commands need not.
    from worker.app import app

    return liveness.ping(app, connection, worker=worker_name, timeout=timeout)


def _fail(code: int, reason: str) -> NoReturn:
    click.echo(f"unhealthy: {reason}", err=True)
    raise SystemExit(code)
