"""`pushsync demo`: the whole pipeline on one machine, with nothing installed but pushsync.

With no REDIS_URL / BROKER_URL it starts an embedded Redis; with them it holds a database of its
own there (`demo_space`) and empties it after. It always starts the local Push API emulator, a
real Celery worker and the beat as child processes, publishes a realistic set of change events,
waits until the emulator's index holds exactly what last-write-wins says it must, prints a
summary, and stops every child, also on Ctrl-C (a second Ctrl-C kills them at once).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType

import click
import requests

from producers import Publisher
from worker.children import Child, celery, emulator
from worker.commands.demo_events import demo_events, expected_index
from worker.commands.demo_space import DemoDatabase, SpaceTaken, demo_space
from worker.commands.services import INVALID_SETTING, fail, reachable
from worker.observe import probes
from worker.settings import the_broker
from worker.store import keys
from worker.store.embedded import EmbeddedRedis, free_port

SOURCE = "demo-knowledge-base"
PROVIDER = "demo-security"
ORGANIZATION = "pushsync-demo"
WINDOW_SECONDS = 2
IDLE_AFTER_SECONDS = 2
WAIT_SECONDS = 180
POLL_SECONDS = 0.5
STOP_SECONDS = 20
"""How long each child may take to stop politely before it is killed."""
NOT_CONVERGED = 7
"""Exit code of a demo whose index did not reach the expected state (its logs are kept)."""
INTERRUPTED = 130
"""Exit code after Ctrl-C, as a shell reports a command that SIGINT ended."""
REAL_ORGANIZATION = "README.md, section 'Running it for real'"
TERMINATIONS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end the demo as Ctrl-C does: children stopped, its databases emptied."""
TARGET = keys.Target(keys.SOURCE, SOURCE)
PROVIDER_TARGET = keys.Target(keys.PROVIDER, PROVIDER)


class Hurry(Exception):
    """A second Ctrl-C while the children stop politely: kill what is left at once."""


