"""The `pushsync` command line: one group, with the subcommands of each part attached."""

from __future__ import annotations

import os

import click

from emulator.cli import command as emulator_command
from producers.cli import publish, webhook
from worker.commands.check import check
from worker.commands.console.command import console
from worker.commands.demo import demo
from worker.commands.dlq import dlq
from worker.commands.health import health
from worker.commands.quarantine import quarantine
from worker.commands.rebuild import identities, rebuild
from worker.commands.serve import beat, worker
from worker.commands.status import status
from worker.logs import configure
from worker.settings import LOG_FORMAT_VARIABLE, LogFormat, SettingsError
from worker.version import VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--log-format", type=click.Choice([choice.value for choice in LogFormat], case_sensitive=False),
              default=LogFormat.TEXT.value, show_default=True, envvar=LOG_FORMAT_VARIABLE, show_envvar=True,
              help="Log lines as readable text or one JSON object each; processes it starts do the same.")
def main(log_format: str) -> None:
    """pushsync: keep a Coveo Push source in sync with the systems that own the content."""
    os.environ[LOG_FORMAT_VARIABLE] = log_format
    configure(LogFormat(log_format))


@main.command()
def version() -> None:
    """Print the installed pushsync version."""
    click.echo(f"pushsync {VERSION}")


main.add_command(emulator_command, name="emulator")
main.add_command(publish)
main.add_command(webhook)
main.add_command(demo)
main.add_command(dlq)
main.add_command(quarantine)
main.add_command(rebuild)
main.add_command(identities)
main.add_command(worker)
main.add_command(beat)
main.add_command(status)
main.add_command(health)
main.add_command(check)
main.add_command(console)


def run() -> None:
    """Console entry point: turn a settings error into one clear line and exit status 1."""
    try:
        main(standalone_mode=True)
    except SettingsError as exc:
        raise SystemExit(f"pushsync: {exc}") from None
