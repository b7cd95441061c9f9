"""Quarantine: messages and events that cannot be used, kept with the reason, never dropped.

An entry holds the raw body as received (the JSON value of one event, or the message as text,
or as base64 when it is not UTF-8), the reason a person can act on, the queue it came from and
the time, with the size and SHA-256 of the whole raw body. Redis runs with `noeviction`, so an
entry is bounded: at most `RAW_CAP_CHARS` characters of raw body are stored, JSON escapes and
base64 included; a body that does not fit is kept as its longest prefix that does, and the entry
says `truncated`. An entry therefore takes at most about `ENTRY_MAX_CHARS` in Redis, and the
whole quarantine at most that times `pushsync_quarantine_entries`.

Listing, showing, purging and replaying are for operators (`pushsync quarantine`).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import redis

from producers.events import InvalidEvent
from worker.ingest import horizon
from worker.store import keys

RAW_CAP_CHARS = 64 * 1024
"""Most characters of raw body one entry stores, as they stand in its JSON (escapes, base64 included)."""
BASE64_CAP_BYTES = RAW_CAP_CHARS // 4 * 3
"""Most raw bytes kept as base64: their base64 text is RAW_CAP_CHARS long."""
REASON_CAP_CHARS = 4 * 1024
"""Most characters of reason stored: one event can fail validation in very many places."""
TARGET_CAP_CHARS = 512
"""Most characters of the source or provider named by an event that failed validation."""
ENTRY_MAX_CHARS = RAW_CAP_CHARS + REASON_CAP_CHARS + TARGET_CAP_CHARS + 512
"""Most characters one stored entry takes (bytes too: it is ASCII JSON): the caps above and its fixed fields."""
READ_CHUNK_ENTRIES = 100
"""Entries fetched from Redis in one round trip when reading many."""
INVALID, UNDECODABLE, POISON, PROTECTED = "invalid", "undecodable", "poison", "protected"
CAUSES = frozenset({INVALID, UNDECODABLE, POISON, PROTECTED, horizon.TOO_OLD, horizon.FUTURE})
"""Why events go to quarantine: an event failed validation, a message could not be decoded, the
broker gave up redelivering a message, an event named a protected source, an event was outside the
ordering horizon (older than it, or dated ahead of the worker's clock)."""
_JSON_ESCAPE_CHARS = 6
"""Longest escape of one character in JSON text (`\\u0000`)."""


@dataclass(frozen=True)
class QuarantineEntry:
    """One quarantined message or event."""

    id: str
    at: float
    reason: str
    queue: str
    target: str | None
    index: int | None
    """Position of the event in its message; None when the whole message was unusable."""
    raw: Any
    """The JSON value, the message text, or the message bytes as base64 (see `raw_encoding`);
    only a prefix of it when `truncated` (of the event's compact JSON text for an event)."""
    raw_encoding: str
    """`json`, `text` or `base64`."""
    size: int | None = None
    """Bytes of the whole raw body: the message as received, or the event's compact JSON text
    (`json.dumps(value, separators=(",", ":"))`). None on entries written before sizes were kept."""
    sha256: str | None = None
    """Hex SHA-256 of those bytes."""
    truncated: bool = False
    """Whether `raw` holds only a prefix of the raw body (it did not fit RAW_CAP_CHARS); such an entry
    cannot be replayed."""

    def to_json(self) -> str:
        # Not asdict: it would deep-copy the raw value.
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: bytes | str) -> QuarantineEntry:
        return cls(**json.loads(data))


def entry_for(invalid: InvalidEvent, *, queue: str, now: float | None = None) -> QuarantineEntry:
    """The quarantine entry that keeps `invalid` with its reason, its raw body capped at RAW_CAP_CHARS.

    queue: the queue the message came from.
    now: the entry's time (epoch seconds); the current time when None.
    """
    whole: bytes | None
    if isinstance(invalid.raw, (bytes, bytearray)):
        whole = bytes(invalid.raw)
        raw, encoding, truncated = _bounded_bytes(whole)
    else:
        whole, raw, encoding, truncated = _bounded_value(invalid.raw)
    target = invalid.target
    return QuarantineEntry(
        id=uuid.uuid4().hex, at=time.time() if now is None else now,
        reason=_escaped_head(invalid.reason, REASON_CAP_CHARS), queue=queue,
        target=None if target is None else _escaped_head(target, TARGET_CAP_CHARS), index=invalid.index,
        raw=raw, raw_encoding=encoding, truncated=truncated,
        size=None if whole is None else len(whole),
        sha256=None if whole is None else hashlib.sha256(whole).hexdigest(),
    )


def _bounded_bytes(body: bytes) -> tuple[str, str, bool]:
    """(raw, encoding, truncated) for message bytes: text when UTF-8, else base64, whole when either fits."""
    if len(body) <= RAW_CAP_CHARS:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if _escaped_length(text) <= RAW_CAP_CHARS:
                return text, "text", False
    if len(body) <= BASE64_CAP_BYTES:
        return base64.b64encode(body).decode(), "base64", False
    # Too large whole: a readable prefix when the start is UTF-8, else the first bytes.
    head = _utf8_head(body[:RAW_CAP_CHARS])
    if head:
        return _escaped_head(head, RAW_CAP_CHARS), "text", True
    return base64.b64encode(body[:BASE64_CAP_BYTES]).decode(), "base64", True


