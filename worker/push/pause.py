"""Pausing a target: quota used up, wrong key, organization paused. Events keep buffering.

A pause lasts what the service's `Retry-After` said, when it said (a 429 TOO_MANY_DOCUMENTS_DAILY
points at the day's end: retrying today does not help), else a set length: nothing in the contract
says when an item limit, a paused organization or a refused key comes right. The batch it stopped is
parked with the pause's end (`park`), and the sweep enqueues it again at that moment (`parked_due`).
Its next push probes first with one item alone (see `worker/pushapi/batches.py`): a pause that has not
really ended costs one small call, never the upload of a whole batch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import redis

from worker.pushapi.errors import StatusError
from worker.store import keys, recent
from worker.store.scripts import script

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

QUOTA = "quota"
ORGANIZATION_PAUSED = "organization_paused"
KEY_REFUSED = "key_refused"
CAUSES = frozenset({QUOTA, ORGANIZATION_PAUSED, KEY_REFUSED})
"""Why a target is paused, in a word: the quota or an item limit was reached, the organization is
paused, the API key was refused. Few and fixed, so they can label a metric (the reason says more)."""
MIN_PAUSE_SECONDS = 1.0
"""The shortest pause, whatever Retry-After says: the next probe comes no sooner."""
MAX_PAUSE_SECONDS = 24 * 3600.0
"""The longest pause a Retry-After makes: an allowance counted per day renews within one."""
UNKNOWN_CAUSE = "unknown"
"""The cause of a pause written by a version that recorded none (such a pause ends within the hour)."""


def length(error: StatusError, default: float) -> float:
    """Seconds the refusal `error` pauses its target for: its Retry-After, within bounds, else `default`."""
    if error.retry_after is None:
        return default
    return min(max(error.retry_after, MIN_PAUSE_SECONDS), MAX_PAUSE_SECONDS)


def pause(client: redis.Redis, target: keys.Target, *, cause: str, reason: str, seconds: float) -> float:
    """Stop pushing to `target` for `seconds`; the epoch seconds when the pause ends.

    cause: one of CAUSES.
    reason: the error in full, shown by `pushsync status`.
    """
    if cause not in CAUSES:
        raise ValueError(f"unknown pause cause {cause!r}: expected one of {', '.join(sorted(CAUSES))}")
    until = time.time() + seconds
    client.hset(target.pause, mapping={"cause": cause, "reason": reason, "until": repr(until)})
    recent.failed(client, target, f"paused: {reason}")
    log.error("pushing to %s paused for %.0fs: %s", target.ref, seconds, reason)
    return until


def park(client: redis.Redis, batch: keys.Batch) -> None:
    """Record that `batch` waits for its target's pause to end, so that the sweep enqueues it again then."""
    until = client.hget(batch.target.pause, "until")
    client.zadd(keys.PARKED, {batch.claim_ref: float(until) if until is not None else time.time()})


def parked_due(client: redis.Redis, now: float, limit: int) -> list[keys.Batch]:
    """The parked batches whose pause is over at `now` (at most `limit`, earliest first), taken off the
    record; one whose target was paused again meanwhile stays recorded, with the new end."""
    refs = client.zrangebyscore(keys.PARKED, "-inf", now, start=0, num=limit)
    batches = [keys.Batch.from_claim_ref(ref.decode()) for ref in refs]
    pipe = client.pipeline(transaction=False)
    for batch in batches:
        pipe.hget(batch.target.pause, "until")
    due = []
    for ref, batch, until in zip(refs, batches, pipe.execute()):
        if until is not None and float(until) > now:
            client.zadd(keys.PARKED, {ref: float(until)}, xx=True)
        elif client.zrem(keys.PARKED, ref):
            due.append(batch)
    return due


def active(client: redis.Redis, target: keys.Target, now: float | None = None) -> bool:
    """Whether `target` is paused now; an expired pause is cleared."""
    return still_paused(client, target, client.hget(target.pause, "until"), now)


def still_paused(client: redis.Redis, target: keys.Target, until: bytes | None, now: float | None = None) -> bool:
    """Whether `target` is paused now, given the end of its pause as read from its pause hash (`until`,
    None when it has none); an expired pause is cleared, unless another push paused the target again since."""
    if until is None:
        return False
    if float(until) > (time.time() if now is None else now):
        return True
    if script(client, HERE / "lapse.lua")(keys=[target.pause], args=[until]):
        log.info("pause of %s is over; pushing again", target.ref)
    return False


def describe(client: redis.Redis, target: keys.Target) -> dict[str, str] | None:
    """The pause's cause, reason and end time, or None."""
    values = client.hgetall(target.pause)
    return {k.decode(): v.decode() for k, v in values.items()} or None


def paused(client: redis.Redis, targets: list[keys.Target], now: float | None = None) -> dict[keys.Target, str]:
    """Those of `targets` paused now, with the cause of each pause (read only: an expired pause is skipped)."""
    return {target: cause.decode() if cause is not None else UNKNOWN_CAUSE
            for target, (_, cause) in _pauses(client, targets, now).items()}


def ends(client: redis.Redis, targets: list[keys.Target], now: float | None = None) -> dict[keys.Target, float]:
    """Those of `targets` paused now, with the epoch seconds when each pause ends (read only, one round trip)."""
    return {target: until for target, (until, _) in _pauses(client, targets, now).items()}


def _pauses(client: redis.Redis, targets: list[keys.Target],
            now: float | None) -> dict[keys.Target, tuple[float, bytes | None]]:
    """Those of `targets` paused at `now` (default: now), with their pause's end and its cause as stored."""
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for target in targets:
        pipe.hmget(target.pause, "until", "cause")
    found = {}
    for target, (until, cause) in zip(targets, pipe.execute()):
        if until is not None and float(until) > now:
            found[target] = (float(until), cause)
    return found