class Demo:
    """The child processes and services of one demo run."""

    def __init__(self, directory: Path, redis_url: str | None, broker_url: str | None) -> None:
        self.directory = directory
        self.children: list[Child] = []
        self.embedded: EmbeddedRedis | None = None
        if redis_url is None:
            self.embedded = EmbeddedRedis(directory)
            redis_url = self.embedded.url
        self.redis_url = redis_url
        self.broker_url = broker_url or redis_url
        self.api_key = secrets.token_urlsafe(24)
        self.emulator_url = f"http://127.0.0.1:{free_port()}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis_url, "BROKER_URL": self.broker_url,
            "COVEO_PUSH_URL": f"{self.emulator_url}/push/v1", "COVEO_ORGANIZATION_ID": ORGANIZATION,
            "COVEO_API_KEY": self.api_key, "PUSHSYNC_WINDOW_SECONDS": str(WINDOW_SECONDS),
            "PUSHSYNC_IDLE_AFTER_SECONDS": str(IDLE_AFTER_SECONDS),
        }

    def start(self) -> None:
        port = self.emulator_url.rsplit(":", 1)[1]
        self.children.append(emulator(int(port), api_key=self.api_key, log_path=self.directory / "emulator.log",
                                      args=["--organization", ORGANIZATION, "--source", SOURCE, "--provider", PROVIDER],
                                      die_with_parent=True))
        self.children.append(celery("worker", env=self.env, log_path=self.directory / "worker.log",
                                    extra=["--concurrency", "2"], die_with_parent=True))
        self.children.append(celery("beat", env=self.env, log_path=self.directory / "beat.log", die_with_parent=True))

    def admin(self, path: str) -> dict:
        response = requests.get(f"{self.emulator_url}/_emulator/organizations/{ORGANIZATION}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def admin_requests(self) -> list[dict]:
        response = requests.get(f"{self.emulator_url}/_emulator/requests", timeout=10)
        response.raise_for_status()
        return response.json()["requests"]

    def index(self) -> dict[str, int]:
        items = self.admin(f"/sources/{SOURCE}/items")["items"]
        return {item["documentId"]: item["metadata"].get("revision") for item in items}

    def stop(self) -> None:
        """Stop every child politely; a Ctrl-C meanwhile kills the rest at once."""
        def hurry(signum: int, frame: FrameType | None) -> None:
            raise Hurry

        remaining = list(reversed(self.children))
        previous = {signum: signal.signal(signum, hurry) for signum in (signal.SIGINT, *TERMINATIONS)}
        try:
            while remaining:
                remaining[0].stop(timeout=STOP_SECONDS)
                remaining.pop(0)
        except Hurry:
            for signum in previous:
                signal.signal(signum, signal.SIG_IGN)
            click.echo("killing every child process now", err=True)
            for child in remaining:
                child.kill()
        finally:
            if self.embedded is not None:
                self.embedded.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _matches(index: dict[str, int], expected: dict[str, int | None]) -> int:
    """How many documents are in their final state."""
    return sum(1 for doc, revision in expected.items() if index.get(doc) == revision)


def run_demo(redis_url: str | None, broker_url: str | None, keep_logs: bool) -> None:
    """Run the demo; exits 0 when the index converged, `NOT_CONVERGED`, or `INTERRUPTED` on Ctrl-C
    (or SIGTERM, SIGHUP: a closed terminal or a stopped job cleans up the same way)."""
    outcome = INTERRUPTED
    directory: Path | None = None
    _signalled.clear()
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGINT, *TERMINATIONS)}
    try:
        with ExitStack() as stack:
            databases: list[DemoDatabase] = []
            if redis_url is not None or broker_url is not None:
                try:
                    broker = the_broker(redis_url, broker_url)
                except ValueError as exc:
                    fail(INVALID_SETTING, str(exc))
                stack.enter_context(reachable(store=redis_url, broker=broker))
                databases = _hold(stack, redis_url, broker_url)
            directory = Path(tempfile.mkdtemp(prefix="pushsync-demo-"))
            demo = Demo(directory, redis_url, broker_url)
            stack.callback(demo.stop)  # before the databases are emptied: nothing writes to them then
            try:
                store = f"embedded Redis at {demo.redis_url}" if demo.embedded else "a database of its own at REDIS_URL"
                click.echo(f"starting: {store}, Push API emulator at {demo.emulator_url}, Celery worker and beat "
                           f"(logs in {directory})")
                demo.start()
                outcome = _converge(demo, databases)
                _check_interrupted()
            except KeyboardInterrupt:
                # Also when `_converge` had returned: a signal whose interrupt a finalizer swallowed came
                # before its end (`_check_interrupted`), and an interrupted demo never exits 0.
                outcome = INTERRUPTED
                click.echo("\ninterrupted: stopping every child process (Ctrl-C again to kill them now)", err=True)
    except KeyboardInterrupt:
        outcome = INTERRUPTED  # its clean-up was cut short, whatever the index did
        click.echo("\ninterrupted", err=True)
    finally:
        for signum, handler in previous.items():
            # An interrupted demo has cleaned up and only exits now: a late SIGTERM (one CI run saw
            # one, from a sender not found) must not replace its status, 130.
            signal.signal(signum, signal.SIG_IGN if outcome == INTERRUPTED else handler)
        if directory is not None and not keep_logs and outcome != NOT_CONVERGED:
            shutil.rmtree(directory, ignore_errors=True)
    if outcome == NOT_CONVERGED:
        click.echo(f"the logs of every child are kept in {directory}", err=True)
    elif outcome == 0:
        click.echo(f"""
what next: `pushsync status` and `pushsync check` show a pipeline's state and prove a configuration;
point pushsync at a real organization with {REAL_ORGANIZATION}.""")
    if outcome:
        raise SystemExit(outcome)