def _bounded_value(value: Any) -> tuple[bytes | None, Any, str, bool]:
    """(the compact JSON bytes of an event's value, raw, encoding, truncated) to store for it."""
    try:
        # ASCII (ensure_ascii): its length is what it takes inside the entry's own JSON.
        text = json.dumps(value, separators=(",", ":"))
    except (RecursionError, ValueError):
        # Nested deeper than the encoder goes (or circular): nothing of it can be written down.
        return None, "", "text", True
    if len(text) <= RAW_CAP_CHARS:
        return text.encode(), value, "json", False
    return text.encode(), _escaped_head(text[:RAW_CAP_CHARS], RAW_CAP_CHARS), "text", True


def _utf8_head(data: bytes) -> str | None:
    """The text of `data` when it is UTF-8 that may stop inside a character; None when it is not UTF-8."""
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return None


def _escaped_length(text: str) -> int:
    """Characters `text` takes as a JSON string (quotes excluded)."""
    return len(json.dumps(text)) - 2


def _escaped_head(text: str, cap: int) -> str:
    """The longest prefix of `text` that takes at most `cap` characters as a JSON string."""
    if len(text) * _JSON_ESCAPE_CHARS <= cap or _escaped_length(text) <= cap:
        return text
    # Each character takes one to six; cut the escaped form, then back off a cut escape.
    escaped = json.dumps(text[:cap])[1:-1][:cap]
    for end in range(len(escaped), max(len(escaped) - _JSON_ESCAPE_CHARS, 0) - 1, -1):
        try:
            head = json.loads('"' + escaped[:end] + '"')
        except json.JSONDecodeError:
            continue
        # A cut between the two escapes of a surrogate pair leaves half a character: drop it.
        return head if head == text[:len(head)] else head[:-1]
    return ""


def with_reason(entry: QuarantineEntry, reason: str) -> QuarantineEntry:
    """`entry` as it is, with `reason` (capped like any entry's) in place of its own."""
    return replace(entry, reason=_escaped_head(reason, REASON_CAP_CHARS))


def keep(pipe: redis.client.Pipeline, entry: QuarantineEntry) -> None:
    """Queue the commands that store `entry` on `pipe` (the caller executes it)."""
    pipe.hset(keys.QUARANTINE, entry.id, entry.to_json())
    pipe.zadd(keys.QUARANTINE_INDEX, {entry.id: entry.at})


def _adopt_legacy_index(client: redis.Redis) -> None:
    """Move the index an earlier version kept under its old name into the current one (a single server
    only ever had it: both names are on the same server there)."""
    if client.exists(keys.LEGACY_QUARANTINE_INDEX):
        pipe = client.pipeline()
        pipe.zunionstore(keys.QUARANTINE_INDEX, [keys.QUARANTINE_INDEX, keys.LEGACY_QUARANTINE_INDEX], aggregate="MIN")
        pipe.delete(keys.LEGACY_QUARANTINE_INDEX)
        pipe.execute()


def ids(client: redis.Redis) -> list[str]:
    """Every entry id, oldest first."""
    _adopt_legacy_index(client)
    return [i.decode() for i in client.zrange(keys.QUARANTINE_INDEX, 0, -1)]


def entries(client: redis.Redis, entry_ids: list[str]) -> Iterator[tuple[str, QuarantineEntry | None]]:
    """(id, entry) for each of `entry_ids` in order, read a chunk at a time; None for an id with no entry."""
    for start in range(0, len(entry_ids), READ_CHUNK_ENTRIES):
        chunk = entry_ids[start:start + READ_CHUNK_ENTRIES]
        for entry_id, raw in zip(chunk, client.hmget(keys.QUARANTINE, chunk)):
            yield entry_id, None if raw is None else QuarantineEntry.from_json(raw)


def list_entries(client: redis.Redis, *, limit: int = 100, target: str | None = None) -> list[QuarantineEntry]:
    """The oldest `limit` entries, optionally only those naming `target`."""
    found = []
    for _, entry in entries(client, ids(client)):
        if entry is not None and (target is None or entry.target == target):
            found.append(entry)
            if len(found) >= limit:
                break
    return found


def show(client: redis.Redis, entry_id: str) -> QuarantineEntry | None:
    raw = client.hget(keys.QUARANTINE, entry_id)
    return QuarantineEntry.from_json(raw) if raw else None


def count(client: redis.Redis) -> int:
    _adopt_legacy_index(client)
    return client.zcard(keys.QUARANTINE_INDEX)


def substitute(client: redis.Redis, entry_id: str, by: list[QuarantineEntry]) -> None:
    """Put the entries `by` in the place of entry `entry_id` in one transaction (`by` may hold it, changed)."""
    _adopt_legacy_index(client)
    pipe = client.pipeline()
    pipe.hdel(keys.QUARANTINE, entry_id)
    pipe.zrem(keys.QUARANTINE_INDEX, entry_id)
    for entry in by:
        keep(pipe, entry)
    pipe.execute()


def purge(client: redis.Redis, entry_ids: list[str] | None = None) -> int:
    """Delete the given entries, or every entry when `entry_ids` is None; returns how many."""
    chosen = entry_ids if entry_ids is not None else ids(client)
    if not chosen:
        return 0
    _adopt_legacy_index(client)
    pipe = client.pipeline()
    pipe.hdel(keys.QUARANTINE, *chosen)
    pipe.zrem(keys.QUARANTINE_INDEX, *chosen)
    removed, _ = pipe.execute()
    return removed
