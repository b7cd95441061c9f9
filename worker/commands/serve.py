"""`pushsync worker` and `pushsync beat`: the Celery processes, as operators start them.

Each replaces itself with `celery -A worker.app worker|beat --loglevel INFO` and the arguments
given after it, so it logs in the format `pushsync --log-format` chose (the variable it sets).
"""

from __future__ import annotations

import os
import subprocess
import sys

import click

from worker.children import celery_command
from worker.settings import LogFormat, load_settings
from worker.store.connection import store_url

PASS_THROUGH = {"ignore_unknown_options": True, "help_option_names": []}
"""Every argument goes to Celery; --help shows Celery's options under pushsync's name."""
HELP_OPTIONS = {"-h", "--help"}


def _exec(role: str, celery_args: tuple[str, ...]) -> None:
    if HELP_OPTIONS & set(celery_args):
        _celery_help(role)
        return
    # Checked here, before Celery takes over: its own report of a bad or missing setting is a page
    # of usage and traceback with the reason last. A SettingsError becomes one line (`worker.cli.run`).
    settings = load_settings()
    store_url(settings)
    os.execv(sys.executable, celery_command(role, celery_args, json_logs=settings.log_format is LogFormat.JSON))


def _celery_help(role: str) -> None:
    """Celery's help for `role`, as `pushsync ROLE` takes it: it needs no setting, as help never does."""
    shown = subprocess.run([sys.executable, "-m", "celery", role, "--help"], capture_output=True, text=True, check=False)
    click.echo(f"pushsync {role} runs `celery -A worker.app {role} --loglevel INFO` with the options given, "
               "once the settings are valid.\n")
    click.echo(shown.stdout.replace(f"python -m celery {role}", f"pushsync {role}"), nl=False)


@click.command(context_settings=PASS_THROUGH)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a worker (as many as you like): `celery -A worker.app worker --loglevel INFO CELERY_ARGS`."""
    _exec("worker", celery_args)


@click.command(context_settings=PASS_THROUGH)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def beat(celery_args: tuple[str, ...]) -> None:
    """Run the beat (exactly one): `celery -A worker.app beat --loglevel INFO CELERY_ARGS`."""
    _exec("beat", celery_args)