_signalled: list[int] = []
"""The interrupting signals received in this run. The KeyboardInterrupt their handler raises can land
in a finalizer that the garbage collector runs (a closed HTTP connection's), where Python prints it
and goes on: seen in CI, where a demo interrupted at that instant ran to its end and exited 0."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    _signalled.append(signum)
    raise KeyboardInterrupt


def _check_interrupted() -> None:
    """Raise the KeyboardInterrupt of a signal whose own was swallowed."""
    if _signalled:
        raise KeyboardInterrupt


def _hold(stack: ExitStack, redis_url: str | None, broker_url: str | None) -> list[DemoDatabase]:
    """The demo's own databases, held until `stack` closes; a space that is not free ends the demo."""
    try:
        return stack.enter_context(demo_space(redis_url, broker_url, [TARGET.ref, PROVIDER_TARGET.ref]))
    except SpaceTaken as exc:
        fail(INVALID_SETTING, str(exc))


def _converge(demo: Demo, databases: list[DemoDatabase]) -> int:
    """Publish the events and wait for the index and the IDLE status; 0, or `NOT_CONVERGED`."""
    events = demo_events(SOURCE, PROVIDER)
    expected = expected_index(events)
    started = time.monotonic()
    with Publisher(demo.broker_url) as publisher:
        publisher.publish_many(events)
    click.echo(f"published {len(events)} change events for {len(expected)} documents")
    deadline = time.monotonic() + WAIT_SECONDS
    with click.progressbar(length=len(expected), label="index converging") as bar:
        done = 0
        while done < len(expected):
            if time.monotonic() > deadline:
                click.echo(f"\nthe index did not converge in {WAIT_SECONDS}s", err=True)
                return NOT_CONVERGED
            index = demo.index()
            now_done = _matches(index, expected) if len(index) <= len(expected) else 0
            bar.update(now_done - done)
            done = now_done
            _pause(databases)
    elapsed = time.monotonic() - started
    click.echo("waiting for the source to go IDLE after its quiet period")
    while demo.admin(f"/sources/{SOURCE}/activities")["status"] != "IDLE":
        if time.monotonic() > deadline:
            click.echo(f"the source never went IDLE in {WAIT_SECONDS}s", err=True)
            return NOT_CONVERGED
        _pause(databases)
    _summary(demo, events, expected, elapsed)
    click.echo("stopping the worker, the beat and the emulator")
    return 0


def _pause(databases: list[DemoDatabase]) -> None:
    _check_interrupted()
    for database in databases:
        database.renew()
    time.sleep(POLL_SECONDS)


def _summary(demo: Demo, events: list[dict], expected: dict[str, int | None], elapsed: float) -> None:
    store = probes.store_client(demo.redis_url)
    stats = store.hgetall(TARGET.stats)
    pushed = int(stats.get(b"pushed", 0))
    calls = [r for r in demo.admin_requests() if r["path"].startswith("/push/")]
    activities = demo.admin(f"/sources/{SOURCE}/activities")["activities"]
    present = sum(1 for revision in expected.values() if revision is not None)
    click.echo(f"""
pushsync demo: the index holds exactly the expected {present} items ({len(expected) - present} deleted)
  change events in          {len(events)}
  items and deletes pushed  {pushed}
  coalescing ratio          {len(events) / max(pushed, 1):.1f} events per item pushed
  Push API calls            {len(calls)}
  status activities         {len(activities)} ({', '.join(a['type'] + (' → IDLE' if a['closedAt'] else '') for a in activities)})
  time to converge          {elapsed:.1f}s""")


@click.command()
@click.option("--redis-url", envvar="REDIS_URL", help="Use this Redis instead of an embedded one.")
@click.option("--broker-url", envvar="BROKER_URL", help="Use this broker instead of the Redis store.")
@click.option("--keep-logs", is_flag=True, help="Keep the children's logs after the run.")
def demo(redis_url: str | None, broker_url: str | None, keep_logs: bool) -> None:
    """Run the whole pipeline locally against the Push API emulator and show the result."""
    run_demo(redis_url, broker_url, keep_logs)
