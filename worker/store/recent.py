"""What each target did last: its last accepted batch and its last error, for `pushsync status`.

Both are written where they happen (the push, a dead letter, a pause) and registered in
`keys.TARGETS`, so a source that has gone quiet is still listed with what it last did.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from worker.store import keys

URL_QUERY = re.compile(r"(\bhttps?://[^\s?'\"]+)\?[^\s'\")]*", re.IGNORECASE)
"""A URL's query: a file container's upload URL is presigned there, a credential for an hour."""
ERROR_MAX_CHARS = 500
"""Longest error text kept: enough for the service's message, never a whole response body."""


@dataclass(frozen=True)
class Recent:
    """A target's last accepted batch and last error (None where there was none yet)."""

    pushed_at: float | None = None
    pushed_batch: str | None = None
    pushed_items: int | None = None
    """Operations (upserts, deletes, identity changes) the last accepted batch held."""
    error_at: float | None = None
    error: str | None = None


def pushed(pipe: Pipeline, target: keys.Target, batch_id: str, items: int, now: float | None = None) -> None:
    """Record that the service accepted batch `batch_id` of `target` with `items` operations, in `pipe`
    (the caller executes it)."""
    pipe.hset(target.recent, mapping={"pushed_at": repr(time.time() if now is None else now),
                                      "pushed_batch": batch_id, "pushed_items": items})
    pipe.sadd(keys.TARGETS, target.ref)


def failed(client: redis.Redis, target: keys.Target, error: str, now: float | None = None) -> None:
    """Record `error` (one line a person can act on) as `target`'s last error."""
    pipe = client.pipeline(transaction=False)
    pipe.hset(target.recent, mapping={"error_at": repr(time.time() if now is None else now),
                                      "error": URL_QUERY.sub(r"\1?…", error)[:ERROR_MAX_CHARS]})
    pipe.sadd(keys.TARGETS, target.ref)
    pipe.execute()


def parse(fields: dict[str, str]) -> Recent:
    """A `Recent` from the target's `recent` hash, decoded."""
    return Recent(
        pushed_at=float(fields["pushed_at"]) if "pushed_at" in fields else None,
        pushed_batch=fields.get("pushed_batch"),
        pushed_items=int(fields["pushed_items"]) if "pushed_items" in fields else None,
        error_at=float(fields["error_at"]) if "error_at" in fields else None,
        error=fields.get("error"),
    )
