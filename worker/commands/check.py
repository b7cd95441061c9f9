"""`pushsync check`: prove the configuration against Coveo without changing any index."""

from __future__ import annotations

import logging

import click

from worker import runtime
from worker.commands.services import COVEO_MISSING, COVEO_REFUSED, COVEO_UNREACHABLE, HEALTHY
from worker.observe import coveo, probes
from worker.pushapi import retry
from worker.settings import Settings, load_settings
from worker.store import keys

CHECK_RETRY_SECONDS = 10.0
"""How long one question may retry a throttled or failing service: a check answers quickly."""
CHECK_CONNECT_SECONDS = 5.0
CHECK_READ_SECONDS = 15.0
EXIT_CODES = {
    coveo.Outcome.VERIFIED: HEALTHY,
    coveo.Outcome.NOT_VERIFIED: HEALTHY,
    coveo.Outcome.MISSING: COVEO_MISSING,
    coveo.Outcome.REFUSED: COVEO_REFUSED,
    coveo.Outcome.UNREACHABLE: COVEO_UNREACHABLE,
}
"""What was proved decides the exit code; what could not be looked at is said, not failed."""


def run_check(settings: Settings, sources: tuple[str, ...] = (), providers: tuple[str, ...] = ()) -> coveo.Report:
    """Check the key, the organization and every source and provider the settings, the command
    line and (when `REDIS_URL` is set and answers) the store name."""
    configured_providers = {provider for linked in settings.source_providers.values() for provider in linked}
    sources_, providers_ = coveo.subjects(
        [*settings.source_windows, *settings.source_providers, *sources], [*configured_providers, *providers],
        _known_targets(settings),
    )
    api = runtime.push_api_client(settings, retry_budget_seconds=CHECK_RETRY_SECONDS,
                                  connect_timeout=CHECK_CONNECT_SECONDS, read_timeout=CHECK_READ_SECONDS)
    try:
        return coveo.check(api, organization=settings.organization_id, sources=sources_, providers=providers_,
                           protected=settings.protected_sources)
    finally:
        api.close()


def _known_targets(settings: Settings) -> list[keys.Target]:
    """The targets pushsync has worked for, from a configured store; none (and a note) when it does not answer."""
    if settings.redis_url is None:
        return []
    client = probes.store_client(settings.redis_url)
    try:
        with probes.store_errors(settings.redis_url):
            return [keys.Target.from_ref(ref.decode()) for ref in client.smembers(keys.TARGETS)]
    except probes.Unreachable as exc:
        click.echo(f"note: {exc}; the sources and providers it knows were not added", err=True)
        return []
    finally:
        client.close()


@click.command()
@click.option("--source", "sources", multiple=True, metavar="ID", help="Also check this Push source (repeatable).")
@click.option("--provider", "providers", multiple=True, metavar="ID",
              help="Also check this security identity provider (repeatable).")
def check(sources: tuple[str, ...], providers: tuple[str, ...]) -> None:
    """Prove the settings against Coveo, changing no index: the key and organization (by creating a
    file container, which expires unused), then each source and provider (read through the
    Platform API). Checks those the settings name, those given here, and those the store knows.

    \b
    Exit codes:
      0  nothing wrong was found (lines marked "not verified" say what could not be looked at)
      1  the settings are invalid (the message names the variable)
      10 the Push API does not answer
      11 Coveo refuses the key or the organization
      12 a source or provider does not exist
    """
    # Each retry is a warning in a worker's log; here the finding says it once.
    retry.log.setLevel(logging.ERROR)
    report = run_check(load_settings(), sources, providers)
    for finding in report.findings:
        click.echo(finding.line())
    counts = report.counts()
    summary = ", ".join(f"{count} {outcome.value}" for outcome, count in counts.items() if count)
    click.echo(f"check: {summary}")
    raise SystemExit(EXIT_CODES[report.worst])
