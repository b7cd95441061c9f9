"""Ingestion throughput: events/s a real worker writes into Redis windows, against a raw stream consumer.

    .venv/bin/python bench/bench_ingest.py [--messages N] [--batched-events N] [--rounds N]

Everything runs on a private embedded Redis (broker in db 1, coalescing store in db 0), never on a
shared server. In each round of each case the same messages are appended to the `pushsync.events`
stream twice:
1. a raw consumer of the stream's group (in this process, reading groups as the worker does,
   acknowledging and deleting each group and doing nothing else) takes them, timed from its first
   message to its last: the baseline;
2. a real `celery worker` (worker.app, production settings, windows of an hour so nothing flushes) is
   started on the full queue and timed from the first reading of the sources' `received` counters
   after it is ready to the moment they reach the total (read every 20 ms), so start-up
   is not counted. Its main process's peak RSS (VmHWM) is read before it stops.
Each rate is the best of its rounds: other work on the machine only ever slows a round down.
Cases and targets: single-event messages, worker >= 0.8 x the raw rate; messages of 500 events,
worker >= 25,000 events/s. Not a test: the figures are printed with their targets, exit status 0,
and written to bench/results/ingest.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import redis
from memory import peak_rss_mib
from results import at_least, invocation, verdict, write_result

from producers import broker
from producers.events import InvalidEvent, decode_message
from producers.publisher import DEFAULT_EVENTS_PER_MESSAGE
from producers.transport import RetryPolicy, StreamTransport
from worker.children import celery
from worker.ingest.ingestor import INGEST_GROUP_MESSAGES
from worker.store import keys
from worker.store.embedded import EmbeddedRedis

REPO = Path(__file__).resolve().parents[1]
SINGLE_MESSAGES = 5_000
"""Several seconds per phase."""
BATCHED_EVENTS = 100_000
ROUNDS = 5
SINGLE_RATIO_TARGET = 0.8
BATCHED_TARGET_PER_SECOND = 25_000
SOURCES = [keys.Target(keys.SOURCE, f"bench-{n}") for n in range(8)]
"""Events are spread over a few sources, as a worker serving several would see them."""
ITEM_TEXT = "lorem ipsum " * 40
"""About half a kilobyte of content per event, like a short CMS entry."""
OCCURRED_AT = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
"""When the run starts: ingestion refuses events older than the ordering horizon."""
POLL_SECONDS = 0.02
"""Often enough for a reading error under 0.2%; rarely enough not to slow the worker."""
STALL_SECONDS = 60.0
"""No progress for this long means the worker is stuck: the run stops with its log."""
STORE_DB, BROKER_DB = 0, 1


@dataclass(frozen=True)
class Reading:
    """Events counted by a given moment (perf_counter seconds)."""

    at: float
    events: int


@dataclass(frozen=True)
class Figures:
    """One case: events/s of the raw consumer and of the worker, and the worker's peak RSS."""

    raw: float
    ingested: float
    rss_mib: float

    @property
    def ratio(self) -> float:
        return self.ingested / self.raw


def rate(first: Reading, last: Reading) -> float:
    return (last.events - first.events) / (last.at - first.at)


def event(n: int) -> dict:
    return {"schemaVersion": 1, "eventId": f"bench-{n}", "kind": "item.upsert", "version": 1,
            "occurredAt": OCCURRED_AT, "source": SOURCES[n % len(SOURCES)].id,
            "documentId": f"https://bench.example/{n}", "item": {"metadata": {"title": f"Item {n}"}, "data": ITEM_TEXT}}


def bodies(events: int, per_message: int) -> list[bytes]:
    """Message bodies as producers send them, `per_message` distinct items each."""
    messages = [
        json.dumps({"events": [event(n) for n in range(start, min(start + per_message, events))]},
                   separators=(",", ":")).encode()
        for start in range(0, events, per_message)
    ]
    if any(isinstance(decoded, InvalidEvent) for decoded in decode_message(messages[0])):
        raise RuntimeError("the benchmark's own events are invalid")
    return messages


