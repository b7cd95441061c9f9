"""Pausing a target: quota used up, wrong key, organization paused. Events keep buffering."""

from __future__ import annotations

import logging
import time

import redis

from worker.store import keys, recent

log = logging.getLogger(__name__)


def pause(client: redis.Redis, target: keys.Target, *, reason: str, seconds: float) -> None:
    """Stop pushing to `target` for `seconds`; `reason` is shown by `pushsync status`."""
    until = time.time() + seconds
    client.hset(target.pause, mapping={"reason": reason, "until": repr(until)})
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
    """The pause's reason and end time, or None."""
    values = client.hgetall(target.pause)
    return {k.decode(): v.decode() for k, v in values.items()} or None
