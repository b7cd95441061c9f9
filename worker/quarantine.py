"""Quarantine: messages and events that cannot be used, kept with the reason, never dropped.

An entry holds the raw bytes or JSON value as received (base64 when it is not UTF-8 text), the
reason a person can act on, the queue it came from and the time. Listing, showing and purging
are for operators (`pushsync quarantine`).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from producers.events import InvalidEvent
from worker import keys


@dataclass(frozen=True)
class Entry:
    """One quarantined message or event."""

    id: str
    at: float
    reason: str
    queue: str
    target: str | None
    index: int | None
    """Position of the event in its message; None when the whole message was unusable."""
    raw: Any
    """The JSON value, the message text, or the message bytes as base64 (see `raw_encoding`)."""
    raw_encoding: str
    """`json`, `text` or `base64`."""

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))


def entry_for(invalid: InvalidEvent, *, queue: str, now: float | None = None) -> Entry:
    """The quarantine entry that keeps `invalid` whole, with its reason."""
    raw, encoding = invalid.raw, "json"
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw, encoding = raw.decode("utf-8"), "text"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(raw).decode(), "base64"
    return Entry(
        id=uuid.uuid4().hex, at=time.time() if now is None else now, reason=invalid.reason, queue=queue,
        target=invalid.target, index=invalid.index, raw=raw, raw_encoding=encoding,
    )


def keep(pipe: redis.client.Pipeline, entry: Entry) -> None:
    """Queue the commands that store `entry` on `pipe` (the caller executes it)."""
    pipe.hset(keys.QUARANTINE, entry.id, entry.to_json())
    pipe.zadd(keys.QUARANTINE_INDEX, {entry.id: entry.at})


def list_entries(client: redis.Redis, *, limit: int = 100, target: str | None = None) -> list[Entry]:
    """The oldest `limit` entries, optionally only those naming `target`."""
    ids = [i.decode() for i in client.zrange(keys.QUARANTINE_INDEX, 0, -1)]
    entries = []
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start:chunk_start + 500]
        for raw in client.hmget(keys.QUARANTINE, chunk):
            if raw is None:
                continue
            entry = Entry(**json.loads(raw))
            if target is None or entry.target == target:
                entries.append(entry)
                if len(entries) >= limit:
                    return entries
    return entries


def show(client: redis.Redis, entry_id: str) -> Entry | None:
    raw = client.hget(keys.QUARANTINE, entry_id)
    return Entry(**json.loads(raw)) if raw else None


def count(client: redis.Redis) -> int:
    return client.zcard(keys.QUARANTINE_INDEX)


def purge(client: redis.Redis, entry_ids: list[str] | None = None) -> int:
    """Delete the given entries, or every entry when `entry_ids` is None; returns how many."""
    ids = entry_ids if entry_ids is not None else [i.decode() for i in client.zrange(keys.QUARANTINE_INDEX, 0, -1)]
    if not ids:
        return 0
    pipe = client.pipeline()
    pipe.hdel(keys.QUARANTINE, *ids)
    pipe.zrem(keys.QUARANTINE_INDEX, *ids)
    removed, _ = pipe.execute()
    return removed
