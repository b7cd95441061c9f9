"""The `pushsync` command line: one group, with the subcommands of each part attached."""

from __future__ import annotations

import click

from emulator.cli import command as emulator_command
from producers.cli import publish, webhook
from worker.commands.demo import demo
from worker.commands.dlq import dlq
from worker.commands.health import health
from worker.commands.quarantine import quarantine
from worker.commands.rebuild import identities, rebuild
from worker.commands.status import status
from worker.settings import SettingsError
from worker.version import VERSION


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """pushsync: keep a Coveo Push source in sync with the systems that own the content."""


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
main.add_command(status)
main.add_command(health)


def run() -> None:
    """Console entry point: turn a settings error into one clear line and exit status 2."""
    try:
        main(standalone_mode=True)
    except SettingsError as exc:
        raise SystemExit(f"pushsync: {exc}") from None