def publish(broker_url: str, messages: list[bytes]) -> None:
    transport = StreamTransport(broker_url, broker.EVENTS_QUEUE, retry=RetryPolicy(), connect_timeout=10)
    try:
        for body in messages:
            transport.send(body)
    finally:
        transport.close()


def consume_raw(broker_url: str, messages: int, per_message: int) -> float:
    """Events/s of a stream consumer that only acknowledges, from its first message to its last."""
    client = redis.Redis.from_url(broker_url)
    stream, group = broker.events_stream(), broker.CONSUMER_GROUP
    try:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    except redis.ResponseError:
        pass
    stamps: list[float] = []
    while len(stamps) < messages:
        answer = client.xreadgroup(group, "bench-baseline", {stream: ">"}, count=INGEST_GROUP_MESSAGES,
                                   block=int(STALL_SECONDS * 1000))
        ids = [entry_id for _, entries in answer for entry_id, _ in entries]
        pipe = client.pipeline(transaction=True)
        pipe.xack(stream, group, *ids)
        pipe.xdel(stream, *ids)
        pipe.execute()
        stamps += [time.perf_counter()] * len(ids)
    client.close()
    return rate(Reading(stamps[0], per_message), Reading(stamps[-1], messages * per_message))


def received(store: redis.Redis) -> Reading:
    pipe = store.pipeline(transaction=False)
    for source in SOURCES:
        pipe.hget(source.stats, "received")
    counts = pipe.execute()
    return Reading(time.perf_counter(), sum(int(count or 0) for count in counts))


def wait_for_events(store: redis.Redis, reached, worker) -> Reading:
    """The first reading for which `reached(events)` holds; raise if the worker stalls or dies."""
    reading = received(store)
    progress = reading
    while not reached(reading.events):
        if reading.events != progress.events:
            progress = reading
        elif reading.at - progress.at > STALL_SECONDS or worker.popen.poll() is not None:
            raise RuntimeError(f"ingestion stuck at {reading.events:,} events:\n{worker.log()[-4000:]}")
        time.sleep(POLL_SECONDS)
        reading = received(store)
    return reading


def ingest_with_worker(server: EmbeddedRedis, events: int, log_path: Path) -> tuple[float, float]:
    """Events/s of a real worker on the already published queue, and its main process's peak RSS in MiB."""
    store = redis.Redis(port=server.port, db=STORE_DB)
    env = {"REDIS_URL": url(server, STORE_DB), "BROKER_URL": url(server, BROKER_DB), "PUSHSYNC_WINDOW_SECONDS": "3600"}
    worker = celery("worker", env=env, log_path=log_path, cwd=REPO, extra=["--hostname", "bench-ingest@%h"])
    try:
        first = wait_for_events(store, lambda count: count > 0, worker)
        last = wait_for_events(store, lambda count: count >= events, worker)
        rss = peak_rss_mib(worker.popen.pid)
    finally:
        worker.stop()
    if first.events > events // 2:
        click.echo(f"  warning: {first.events:,} events were in before the worker was ready; raise the count")
    if store.hlen(keys.QUARANTINE):
        raise RuntimeError(f"{store.hlen(keys.QUARANTINE)} event(s) quarantined: the benchmark's events are invalid")
    return rate(first, last), rss


def url(server: EmbeddedRedis, db: int) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


def run_round(server: EmbeddedRedis, messages: list[bytes], per_message: int, log_path: Path) -> Figures:
    """The same messages through the raw consumer, then through a worker; Redis is emptied afterwards."""
    publish(url(server, BROKER_DB), messages)
    raw = consume_raw(url(server, BROKER_DB), len(messages), per_message)
    publish(url(server, BROKER_DB), messages)
    ingested, rss = ingest_with_worker(server, len(messages) * per_message, log_path)
    redis.Redis(port=server.port).flushall()
    return Figures(raw, ingested, rss)


