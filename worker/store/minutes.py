"""Events in and operations pushed per minute per target, shared by every worker (the console's chart).

Each minute of a target is one hash of two counters (`Target.minute`) that expires once it is
older than `MINUTES_KEPT` minutes, so the counts stay bounded whatever the traffic: a target
holds at most `MINUTES_KEPT` + 1 such hashes. The metrics count the same per worker process;
these add up every worker's in the one place a reader of the whole pipeline can see.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis

from worker.store import keys

MINUTE_SECONDS = 60
MINUTES_KEPT = 60
"""Minutes of counts kept, and shown: the last hour."""
RECEIVED = "in"
PUSHED = "pushed"
"""Fields of a minute's hash: events ingested into windows, and operations of accepted batches."""


@dataclass(frozen=True)
class Minute:
    """What one target did in one minute."""

    at: float
    """When the minute began (epoch seconds)."""
    received: int
    pushed: int


def minute_of(now: float | None = None) -> int:
    """The number of the minute holding `now` (epoch seconds; default: the current time)."""
    return int((time.time() if now is None else now) // MINUTE_SECONDS)


def add(client: redis.Redis, counts: Mapping[tuple[keys.Target, int, str], int]) -> None:
    """Add each count to its target's minute and field (RECEIVED or PUSHED), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for (target, minute, field), count in counts.items():
        key = target.minute(minute)
        pipe.hincrby(key, field, count)
        pipe.expireat(key, (minute + MINUTES_KEPT + 1) * MINUTE_SECONDS)
    pipe.execute()


def last_hour(client: redis.Redis, targets: list[keys.Target], now: float | None = None) -> dict[str, list[Minute]]:
    """Target ref -> its last `MINUTES_KEPT` minutes, oldest first, the current one last (zeros where quiet)."""
    current = minute_of(now)
    minutes = range(current - MINUTES_KEPT + 1, current + 1)
    pipe = client.pipeline(transaction=False)
    for target in targets:
        for minute in minutes:
            pipe.hgetall(target.minute(minute))
    replies = iter(pipe.execute())
    series = {}
    for target in targets:
        series[target.ref] = [
            Minute(minute * MINUTE_SECONDS, int(counts.get(RECEIVED.encode(), 0)), int(counts.get(PUSHED.encode(), 0)))
            for minute, counts in zip(minutes, replies)]
    return series
