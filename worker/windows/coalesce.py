"""Coalescing: each valid event goes into its target's open window, newest version per key.

Items go to their Push source's window, identity changes to their provider's. A group's events
are written by one atomic `coalesce.lua` call per target (per `CHUNK_EVENTS` events), all in one
pipeline; the same round trip registers each window's deadline (unless it has one), brought
forward to now when the window is full, and to the first window's end (`PUSHSYNC_FIRST_WINDOW_SECONDS`)
when the window opens for a quiet target, one whose last batch was claimed a whole window ago or never.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.client import Pipeline

from producers.events import Event, IdentityAlias, IdentityDisable, IdentityUpsert, ItemDelete, ItemUpsert
from worker.settings import Settings
from worker.store import keys
from worker.store.ranks import RANK_LUA, rank
from worker.store.scripts import ScriptPipeline, script

HERE = Path(__file__).parent

OUTCOMES = ("added", "replaced", "superseded", "stale")
"""The counts coalesce.lua answers first, in its order."""
CHUNK_EVENTS = 1000
"""Events per coalesce.lua call: Redis's Lua unpacks at most about 8,000 values at once."""


KeyedEvent = tuple[str, str, bytes]
"""One event as coalesce.lua takes it: its coalescing key, its rank, and the event's JSON."""


TARGET_KINDS = {IdentityUpsert: keys.PROVIDER, IdentityAlias: keys.PROVIDER, IdentityDisable: keys.PROVIDER,
                ItemUpsert: keys.SOURCE, ItemDelete: keys.SOURCE}
"""The kind of window each kind of event goes into: identity events to their provider's."""


def target_of(event: Event) -> keys.Target:
    """The window an event belongs in: its provider's for identity events, else its source's."""
    return keys.Target(TARGET_KINDS[type(event)], event.target)


@dataclass
class CoalesceResult:
    """What happened to a group of events: counts per outcome."""

    outcomes: Counter = field(default_factory=Counter)
    by_target: dict[keys.Target, Counter] = field(default_factory=dict)
    """The same counts, per target."""
    full: set[keys.Target] = field(default_factory=set)
    """Targets whose window reached the item or byte limit and closes at the next sweep."""
    stale_push_ms: dict[keys.Target, int] = field(default_factory=dict)
    """Per target with stale events, when the oldest push that made one stale was accepted (epoch ms)."""

    @property
    def oldest_stale_push_ms(self) -> int | None:
        """Of all the stale events, when the oldest push that made one stale was accepted (epoch ms)."""
        return min(self.stale_push_ms.values(), default=None)


