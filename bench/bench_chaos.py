"""Chaos: three workers, one SIGKILLed every few seconds and restarted, the emulator failing 5 % and throttling 2 %.

    .venv/bin/python bench/bench_chaos.py [--events N] [--sources N] [--kill-every SECONDS] [--max-kills N]
        [--broker-url URL]

A private embedded Redis (store and, by default, broker) and emulator, three real workers of one
pool process each, and beat. The emulator answers 5 % of the Push API and upload requests 503 and
2 % of them 429 with Retry-After. The events (see workload.py) are published with
`producers.Publisher` while, every `--kill-every` seconds, a worker chosen at random is SIGKILLed
with its pool (its metrics are read first) and a new one started, until the index holds the
expectation or `--max-kills` is reached. Then the run waits for the index to hold exactly the
last-write-wins state, and checks that the dead-letter queue and the quarantine are empty.

On a Redis broker, messages a killed worker had taken come back after the visibility timeout:
the run uses the shortest one the settings allow. `--broker-url` runs on another broker, such as
an empty RabbitMQ vhost, which gives them back at once.

Figures are printed with their targets and written to bench/results/chaos.json. Not a test.
"""

from __future__ import annotations

import random
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import click
import redis
from expectation import check, idle, last_changes, settled
from results import Target, echo_targets, invocation, write_result
from stack import Stack, batch_calls, wait_until
from workload import MS_PER_SECOND, URL_ROOT, Workload, publish

from producers.broker import is_amqp
from worker.deadletter.queue import DeadLetters
from worker.ingest import quarantine

EVENTS = 100_000
SOURCES = 10
WORKERS = 3
KILL_EVERY_SECONDS = 4.0
MAX_KILLS = 30
UNAVAILABLE_SHARE = 0.05
THROTTLED_SHARE = 0.02
RETRY_AFTER_SECONDS = 2
SEED = 11
REDIS_BROKER_ENV = {"PUSHSYNC_VISIBILITY_TIMEOUT": "60", "PUSHSYNC_RETRY_BUDGET_SECONDS": "30"}
"""The shortest visibility timeout allowed, and a retry budget within its half (the settings' rule)."""
WAIT_SECONDS = 900
POLL_SECONDS = 0.5
COUNTERS = {"retries": "pushsync_push_api_retries_total", "retry_after_wait": "pushsync_retry_after_wait_seconds_total"}


@dataclass
class Chaos:
    """What the killing did and what the killed workers had counted."""

    kills: int = 0
    retries: float = 0.0
    retry_after_wait: float = 0.0
    unread: int = 0
    """Killed workers whose metrics could not be read first."""

    def add(self, counts: dict[str, float]) -> None:
        self.retries += counts.get(COUNTERS["retries"], 0.0)
        self.retry_after_wait += counts.get(COUNTERS["retry_after_wait"], 0.0)


def inject_faults(stack: Stack) -> None:
    """5 % 503, then 2 % of all requests 429: the second rule only sees what the first let through."""
    stack.emulator.add_fault(status=503, probability=UNAVAILABLE_SHARE)
    stack.emulator.add_fault(status=429, retryAfter=RETRY_AFTER_SECONDS,
                                probability=THROTTLED_SHARE / (1 - UNAVAILABLE_SHARE))


def kill_one(stack: Stack, chaos: Chaos, rng: random.Random) -> None:
    """SIGKILL a random worker with its pool, after reading its counts, and start another."""
    victim = rng.choice(sorted(stack.workers))
    try:
        chaos.add(stack.metrics(victim))
    except OSError:
        chaos.unread += 1
    stack.kill_worker(victim)
    chaos.kills += 1
    stack.start_worker(1)


def run_chaos(stack: Stack, done: "Future[tuple[float, float]]", converged, kill_every: float,
              max_kills: int) -> Chaos:
    """Kill a worker every `kill_every` seconds until publishing is done and `converged()`, at most `max_kills`."""
    chaos, rng = Chaos(), random.Random(SEED)
    next_kill = time.monotonic() + kill_every
    while not (done.done() and converged()):
        if chaos.kills < max_kills and time.monotonic() >= next_kill:
            kill_one(stack, chaos, rng)
            next_kill = time.monotonic() + kill_every
        elif chaos.kills >= max_kills and done.done():
            return chaos
        time.sleep(POLL_SECONDS)
    return chaos


