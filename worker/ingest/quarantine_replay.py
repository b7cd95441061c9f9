"""Replaying the quarantine: each entry's raw body goes through validation again, as it is now.

- An entry whose events are all valid now is republished to `pushsync.events` with the producer
  library and removed once the broker confirmed every event.
- An entry still invalid stays, with the reason validation gives now.
- A message of which only some events are valid: those are republished, and once the broker
  confirmed them the entry is replaced by one entry per invalid event (id `ID.INDEX`, the
  entry's time), as ingestion would have quarantined that message had it been decoded.
- A truncated entry holds only a prefix of its body: it cannot be replayed and stays.

Republished events keep their versions, so whatever was superseded since is dropped by the
worker as stale; a replay interrupted after the broker confirmed but before the quarantine was
changed republishes the same events next time, which changes nothing. Ingestion applies its
own rules to replayed events again (protected sources, sizes, ordering), and quarantines anew
what they refuse.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import Enum

import redis

from producers import Publisher
from producers.errors import InvalidEventError
from producers.events import Event, InvalidEvent, decode_message, parse_event
from worker.ingest import quarantine
from worker.ingest.quarantine import QuarantineEntry


class ReplayOutcome(Enum):
    """What a replay did with one entry."""

    REPLAYED = "replayed"
    """Every event republished; the entry is gone."""
    PARTLY = "partly replayed"
    """The valid events republished; the entry replaced by one per invalid event."""
    INVALID = "still invalid"
    """Nothing republished; the entry stays with its reason as of now."""
    TRUNCATED = "truncated"
    """Only a prefix was kept; the entry stays as it was."""
    MISSING = "not found"
    """No entry has that id."""

    @property
    def stayed(self) -> bool:
        """Whether something of the entry is still in quarantine (or was never there)."""
        return self is not ReplayOutcome.REPLAYED


@dataclass(frozen=True)
class ReplayResult:
    """The outcome for one entry."""

    entry_id: str
    outcome: ReplayOutcome
    events: int = 0
    """Events republished (or, in a dry run, that would be)."""
    detail: str = ""
    """The reason it stayed, or the ids of the entries that replace it."""


def revalidate(entry: QuarantineEntry) -> list[Event | InvalidEvent]:
    """The events of `entry` as validation sees them now: one event for an event's JSON value,
    every event of the message for a message body (entries written by ingestion either way)."""
    if entry.raw_encoding == "json":
        try:
            return [parse_event(entry.raw)]
        except InvalidEventError as exc:
            return [InvalidEvent(reason=exc.reason, raw=entry.raw, index=entry.index)]
    body = base64.b64decode(entry.raw) if entry.raw_encoding == "base64" else entry.raw.encode("utf-8")
    return decode_message(body)


def replay(client: redis.Redis, broker_url: str, entry_ids: list[str] | None = None, *,
           dry_run: bool = False) -> Iterator[ReplayResult]:
    """Replay the given entries in order, or every entry oldest first; yield each one's result as done.

    client: the coalescing store that holds the quarantine.
    broker_url: the broker to republish to.
    dry_run: revalidate only; publish and change nothing.
    Raises PublishError when the broker did not confirm an entry's events; that entry and those
    after it stay as they were.
    """
    chosen = quarantine.ids(client) if entry_ids is None else entry_ids
    with Publisher(broker_url) as publisher:
        for entry_id, entry in quarantine.entries(client, chosen):
            if entry is None:
                yield ReplayResult(entry_id, ReplayOutcome.MISSING)
            else:
                yield _replay_one(client, publisher, entry, dry_run)


def _replay_one(client: redis.Redis, publisher: Publisher, entry: QuarantineEntry, dry_run: bool) -> ReplayResult:
    if entry.truncated:
        return ReplayResult(entry.id, ReplayOutcome.TRUNCATED, detail=(
            f"only a prefix of its {entry.size if entry.size is not None else 'unknown number of'} bytes was kept"))
    decoded = revalidate(entry)
    valid = [event for event in decoded if not isinstance(event, InvalidEvent)]
    invalid = [event for event in decoded if isinstance(event, InvalidEvent)]
    if not valid and invalid:
        # A message's events are named by their position in it; an event entry has only its own.
        reason = "; ".join(f"event {event.index}: {event.reason}" if entry.raw_encoding != "json"
                           and event.index is not None else event.reason for event in invalid)
        if not dry_run:
            quarantine.substitute(client, entry.id, [quarantine.with_reason(entry, reason)])
        return ReplayResult(entry.id, ReplayOutcome.INVALID, detail=reason)
    if not dry_run:
        publisher.publish_many(valid)
    if not invalid:
        if not dry_run:
            quarantine.purge(client, [entry.id])
        return ReplayResult(entry.id, ReplayOutcome.REPLAYED, events=len(valid))
    kept = [replace(quarantine.entry_for(event, queue=entry.queue, now=entry.at), id=f"{entry.id}.{event.index}")
            for event in invalid]
    if not dry_run:
        quarantine.substitute(client, entry.id, kept)
    return ReplayResult(entry.id, ReplayOutcome.PARTLY, events=len(valid),
                  detail=f"{len(kept)} invalid event(s) kept as {', '.join(k.id for k in kept)}")
