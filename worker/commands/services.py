"""The store and the broker a command needs, and the exit codes every pushsync command shares.

A command that reads or changes the shared state probes what it needs first (`reachable`), with
short timeouts, so that a service that is down is one line naming it and a documented exit code,
not a traceback; one that stops answering midway is reported the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
import kombu.exceptions
import redis

from producers.cli import EXIT_BROKER, EXIT_INVALID
from worker.observe import probes
from worker.settings import load_settings
from worker.store.connection import store_url

Command = TypeVar("Command", bound=Callable[..., Any])

HEALTHY = 0
INVALID_SETTING = 1
USAGE = 2
STORE_DOWN = 3
BROKER_DOWN = EXIT_BROKER
NO_WORKER = 5
INVALID_INPUT = EXIT_INVALID
NOT_FOUND = 9
COVEO_UNREACHABLE = 10
COVEO_REFUSED = 11
COVEO_MISSING = 12
RUN_INCOMPLETE = 13
"""Exit codes: 1 an invalid setting (the line names the variable), 2 a wrong command line, a
missing input file, an output file that cannot be written or a port in use, 3 the store (Redis) does not answer, 4 the broker does not answer, 5 no
worker answered (`pushsync health`), 8 input data refused (invalid event lines, an invalid or
empty export, quarantined events still invalid), 9 an entry id that is not there; from 10, what
Coveo answered (`pushsync check`, `health --coveo`, a full run): 10 the Push API does not
answer, 11 it refuses the key or the organization, 12 a source or provider is missing; 13 a
full run that failed or deleted nothing. `pushsync beat` (6) and `pushsync demo` (7, 130) add
their own."""


def fail(code: int, reason: str) -> NoReturn:
    """Say `reason` on one line of stderr and exit with `code`."""
    click.echo(f"pushsync: {reason}", err=True)
    raise SystemExit(code)


@contextmanager
def reachable(*, store: str | None = None, broker: str | None = None) -> Iterator[None]:
    """Run the block once the store at `store` and the broker at `broker` (those given) answer;
    a service that does not, before or during the block, ends the command with exit 3 or 4."""
    if store is not None:
        try:
            probes.probe_store(store)
        except probes.Unreachable as exc:
            fail(STORE_DOWN, str(exc))
    if broker is not None:
        try:
            with probes.open_broker(broker):
                pass
        except probes.Unreachable as exc:
            fail(BROKER_DOWN, str(exc))
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # A Redis broker's transport raises redis' own errors too: which one went away is the
        # one the command was given, the store first.
        down, url = (STORE_DOWN, store) if store is not None else (BROKER_DOWN, broker)
        fail(down, f"{'Redis (store)' if down == STORE_DOWN else 'broker'} at {probes.shown(url or '')} "
                   f"stopped answering: {exc}")
    except kombu.exceptions.OperationalError as exc:
        fail(BROKER_DOWN, f"broker at {probes.shown(broker or '')} stopped answering: {exc}")


def needs_store(*, broker: bool = False) -> Callable[[Command], Command]:
    """Make a command probe the store (and the broker, when `broker`) before it runs: see `reachable`."""
    def decorate(command: Command) -> Command:
        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            settings = load_settings()
            store = store_url(settings)
            with reachable(store=store, broker=(settings.broker_url or store) if broker else None):
                return command(*args, **kwargs)

        return run  # type: ignore[return-value]

    return decorate