def run_case(server: EmbeddedRedis, events: int, per_message: int, rounds: int, scratch: Path) -> list[Figures]:
    messages = bodies(events, per_message)
    return [run_round(server, messages, per_message, scratch / f"worker-{per_message}-{n}.log") for n in range(rounds)]


def best(rounds: list[Figures]) -> Figures:
    """The fastest round for each rate (other work on the machine only ever slows one down), the highest RSS."""
    return Figures(max(r.raw for r in rounds), max(r.ingested for r in rounds), max(r.rss_mib for r in rounds))


def report(title: str, rounds: list[Figures]) -> Figures:
    figures = best(rounds)
    ratios = sorted(r.ratio for r in rounds)
    click.echo(title)
    click.echo(f"  raw stream consumer:{figures.raw:>9,.0f} events/s (baseline)")
    click.echo(f"  pushsync worker:    {figures.ingested:>9,.0f} events/s, ratio {figures.ratio:.2f} "
               f"(rounds {ratios[0]:.2f} to {ratios[-1]:.2f}), peak RSS {figures.rss_mib:.0f} MiB")
    return figures


def case_figures(case: str, rounds: list[Figures]) -> dict[str, float]:
    """A case's figures as the results file names them: the best rates, the ratio's range over rounds."""
    figures, ratios = best(rounds), [r.ratio for r in rounds]
    return {f"{case}_raw_events_per_second": figures.raw, f"{case}_worker_events_per_second": figures.ingested,
            f"{case}_ratio": figures.ratio, f"{case}_ratio_lowest_round": min(ratios),
            f"{case}_ratio_highest_round": max(ratios), f"{case}_worker_peak_rss_mib": figures.rss_mib}


@click.command()
@click.option("--messages", default=SINGLE_MESSAGES, show_default=True, help="Single-event messages per round.")
@click.option("--batched-events", default=BATCHED_EVENTS, show_default=True,
              help=f"Events per round, in messages of {DEFAULT_EVENTS_PER_MESSAGE}.")
@click.option("--rounds", default=ROUNDS, show_default=True, help="Rounds per case; the best is reported.")
def main(messages: int, batched_events: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        server = EmbeddedRedis(Path(scratch) / "redis")
        try:
            single = run_case(server, messages, 1, rounds, Path(scratch))
            batched = run_case(server, batched_events, DEFAULT_EVENTS_PER_MESSAGE, rounds, Path(scratch))
        finally:
            server.stop()
    click.echo(f"ingestion into Redis, best of {rounds} round(s), private embedded Redis")
    single_figures = report(f"single-event messages: {messages:,} per round", single)
    single_target = at_least("single-event messages, worker / raw stream consumer", single_figures.ratio, SINGLE_RATIO_TARGET)
    click.echo(f"  target: ratio >= {SINGLE_RATIO_TARGET}: {verdict(single_target)}")
    batched_figures = report(f"batched messages: {batched_events:,} events per round, "
                             f"{DEFAULT_EVENTS_PER_MESSAGE} per message", batched)
    batched_target = at_least(f"{DEFAULT_EVENTS_PER_MESSAGE}-event messages, worker events/s",
                              batched_figures.ingested, BATCHED_TARGET_PER_SECOND)
    click.echo(f"  target: >= {BATCHED_TARGET_PER_SECOND:,} events/s: {verdict(batched_target)}")
    figures = {"single_messages": messages, "batched_events": batched_events,
               "events_per_message": DEFAULT_EVENTS_PER_MESSAGE, "rounds": rounds,
               **case_figures("single", single), **case_figures("batched", batched)}
    write_result("ingest", "Ingestion into Redis", invocation(), figures, [single_target, batched_target], [
        f"Each rate is the best of {rounds} rounds, the peak RSS the highest; the ratio of each round to its own "
        "raw consumer is in the figures as the lowest and highest round.",
    ])


if __name__ == "__main__":
    main()