@click.command()
@click.option("--events", "count", default=EVENTS, show_default=True, help="Events published.")
@click.option("--sources", default=SOURCES, show_default=True, help="Push sources the events are spread over.")
@click.option("--kill-every", default=KILL_EVERY_SECONDS, show_default=True, help="Seconds between two kills.")
@click.option("--max-kills", default=MAX_KILLS, show_default=True, help="Kills at most.")
@click.option("--broker-url", default=None, help="Broker instead of the private Redis (an empty RabbitMQ vhost).")
def main(count: int, sources: int, kill_every: float, max_kills: int, broker_url: str | None) -> None:
    workload = Workload(count, sources, "chaos", SEED)
    expected = workload.expected()
    last = last_changes(workload)
    on_rabbitmq = broker_url is not None and is_amqp(broker_url)
    env = {} if on_rabbitmq else REDIS_BROKER_ENV
    with tempfile.TemporaryDirectory(prefix="pushsync-bench-chaos-") as scratch, \
            Stack(Path(scratch), workload.source_ids, env=env, broker_url=broker_url) as stack:
        emulator = stack.emulator
        inject_faults(stack)
        for _ in range(WORKERS):
            stack.start_worker(1)
        stack.start_beat()
        with ThreadPoolExecutor(1) as pool:
            done = pool.submit(publish, stack.broker_url, workload)
            chaos = run_chaos(stack, done, lambda: settled(emulator, expected, last), kill_every, max_kills)
            started, published = done.result()
        wrong = count
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            wrong = check(emulator, expected, URL_ROOT).wrong
            if wrong == 0:
                break
            time.sleep(POLL_SECONDS)
        wait_until(lambda: idle(emulator, workload.source_ids), WAIT_SECONDS, "every source IDLE", stack.directory)
        for name in stack.workers:
            chaos.add(stack.metrics(name))
        log = emulator.requests()
        dead_letters = DeadLetters(stack.broker_url).depth()
        quarantined = quarantine.count(redis.Redis.from_url(stack.store_url))
        stack.stop_workers()

    finished = max((entry["time"] + entry["durationMs"] / MS_PER_SECOND for entry in batch_calls(log)), default=started)
    faulted = [entry for entry in log if entry["fault"] is not None]
    unavailable = sum(entry["status"] == 503 for entry in faulted)
    throttled = sum(entry["status"] == 429 for entry in faulted)
    wall = finished - started
    targets = [
        Target("items of the index that differ from the expectation", wrong, "== 0", wrong == 0),
        Target("dead-letter entries", dead_letters, "== 0", dead_letters == 0),
        Target("quarantined events", quarantined, "== 0", quarantined == 0),
    ]
    click.echo(f"chaos: {count:,} events over {sources} sources, {WORKERS} workers x 1 pool process + beat, "
               f"broker {'RabbitMQ' if on_rabbitmq else 'Redis'}")
    click.echo(f"  {chaos.kills} worker(s) SIGKILLed and restarted, one every {kill_every:g}s "
               f"({chaos.unread} without reading its metrics first)")
    click.echo(f"  requests: {len(log):,}, answered 503: {unavailable:,}, 429 (Retry-After {RETRY_AFTER_SECONDS}s): "
               f"{throttled:,}; retries counted by the workers: {chaos.retries:,.0f}, "
               f"{chaos.retry_after_wait:,.0f}s waited on Retry-After")
    click.echo(f"  {wall:.1f}s from first publish to the last batch accepted ({count / wall:,.0f} events/s; "
               f"publishing took {published - started:.1f}s)")
    echo_targets(targets)

    figures = {
        "events": count, "sources": sources, "workers": WORKERS, "kill_every_seconds": kill_every,
        "kills": chaos.kills, "kills_without_metrics": chaos.unread, "requests": len(log),
        "answered_503": unavailable, "answered_429": throttled, "retries": chaos.retries,
        "retry_after_wait_seconds": round(chaos.retry_after_wait, 1), "wall_seconds": round(wall, 1),
        "events_per_second": round(count / wall), "items_wrong": wrong, "dead_letter_entries": dead_letters,
        "quarantined_events": quarantined,
    }
    notes = [
        f"{WORKERS} workers; every {kill_every:g}s one of them, chosen at random, was SIGKILLed with its pool and a "
        "new one started, until the index held the expectation or the kills ran out.",
        f"The emulator answered {UNAVAILABLE_SHARE:.0%} of the Push API and upload requests 503 and "
        f"{THROTTLED_SHARE:.0%} 429 with Retry-After {RETRY_AFTER_SECONDS}s.",
        "Retries are what the workers' metrics counted: a killed worker's were read just before the kill.",
        ("Broker: RabbitMQ, which gives a killed worker's messages back at once." if on_rabbitmq else
         "Broker: Redis, with the shortest visibility timeout allowed (60 s): messages a killed worker had taken "
         "come back after it."),
    ]
    write_result("chaos", "Chaos: workers SIGKILLed, the Push API failing and throttling", invocation(), figures,
                 targets, notes)


if __name__ == "__main__":
    main()