class Coalescer:
    """Writes events into per-target windows in Redis."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        """
        client: the coalescing store.
        settings: window length and the count and byte limits that close a window early.
        """
        self.client = client
        self.settings = settings
        self._coalesce = script(client, HERE / "coalesce.lua", RANK_LUA)

    def add(self, events: Iterable[Event]) -> CoalesceResult:
        """Put `events` into their windows; returns only once Redis has every one of them.

        One round trip holds the coalesce.lua calls, then each touched window's deadline; a
        second one brings the deadlines of full windows and of quiet targets' new windows forward
        and counts the events of broker-started full runs (see `_count_runs`).
        """
        now = time.time()
        # Grouped by plain (kind, id) pairs: building a Target per event cost more than the rest of the loop.
        grouped_by: dict[tuple[str, str], list[Event]] = {}
        for event in events:
            grouped_by.setdefault((TARGET_KINDS[type(event)], event.target), []).append(event)
        by_target = {keys.Target(*pair): grouped for pair, grouped in grouped_by.items()}
        result, pipe = self._write({
            target: [(event.coalescing_key, rank(event.kind, event.version), event.encoded) for event in grouped]
            for target, grouped in by_target.items()
        }, now)
        self._count_runs(pipe, by_target, result, int(now * 1000))
        if len(pipe):
            pipe.execute()
        return result

    def add_encoded(self, target: keys.Target, entries: Sequence[KeyedEvent]) -> CoalesceResult:
        """Put events validated and encoded earlier into `target`'s window, as `add` does.

        entries: (coalescing key, rank, encoded event) of each event, all of `target`.
        """
        result, pipe = self._write({target: entries}, time.time())
        if len(pipe):
            pipe.execute()
        return result

    def _write(self, by_target: dict[keys.Target, Sequence[KeyedEvent]], now: float) -> tuple[CoalesceResult, Pipeline]:
        """Run coalesce.lua over each target's entries; the result, and a pipeline holding the
        deadline changes of full windows and quiet targets' new ones, for the caller to add to and execute."""
        pipe = ScriptPipeline(self.client)
        calls = []
        for target, entries in by_target.items():
            window_keys = (target.window, target.versions, target.window_meta, target.stats)
            high_water = target.high_water("")
            for start in range(0, len(entries), CHUNK_EVENTS):
                chunk = entries[start:start + CHUNK_EVENTS]
                args: list[Any] = [repr(now)]
                for entry in chunk:
                    args += entry
                pipe.run(self._coalesce, (*window_keys, *(high_water + key for key, _, _ in chunk)), args)
                calls.append(target)
        for target in by_target:
            pipe.plain.zadd(target.deadlines, {target.ref: now + self.settings.window_for(target.id)}, nx=True)
        replies = pipe.execute()
        result = CoalesceResult()
        quiet: dict[keys.Target, float] = {}
        for target, (*counts, count, size, oldest_stale, opened, since_claim) in zip(calls, replies):
            counted = {name: n for name, n in zip(OUTCOMES, counts) if n}
            result.outcomes.update(counted)
            result.by_target.setdefault(target, Counter()).update(counted)
            if oldest_stale:
                result.stale_push_ms[target] = min(result.stale_push_ms.get(target, int(oldest_stale)), int(oldest_stale))
            if count >= self.settings.window_max_items or size >= self.settings.window_max_bytes:
                result.full.add(target)
            elif opened:
                due_at = self.settings.window_due(target.id, now, float(since_claim) if since_claim else None)
                if due_at < now + self.settings.window_for(target.id):
                    quiet[target] = due_at
        # xx: a sweep may have claimed the window since the first round trip; its deadline must not come back.
        pipe = self.client.pipeline(transaction=False)
        for target in result.full:
            pipe.zadd(target.deadlines, {target.ref: now}, xx=True, lt=True)
        # A quiet target's first events have nothing to coalesce with yet, and a batch now still
        # leaves a whole window since its last one: waiting the window out would only delay them,
        # and would make every source's first window of a start fall due in the same instant.
        for target, due_at in quiet.items():
            pipe.zadd(target.deadlines, {target.ref: due_at}, xx=True, lt=True)
        return result, pipe

    @staticmethod
    def _count_runs(pipe: Pipeline, by_target: dict[keys.Target, list[Event]], result: CoalesceResult,
                    now_ms: int) -> None:
        """Mark each run-tagged event as arrived, after recording what its run's cut-off must precede.

        That is the push that made any of them stale, and when the first of them arrived (a run
        whose begin event comes late must not delete what it pushed before). Marking is
        idempotent (one bit per event number), so a redelivered message counts once; the cut-off
        comes first, so a run never looks complete without it.
        """
        for target, grouped in by_target.items():
            tagged = [event.rebuild for event in grouped if getattr(event, "rebuild", None) is not None]
            if not tagged:
                continue
            runs = {tag.run for tag in tagged}
            if target in result.stale_push_ms:
                pipe.zadd(target.run_cutoffs, {run: result.stale_push_ms[target] for run in runs}, lt=True)
            for run in runs:
                pipe.hsetnx(target.run_state(run), "first_arrival_ms", now_ms)
                pipe.expire(target.run_state(run), keys.RUN_TTL_SECONDS)
            for tag in tagged:
                pipe.setbit(target.run_seen(tag.run), tag.seq, 1)
            for run in runs:
                pipe.expire(target.run_seen(run), keys.RUN_TTL_SECONDS)
