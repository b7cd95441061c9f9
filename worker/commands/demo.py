"""`pushsync demo`: the whole pipeline on one machine, with nothing installed but pushsync.

With no REDIS_URL / BROKER_URL it starts an embedded Redis; it always starts the local Push API
emulator, a real Celery worker and the beat as child processes, publishes a realistic set of
change events, waits until the emulator's index holds exactly what last-write-wins says it
must, prints a summary, and stops every child, also on Ctrl-C.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

import click
import redis
import requests

from producers import Publisher
from worker.children import Child, celery, emulator
from worker.commands.demo_events import demo_events, expected_index
from worker.store import keys
from worker.store.embedded import EmbeddedRedis, free_port

SOURCE = "demo-knowledge-base"
PROVIDER = "demo-security"
ORGANIZATION = "pushsync-demo"
WINDOW_SECONDS = 2
IDLE_AFTER_SECONDS = 2
WAIT_SECONDS = 180


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
                                      args=["--organization", ORGANIZATION, "--source", SOURCE, "--provider", PROVIDER]))
        self.children.append(celery("worker", env=self.env, log_path=self.directory / "worker.log",
                                    extra=["--concurrency", "2"]))
        self.children.append(celery("beat", env=self.env, log_path=self.directory / "beat.log"))

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
        for child in reversed(self.children):
            child.stop(timeout=20)
        if self.embedded is not None:
            self.embedded.stop()


def _matches(index: dict[str, int], expected: dict[str, int | None]) -> int:
    """How many documents are in their final state."""
    return sum(1 for doc, revision in expected.items() if index.get(doc) == revision)


def run_demo(redis_url: str | None, broker_url: str | None, keep_logs: bool) -> None:
    directory = Path(tempfile.mkdtemp(prefix="pushsync-demo-"))
    demo = Demo(directory, redis_url, broker_url)
    try:
        click.echo(f"starting: {'embedded Redis' if demo.embedded else 'Redis at REDIS_URL'}, "
                   f"Push API emulator, Celery worker and beat (logs in {directory})")
        demo.start()
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
                    raise click.ClickException(f"the index did not converge in {WAIT_SECONDS}s; see {directory}")
                index = demo.index()
                now_done = _matches(index, expected) if len(index) <= len(expected) else 0
                bar.update(now_done - done)
                done = now_done
                time.sleep(0.5)
        elapsed = time.monotonic() - started
        click.echo("waiting for the source to go IDLE after its quiet period")
        while demo.admin(f"/sources/{SOURCE}/activities")["status"] != "IDLE":
            if time.monotonic() > deadline:
                raise click.ClickException(f"the source never went IDLE; see {directory}")
            time.sleep(0.5)
        _summary(demo, events, expected, elapsed)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: stopping every child process", err=True)
    finally:
        demo.stop()
        if not keep_logs:
            for path in directory.glob("*"):
                path.unlink(missing_ok=True)
            directory.rmdir()


def _summary(demo: Demo, events: list[dict], expected: dict[str, int | None], elapsed: float) -> None:
    store = redis.Redis.from_url(demo.redis_url)
    stats = store.hgetall(keys.Target(keys.SOURCE, SOURCE).stats)
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
