"""Pausing a target: quota used up, wrong key, organization paused. Events keep buffering."""

from __future__ import annotations

import logging
import time

import redis

from worker.store import keys, recent

log = logging.getLogger(__name__)

QUOTA = "quota"
ORGANIZATION_PAUSED = "organization_paused"
KEY_REFUSED = "key_refused"
CAUSES = frozenset({QUOTA, ORGANIZATION_PAUSED, KEY_REFUSED})
"""Why a target is paused, in a word: the quota or an item limit was reached, the organization is
paused, the API key was refused. Few and fixed, so they can label a metric (the reason says more)."""
UNKNOWN_CAUSE = "unknown"
"""The cause of a pause written by a version that recorded none (such a pause ends within the hour)."""


def pause(client: redis.Redis, target: keys.Target, *, cause: str, reason: str, seconds: float) -> None:
    """Stop pushing to `target` for `seconds`.

    cause: one of CAUSES.
    reason: the error in full, shown by `pushsync status`.
    """
    if cause not in CAUSES:
        raise ValueError(f"unknown pause cause {cause!r}: expected one of {', '.join(sorted(CAUSES))}")
    until = time.time() + seconds
    client.hset(target.pause, mapping={"cause": cause, "reason": reason, "until": repr(until)})
    recent.failed(client, target, f"paused: {reason}")
    log.error("pushing to %s paused for %.0fs: %s", target.ref, seconds, reason)


def active(client: redis.Redis, target: keys.Target, now: float | None = None) -> bool:
    """Whether `target` is paused now; an expired pause is cleared."""
    until = client.hget(target.pause, "until")
    if until is None:
        return False
    if float(until) > (time.time() if now is None else now):
        return True
    client.delete(target.pause)
    log.info("pause of %s is over; pushing again", target.ref)
    return False


def describe(client: redis.Redis, target: keys.Target) -> dict[str, str] | None:
    """The pause's cause, reason and end time, or None."""
    values = client.hgetall(target.pause)
    return {k.decode(): v.decode() for k, v in values.items()} or None


def paused(client: redis.Redis, targets: list[keys.Target], now: float | None = None) -> dict[keys.Target, str]:
    """Those of `targets` paused now, with the cause of each pause (read only: an expired pause is skipped)."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for target in targets:
        pipe.hmget(target.pause, "until", "cause")
    found = {}
    for target, (until, cause) in zip(targets, pipe.execute()):
        if until is not None and float(until) > now:
            found[target] = cause.decode() if cause is not None else UNKNOWN_CAUSE
    return found
