"""Coalescing: each valid event goes into its target's open window, newest version per key.

Items go to their Push source's window, identity changes to their provider's. Each event is
one atomic `coalesce.lua` call, a group's events in one pipeline; the same round trip registers
each window's deadline (unless it has one), brought forward to now when the window is full.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from producers.events import Event, IdentityAlias, IdentityDisable, IdentityUpsert
from worker import keys
from worker.scripts import script
from worker.settings import Settings

OUTCOMES = {1: "added", 2: "replaced", 0: "superseded", -1: "stale"}
REMOVALS = frozenset({"item.delete", "identity.disable"})
"""Kinds that win a tie: a CMS may send an unpublish with the revision of the last publish."""


def rank(kind: str, version: int) -> str:
    """How an event orders against others of its key: by version, then a removal beats an upsert."""
    return f"{version}.{1 if kind in REMOVALS else 0}"


def is_newer(candidate: str, held: str) -> bool:
    """Python's twin of `newer` in rank.lua, for ranks read back from Redis."""
    return _rank_key(candidate) > _rank_key(held)


def pushed_at_ms(mark: str) -> int | None:
    """When the push that set high-water mark `mark` was accepted (epoch ms), if it says."""
    _, _, when = mark.partition("@")
    return int(when) if when else None


def _rank_key(value: str) -> tuple[int, int]:
    version, _, tiebreak = value.partition("@")[0].partition(".")
    return int(version), int(tiebreak) if tiebreak else -1


def target_of(event: Event) -> keys.Target:
    """The window an event belongs in: its provider's for identity events, else its source's."""
    if isinstance(event, (IdentityUpsert, IdentityAlias, IdentityDisable)):
        return keys.Target(keys.PROVIDER, event.target)
    return keys.Target(keys.SOURCE, event.target)


@dataclass
class CoalesceResult:
    """What happened to a group of events: counts per outcome, and the targets touched."""

    outcomes: Counter = field(default_factory=Counter)
    full: set[keys.Target] = field(default_factory=set)
    """Targets whose window reached the item or byte limit and closes at the next sweep."""
    touched: set[keys.Target] = field(default_factory=set)
    oldest_stale_push_ms: int | None = None
    """Of the stale events, when the oldest push that made one stale was accepted (epoch ms)."""


class Coalescer:
    """Writes events into per-target windows in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        """
        client: the coalescing store.
        settings: window length and the count and byte limits that close a window early.
        """
        self.client = client
        self.settings = settings
        self._coalesce = script(client, "coalesce.lua", "rank.lua")

    def add(self, events: Iterable[Event]) -> CoalesceResult:
        """Put `events` into their windows; returns only once Redis has every one of them.

        One round trip holds every event's coalesce.lua call, then each touched window's deadline;
        a second one brings a full window's deadline forward to now.
        """
        now = time.time()
        stamp = repr(now)
        pipe = self.client.pipeline(transaction=False)
        # What calling the Script does for every event, once: the pipeline loads it if Redis lost it.
        pipe.scripts.add(self._coalesce)
        window_keys: dict[keys.Target, tuple[str, str, str, str]] = {}
        targets = []
        for event in events:
            target = target_of(event)
            targets.append(target)
            if target not in window_keys:
                window_keys[target] = (target.window, target.versions, target.window_meta, target.stats)
            window, versions, meta, stats = window_keys[target]
            key = event.coalescing_key
            pipe.evalsha(self._coalesce.sha, 5, window, versions, meta, target.high_water(key), stats,
                         key, rank(event.kind, event.version), event.encoded, stamp)
        for target in window_keys:
            pipe.zadd(keys.DEADLINES, {target.ref: now + self.settings.window_for(target.id)}, nx=True)
        replies = pipe.execute()
        result = CoalesceResult(touched=set(window_keys))
        for target, (outcome, count, size, *mark) in zip(targets, replies):
            result.outcomes[OUTCOMES[outcome]] += 1
            if mark and (when := pushed_at_ms(mark[0].decode())) is not None:
                result.oldest_stale_push_ms = min(result.oldest_stale_push_ms or when, when)
            if count >= self.settings.window_max_items or size >= self.settings.window_max_bytes:
                result.full.add(target)
        self._close_now(result.full, now)
        return result

    def _close_now(self, full: set[keys.Target], now: float) -> None:
        """Bring the deadline of each full window forward to now, so the next sweep claims it."""
        if not full:
            return
        pipe = self.client.pipeline(transaction=False)
        for target in full:
            pipe.zadd(keys.DEADLINES, {target.ref: now}, lt=True)
        pipe.execute()
