"""Publishing throughput: events per second with one event per message (the baseline) and batched.

    python bench/publish_throughput.py [--broker-url URL] [--events N]

Prints both rates and their ratio, measured in the same run on the same broker. Uses a queue of
its own and deletes it afterwards. Not a test: the figures are written to bench/results/publish.json.
"""

from __future__ import annotations

import time
import uuid

import click
from kombu import Connection
from results import invocation, write_result

from producers import broker
from producers.publisher import DEFAULT_EVENTS_PER_MESSAGE, Publisher

DEFAULT_EVENTS = 5_000
BODY_TEXT = "lorem ipsum " * 40
"""About half a kilobyte of content per event, like a short CMS entry."""


def events(count: int) -> list[dict]:
    return [
        {"kind": "item.upsert", "source": "bench", "documentId": f"https://bench.example/{n}", "version": n,
         "item": {"metadata": {"title": f"Item {n}"}, "data": BODY_TEXT}}
        for n in range(count)
    ]


def rate(broker_url: str, queue: str, per_message: int, batch: list[dict]) -> float:
    """Events per second for publishing `batch` with `per_message` events per message."""
    with Publisher(broker_url, events_per_message=per_message, queue_name=queue) as publisher:
        prepared = [publisher.prepare(event) for event in batch]  # validation is not what is compared
        started = time.perf_counter()
        publisher.publish_many(prepared)
        return len(batch) / (time.perf_counter() - started)


@click.command()
@click.option("--broker-url", envvar=["BROKER_URL", "REDIS_URL"], default="redis://127.0.0.1:6379/9", show_default=True)
@click.option("--events", "count", default=DEFAULT_EVENTS, show_default=True)
def main(broker_url: str, count: int) -> None:
    queue = f"{broker.EVENTS_QUEUE}.bench-{uuid.uuid4().hex[:8]}"
    batch = events(count)
    try:
        single = rate(broker_url, queue, 1, batch)
        batched = rate(broker_url, queue, DEFAULT_EVENTS_PER_MESSAGE, batch)
    finally:
        with Connection(broker_url) as connection:
            broker.remove(connection, queue)
    click.echo(f"{count:,} events on {Connection(broker_url).as_uri()}")
    click.echo(f"  1 event per message:   {single:>10,.0f} events/s (baseline)")
    click.echo(f"  {DEFAULT_EVENTS_PER_MESSAGE} events per message: {batched:>10,.0f} events/s")
    click.echo(f"  ratio: {batched / single:.1f}x")
    figures = {"events": count, "events_per_message": DEFAULT_EVENTS_PER_MESSAGE,
               "single_events_per_second": single, "batched_events_per_second": batched, "ratio": batched / single}
    write_result("publish", "Publishing events", invocation(), figures, [], [
        f"Measured on {Connection(broker_url).as_uri()}, the same broker for both rates; events are validated "
        "before the clock starts, so only publishing is compared.",
    ])


if __name__ == "__main__":
    main()
