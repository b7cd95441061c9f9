"""Flush: close windows whose time is up (or that are full) and claim them as batches.

Beat runs `sweep` about once a second. For each due target it claims the window atomically
(`claim.lua`: rename the window to batch B, one batch in flight per target) and hands B to a
push task. The reaper re-enqueues claimed batches whose task was lost: a batch is known lost
when nobody holds its lease some time after it was claimed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from worker import keys, metrics, pause, prerequisites, rebuild
from worker.scripts import script
from worker.settings import Settings

log = logging.getLogger(__name__)

Enqueue = Callable[[keys.Batch], None]


@dataclass
class SweepResult:
    claimed: list[keys.Batch] = field(default_factory=list)
    busy: list[keys.Target] = field(default_factory=list)
    """Due targets left for the next sweep: a batch of theirs is in flight, they are paused, or a
    rebuild run holds their window open."""
    reaped: list[keys.Batch] = field(default_factory=list)


class Flusher:
    """Claims due windows as batches and re-enqueues lost ones."""

    def __init__(self, client: redis.Redis, settings: Settings, enqueue: Enqueue) -> None:
        """
        client: the coalescing store.
        settings: window lengths.
        enqueue: sends the push task for a claimed batch.
        """
        self.client = client
        self.settings = settings
        self.enqueue = enqueue
        self._claim = script(client, "claim.lua")

    def sweep(self, now: float | None = None) -> SweepResult:
        """Claim every due window; re-enqueue lost batches."""
        now = time.time() if now is None else now
        result = SweepResult()
        for raw in self.client.zrangebyscore(keys.DEADLINES, "-inf", now):
            target = keys.Target.from_ref(raw.decode())
            if pause.active(self.client, target, now) or rebuild.holding(self.client, target, now):
                result.busy.append(target)
                continue
            batch = self.claim(target, now)
            if batch is None:
                result.busy.append(target)
            elif batch.id:
                result.claimed.append(batch)
        result.reaped = self.reap(now)
        return result

    def claim(self, target: keys.Target, now: float) -> keys.Batch | None:
        """Claim `target`'s window; None while a batch is in flight, a batch with no id when empty."""
        batch = target.batch(uuid.uuid4().hex)
        # Registered before the claim, so a crash right after it still leaves the reaper a trace.
        self.client.zadd(keys.CLAIMED, {batch.claim_ref: now})
        outcome = self._claim(
            keys=[target.window, target.versions, target.window_meta, target.inflight,
                  batch.events, batch.versions, batch.meta, target.burst, target.stats],
            args=[batch.id, repr(now), "1" if target.kind == keys.SOURCE else "0"],
        )
        if outcome[0] != 1:
            self.client.zrem(keys.CLAIMED, batch.claim_ref)
        if outcome[0] == 0:
            return None
        self._reschedule(target, now)
        if outcome[0] == -1:
            return keys.Batch(target, "")
        log.info("claimed batch %s of %s with %d item(s)", batch.id, target.ref, outcome[2])
        metrics.record_flushed(target)
        if target.kind == keys.SOURCE:
            prerequisites.record(self.client, batch, self.settings.providers_of(target.id))
        self.enqueue(batch)
        return batch

    def _reschedule(self, target: keys.Target, now: float) -> None:
        """Drop the old deadline; events that arrived since the claim get a deadline of their own."""
        self.client.zrem(keys.DEADLINES, target.ref)
        if self.client.exists(target.window):
            self.client.zadd(keys.DEADLINES, {target.ref: now + self.settings.window_for(target.id)}, nx=True)

    def reap(self, now: float) -> list[keys.Batch]:
        """Re-enqueue claimed batches that no task holds: lost ones after `reap_after_seconds`,
        ones that were waiting for identities as soon as those are in."""
        reaped = []
        lost_before = now - self.settings.reap_after_seconds
        claimed = self.client.zrange(keys.CLAIMED, 0, -1, withscores=True)
        batches = [keys.Batch.from_claim_ref(raw.decode()) for raw, _ in claimed]
        # One round trip for every claimed batch's flag: a sweep runs each second, over every source.
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.hget(batch.meta, "waiting")
        for (raw, claimed_at), batch, waiting in zip(claimed, batches, pipe.execute()):
            if waiting is None and claimed_at > lost_before:
                continue
            if not self.client.exists(batch.meta):
                self.client.zrem(keys.CLAIMED, raw)
                continue
            if self.client.exists(batch.lease) or (waiting and prerequisites.pending(self.client, batch)):
                continue
            self.client.hdel(batch.meta, "waiting")
            self.client.zadd(keys.CLAIMED, {raw: now})
            if not waiting:
                log.warning("batch %s of %s has no live task; enqueuing it again", batch.id, batch.target.ref)
            self.enqueue(batch)
            reaped.append(batch)
        return reaped
