"""Flush: close windows whose time is up (or that are full) and claim them as batches.

Beat runs `sweep` about once a second. For each due target it claims the window atomically
(`claim.lua`: rename the window to batch B, one batch in flight per target) and hands B to a
push task. The reaper re-enqueues claimed batches whose task was lost. It tells them apart by
what their task recorded (`attempt.lua`):

- a batch whose task started (took the lease) and holds no lease any more, without having
  parked it, was lost: it is enqueued again `reap_after_seconds` after its last enqueue;
- a batch whose task never started may just wait in a busy task queue: enqueuing it again
  would only grow that queue, so it is enqueued again after `reap_after_seconds`, then after
  twice that since, and so on up to `reap_max_seconds` (in case its task message was lost);
- a batch parked by its task (the target was paused) is enqueued again once the pause is over,
  and one waiting for identities once those are in.

Parked batches do not wait for the reaper: the push records each with the end of its pause
(`pause.park`) and the sweep enqueues it again the moment that passes (`resume`). The reaper's rule
for parked batches only catches one parked without that record (a task that died in between).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from worker import hooks
from worker.push import pause, prerequisites
from worker.settings import Settings
from worker.store import keys
from worker.store.durability import Durability
from worker.store.scripts import script
from worker.windows import holds

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

Enqueue = Callable[[keys.Batch], None]
MAX_DOUBLINGS = 32
"""Doublings of the re-enqueue wait computed at most (the cap is reached long before; no float overflow)."""


@dataclass
class SweepResult:
    claimed: list[keys.Batch] = field(default_factory=list)
    busy: list[keys.Target] = field(default_factory=list)
    """Due targets left for the next sweep: a batch of theirs is in flight, they are paused, or a
    rebuild run holds their window open."""
    reaped: list[keys.Batch] = field(default_factory=list)


class Flusher:
    """Claims due windows as batches and re-enqueues lost ones."""

    def __init__(self, client: redis.Redis, settings: Settings, enqueue: Enqueue,
                 durability: Durability | None = None) -> None:
        """
        client: the coalescing store.
        settings: window lengths.
        enqueue: sends the push task for a claimed batch.
        durability: confirms a claim by the store's replicas before its task is sent (default: none);
            `client` must be its `client`.
        """
        self.client = client
        self.durability = durability or Durability(client, 0)
        self.settings = settings
        self.enqueue = enqueue
        self._claim = script(client, HERE / "claim.lua")
        self._requeue = script(client, HERE / "requeue.lua")

    def sweep(self, now: float | None = None) -> SweepResult:
        """Claim every due window; re-enqueue lost batches."""
        now = time.time() if now is None else now
        result = SweepResult()
        for raw in self.client.zrangebyscore(keys.DEADLINES, "-inf", now):
            target = keys.Target.from_ref(raw.decode())
            if pause.active(self.client, target, now) or holds.holding(self.client, target, now):
                result.busy.append(target)
                continue
            batch = self.claim(target, now)
            if batch is None:
                result.busy.append(target)
            elif batch.id:
                result.claimed.append(batch)
        result.reaped = self.resume(now) + self.reap(now)
        return result

    def claim(self, target: keys.Target, now: float) -> keys.Batch | None:
        """Claim `target`'s window; None while a batch is in flight, a batch with no id when empty."""
        batch = target.batch(uuid.uuid4().hex)
        since = self.durability.mark()
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
        hooks.emit("after_flush", target)
        if target.kind == keys.SOURCE:
            prerequisites.record(self.client, batch, self.settings.providers_of(target.id))
        # Unconfirmed, the claim waits for the reaper, which finds it registered (if it outlived a failover).
        self.durability.confirm(since)
        self.enqueue(batch)
        return batch

    def _reschedule(self, target: keys.Target, now: float) -> None:
        """Drop the old deadline; events that arrived since the claim get a deadline of their own."""
        self.client.zrem(keys.DEADLINES, target.ref)
        if self.client.exists(target.window):
            self.client.zadd(keys.DEADLINES, {target.ref: now + self.settings.window_for(target.id)}, nx=True)

    def resume(self, now: float) -> list[keys.Batch]:
        """Enqueue again the parked batches whose target's pause is over (a batch held by a live task,
        or finished, is left to it)."""
        resumed = []
        for batch in pause.parked_due(self.client, now):
            if self._requeue(keys=[batch.meta, batch.lease]):
                self.client.zadd(keys.CLAIMED, {batch.claim_ref: now})
                log.info("the pause of %s is over; enqueuing its batch %s again", batch.target.ref, batch.id)
                self.enqueue(batch)
                resumed.append(batch)
        return resumed

    def reap(self, now: float) -> list[keys.Batch]:
        """Enqueue again the claimed batches that no task holds and that are due (see the module docstring)."""
        reaped = []
        claimed = self.client.zrange(keys.CLAIMED, 0, -1, withscores=True)
        batches = [keys.Batch.from_claim_ref(raw.decode()) for raw, _ in claimed]
        # One round trip for every claimed batch's state: a sweep runs each second, over every source.
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.hmget(batch.meta, "claimed_at", "queued", "parked", "waiting")
        for (raw, enqueued_at), batch, state in zip(claimed, batches, pipe.execute()):
            claimed_at, queued, parked, waiting = state
            if claimed_at is None:
                # Finished; or registered by a claim that is still under way, so give it time.
                if enqueued_at <= now - self.settings.reap_after_seconds:
                    self.client.zrem(keys.CLAIMED, raw)
                continue
            if waiting:
                due = not prerequisites.pending(self.client, batch)
            elif parked:
                due = not pause.active(self.client, batch.target, now)
            else:
                due = now >= enqueued_at + self._requeue_delay(int(queued or 0))
            if not due or not self._requeue(keys=[batch.meta, batch.lease]):
                continue
            self.client.zadd(keys.CLAIMED, {raw: now})
            if queued:
                log.info("batch %s of %s is still not started after %d enqueue(s); enqueuing it again",
                         batch.id, batch.target.ref, int(queued))
            elif not (waiting or parked):
                log.warning("batch %s of %s has no live task; enqueuing it again", batch.id, batch.target.ref)
            self.enqueue(batch)
            reaped.append(batch)
        return reaped

    def _requeue_delay(self, queued: int) -> float:
        """Seconds after its last enqueue before a batch is enqueued again; `queued` counts the enqueues
        of it that no task started (0: its task started, so it is lost once its lease is gone)."""
        doublings = max(queued - 1, 0)
        return min(self.settings.reap_after_seconds * 2 ** min(doublings, MAX_DOUBLINGS), self.settings.reap_max_seconds)
