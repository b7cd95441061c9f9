"""Flush: close windows whose time is up (or that are full) and claim them as batches.

Beat runs `sweep` about twice a second. It takes the due targets (at most `SWEEP_MAX_CLAIMS`,
earliest deadlines first: the rest are due at the next sweep), claims their windows atomically
(`claim.lua`: rename the window to batch B, one batch in flight per target) and hands each B to a
push task. Its work is a few pipelined round trips for all of them (each call within one
target's slot, so a Redis Cluster splits them by node), and one log line per sweep. Indexes are
sharded (see `worker.store.keys`); members that a version before the sharding left in the
unsharded keys are moved into their shards, a bounded number per sweep.

The reaper re-enqueues claimed batches whose task was lost. It looks only at the batches that
may be due: those enqueued `reap_after_seconds` ago or earlier, and those parked by their task
(scored `keys.PARKED_SCORE`). It tells them apart by what their task recorded (`attempt.lua`):

- a batch whose task started (took the lease) and holds no lease any more, without having
  parked it, was lost: it is enqueued again `reap_after_seconds` after its last enqueue;
- a batch whose task never started may just wait in a busy task queue: enqueuing it again
  would only grow that queue, so it is enqueued again after `reap_after_seconds`, then after
  twice that since, and so on up to `reap_max_seconds` (in case its task message was lost);
- a batch parked by its task (the target was paused) is enqueued again once the pause is over
  (looked at once, then not again before the pause's end: a quota may park thousands), and one
  waiting for identities once those are in.

Parked batches do not wait for the reaper: the push records each with the end of its pause
(`pause.park`) and the sweep enqueues it again the moment that passes (`resume`). The reaper's rule
for parked batches only catches one parked without that record (a task that died in between).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from worker import hooks
from worker.push import pause, prerequisites
from worker.settings import Settings
from worker.store import keys
from worker.store.durability import Durability
from worker.store.scripts import run_many, script
from worker.windows import holds

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[keys.Batch]], None]
"""Sends the push tasks of claimed batches (all those of one step of a sweep at once)."""
MAX_DOUBLINGS = 32
"""Doublings of the re-enqueue wait computed at most (the cap is reached long before; no float overflow)."""
SWEEP_MAX_CLAIMS = 2000
"""Due windows one sweep claims at most: a sweep stays well under a second, the rest wait for the next."""
REAP_MAX_BATCHES = 2000
"""Claimed batches one reaper pass looks at at most, earliest enqueued first."""
MIGRATE_MEMBERS = 1000
"""Members moved from each unsharded index into its shards per sweep."""
QUEUE_FLOOR = 16
"""Batches the queue may hold per pool process whatever the rate measured (one full push task each)."""
RATE_WEIGHT = 0.5
"""Weight of the latest sweep's finishing rate in the moving average: a load that doubles is followed
within a few sweeps."""
RATE_MIN_GAP_SECONDS = 0.2
"""Sweeps closer than this (sweeps queued behind a slow one) measure no rate: a few batches over a few
milliseconds would read as hundreds a second."""
RATE_MAX_GAP_SECONDS = 10.0
"""Sweeps further apart than this (none ran meanwhile) measure no rate: the queue changed without them."""
IN_FLIGHT_RECHECK_SECONDS = 5.0
"""A due target whose batch is still in flight is due again this much later, or as soon as that batch
is released (its push brings the deadline forward): thousands of targets waiting for their push
are not looked at by every sweep."""


@dataclass(frozen=True)
class Room:
    """What the queue of claimed batches has room for at one sweep."""

    batches: int
    """Batches the sweep may claim."""
    queued: int
    """Batches claimed and not parked when it began."""
    rate: float
    """Batches a second the pools finished lately (a moving average)."""


@dataclass
class SweepResult:
    claimed: list[keys.Batch] = field(default_factory=list)
    busy: list[keys.Target] = field(default_factory=list)
    """Due targets left for the next sweep: a batch of theirs is in flight, they are paused, or a
    rebuild run holds their window open."""
    reaped: list[keys.Batch] = field(default_factory=list)
    left_open: list[keys.Target] = field(default_factory=list)
    """Due targets not claimed because the queue held as many batches as the pools are allowed
    (`Flusher.room`): their windows keep filling until a later sweep."""


class Flusher:
    """Claims due windows as batches and re-enqueues lost ones."""

    def __init__(self, client: redis.Redis, settings: Settings, enqueue: Enqueue,
                 durability: Durability | None = None) -> None:
        """
        client: the coalescing store.
        settings: window lengths.
        enqueue: sends the push tasks of claimed batches.
        durability: confirms a claim by the store's replicas before its task is sent (default: none);
            `client` must be its `client`.
        """
        self.client = client
        self.durability = durability or Durability(client, 0)
        self.settings = settings
        self.enqueue = enqueue
        self._claim = script(client, HERE / "claim.lua")
        self._requeue = script(client, HERE / "requeue.lua")

    def sweep(self, now: float | None = None, pool_processes: int = 0) -> SweepResult:
        """Claim the due windows (at most SWEEP_MAX_CLAIMS, and no more than the queue has room for); re-enqueue
        lost batches. pool_processes: the workers' pool processes (0: unknown, the queue unbounded)."""
        started = time.perf_counter()
        now = time.time() if now is None else now
        self.migrate()
        result = SweepResult()
        due = self.due(now)
        held = pause.paused(self.client, due, now).keys() | holds.holding_any(self.client, due, now)
        in_flight = self._in_flight([target for target in due if target not in held], now)
        result.busy = [target for target in due if target in held or target in in_flight]
        # Paused and held targets stay due, earliest first: the bound applies to those that can be claimed.
        claimable = [target for target in due if target not in result.busy]
        room = self.room(pool_processes, now)
        taken = claimable if room is None else claimable[:room.batches]
        result.left_open = claimable[len(taken):]
        result.claimed, raced, items = self.claim(taken, now)
        result.busy += raced
        result.reaped = self.resume(now) + self.reap(now)
        if room is not None:
            self._note_queue(room, now)
        if result.claimed or result.reaped or result.left_open:
            queue = "" if room is None else f" (queued before: {room.queued}, finished lately: {room.rate:.0f}/s)"
            log.info("sweep: claimed batches: %d (%d items); due but busy: %d; left open, the queue full: %d%s; "
                     "enqueued again: %d; %.0f ms", len(result.claimed), items, len(result.busy),
                     len(result.left_open), queue, len(result.reaped), (time.perf_counter() - started) * 1000)
        return result

    def due(self, now: float) -> list[keys.Target]:
        """The targets whose window is due by `now`, earliest first, at most SWEEP_MAX_CLAIMS."""
        found = _ranges(self.client, keys.DEADLINES, now, SWEEP_MAX_CLAIMS)
        return [keys.Target.from_ref(raw.decode()) for raw, _ in found[:SWEEP_MAX_CLAIMS]]

    def room(self, pool_processes: int, now: float) -> Room | None:
        """How many more batches this sweep may claim, given the workers' `pool_processes` (0: unknown); None
        when unbounded (`PUSHSYNC_QUEUE_SECONDS` 0).

        The queue (batches claimed and not parked) is bounded by what the pools finish in
        `queue_seconds`, at the rate measured from one sweep to the next, and never below QUEUE_FLOOR
        per pool process. A due window left unclaimed keeps its place (earliest deadline first) and keeps
        filling: under a load the pools cannot keep up with, batches grow instead of the queue, and each
        costs the pools about the same whatever its size."""
        if pool_processes <= 0 or self.settings.queue_seconds <= 0:
            return None
        (at, queued_before, rate), queued, clock = self._queue(now)
        rate = float(rate or 0)
        # Timed by Redis's clock: the sweeps run on any worker, whose clocks may differ.
        elapsed = clock - float(at or 0)
        if RATE_MIN_GAP_SECONDS <= elapsed <= RATE_MAX_GAP_SECONDS:
            finished = max(int(queued_before or 0) - queued, 0) / elapsed
            rate += RATE_WEIGHT * (finished - rate)
        bound = max(pool_processes * QUEUE_FLOOR, math.ceil(rate * self.settings.queue_seconds))
        return Room(max(bound - queued, 0), queued, rate)

    def _queue(self, now: float) -> tuple[list[bytes | None], int, float]:
        """What the last sweep recorded of the queue (at, queued, rate), the batches claimed and waiting for a
        pool (parked ones, scored PARKED_SCORE or, by the reaper, at the end of their pause, wait for a condition
        instead), and Redis's clock."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(keys.QUEUE, "at", "queued", "rate")
        for shard in keys.CLAIMED:
            pipe.zcount(shard, f"({keys.PARKED_SCORE}", now)
        record, *counts = pipe.execute()
        # Not in the pipeline: a Cluster pipeline takes only commands with keys.
        seconds, microseconds = self.client.time()
        return record, sum(counts), seconds + microseconds / 1_000_000

    def _note_queue(self, room: Room, now: float) -> None:
        """Record for the next sweep what this one left in the queue (counted again: its claims, resumed and
        reaped batches changed it)."""
        _, queued, clock = self._queue(now)
        self.client.hset(keys.QUEUE, mapping={"at": repr(clock), "queued": queued, "rate": repr(room.rate)})

    def _in_flight(self, targets: Sequence[keys.Target], now: float) -> set[keys.Target]:
        """Those of `targets` with a batch in flight, their deadline put off by IN_FLIGHT_RECHECK_SECONDS."""
        pipe = self.client.pipeline(transaction=False)
        for target in targets:
            pipe.scard(target.inflight)
        found = {target for target, count in zip(targets, pipe.execute()) if count}
        pipe = self.client.pipeline(transaction=False)
        for target in found:
            pipe.zadd(target.deadlines, {target.ref: now + IN_FLIGHT_RECHECK_SECONDS}, xx=True, gt=True)
        pipe.execute()
        return found

    def claim(self, targets: Sequence[keys.Target], now: float) -> tuple[list[keys.Batch], list[keys.Target], int]:
        """Claim the windows of `targets` and enqueue their batches.

        Returns the batches claimed, the targets that have a batch in flight, and the items claimed."""
        batches = [target.batch(uuid.uuid4().hex) for target in targets]
        if not batches:
            return [], [], 0
        since = self.durability.mark()
        # Registered before the claims, so a crash right after one still leaves the reaper a trace.
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.zadd(batch.target.claimed, {batch.claim_ref: now})
        pipe.execute()
        outcomes = run_many(self.client, self._claim, [
            ([target.window, target.versions, target.window_meta, target.inflight,
              batch.events, batch.versions, batch.meta, target.burst, target.stats],
             [batch.id, repr(now), "1" if target.kind == keys.SOURCE else "0", "1" if self._providers(target) else "0"])
            for target, batch in zip(targets, batches)])
        pipe = self.client.pipeline(transaction=False)
        claimed, in_flight, ended, empty, items = [], [], [], [], 0
        for batch, outcome in zip(batches, outcomes):
            if outcome[0] == 0:
                pipe.zrem(batch.target.claimed, batch.claim_ref)
                in_flight.append(batch.target)
                continue
            ended.append(batch.target)
            pipe.zrem(batch.target.deadlines, batch.target.ref)
            if outcome[0] == 1:
                # Again: a reaper that ran while this claimer stalled (longer than `reap_after_seconds`) between the
                # registration and the claim took it for a finished batch's and dropped it; without it, a task lost
                # now would leave the batch in flight for good, and its target blocked behind it.
                pipe.zadd(batch.target.claimed, {batch.claim_ref: now})
                claimed.append(batch)
                items += outcome[2]
            else:
                empty.append(batch)
        pipe.execute()
        self._reschedule(ended, now, settled=empty)
        for batch in claimed:
            prerequisites.record(self.client, batch, self._providers(batch.target))
        # Unconfirmed, the claims wait for the reaper, which finds them registered (if they outlived a failover);
        # confirmed, so are the identities each push must follow.
        self.durability.confirm(since)
        for batch in claimed:
            hooks.emit("after_flush", batch.target)
        if claimed:
            self.enqueue(claimed)
        return claimed, in_flight, items

    def _providers(self, target: keys.Target) -> list[str]:
        """The providers whose identities `target`'s batches must follow."""
        return self.settings.providers_of(target.id) if target.kind == keys.SOURCE else []

    def _reschedule(self, targets: Sequence[keys.Target], now: float, settled: Sequence[keys.Batch] = ()) -> None:
        """Events that arrived since their old deadline was dropped (after the claim) get a deadline of their own.

        settled: registrations (in `claimed`) of batches that claimed nothing, dropped only once the deadlines are
            back: a claimer that dies before leaves them to the reaper, which reschedules their targets again
            (a window found empty has no batch whose release would give the window that refilled it a deadline)."""
        pipe = self.client.pipeline(transaction=False)
        for target in targets:
            pipe.exists(target.window)
        refilled = [target for target, exists in zip(targets, pipe.execute()) if exists]
        pipe = self.client.pipeline(transaction=False)
        for target in refilled:
            pipe.zadd(target.deadlines, {target.ref: now + self.settings.window_for(target.id)}, nx=True)
        pipe.execute()
        # Only once every deadline is back: a refused ZADD (a store at maxmemory) does not stop a pipeline, and on a
        # Cluster the deadlines and the registrations are on different nodes.
        if settled:
            pipe = self.client.pipeline(transaction=False)
            for batch in settled:
                pipe.zrem(batch.target.claimed, batch.claim_ref)
            pipe.execute()

    def migrate(self) -> None:
        """Move into their shards (a bounded number per call) the deadlines and claims of the unsharded keys."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zrange(keys.UNSHARDED_DEADLINES, 0, MIGRATE_MEMBERS - 1, withscores=True)
        pipe.zrange(keys.UNSHARDED_CLAIMED, 0, MIGRATE_MEMBERS - 1, withscores=True)
        deadlines, claims = pipe.execute()
        if not deadlines and not claims:
            return
        pipe = self.client.pipeline(transaction=False)
        for raw, score in deadlines:
            pipe.zadd(keys.Target.from_ref(raw.decode()).deadlines, {raw: score}, lt=True)
        for raw, score in claims:
            pipe.zadd(keys.Batch.from_claim_ref(raw.decode()).target.claimed, {raw: score}, gt=True)
        pipe.execute()
        # Removed only once the shards hold them: a crash in between leaves a copy, never nothing.
        pipe = self.client.pipeline(transaction=False)
        if deadlines:
            pipe.zrem(keys.UNSHARDED_DEADLINES, *(raw for raw, _ in deadlines))
        if claims:
            pipe.zrem(keys.UNSHARDED_CLAIMED, *(raw for raw, _ in claims))
        pipe.execute()
        log.info("moved %d deadline(s) and %d claimed batch(es) from the unsharded indexes into their shards",
                 len(deadlines), len(claims))

    def resume(self, now: float) -> list[keys.Batch]:
        """Enqueue again the parked batches whose target's pause is over, at most SWEEP_MAX_CLAIMS (a
        batch held by a live task, or finished, is left to it); an organization's pause ends for all its
        sources at once, and the rest wait for the next sweep."""
        resumed = []
        for batch in pause.parked_due(self.client, now, SWEEP_MAX_CLAIMS):
            if self._requeue(keys=[batch.meta, batch.lease]):
                self.client.zadd(batch.target.claimed, {batch.claim_ref: now})
                log.info("the pause of %s is over; enqueuing its batch %s again", batch.target.ref, batch.id)
                resumed.append(batch)
        if resumed:
            self.enqueue(resumed)
        return resumed

    def reap(self, now: float) -> list[keys.Batch]:
        """Enqueue again the claimed batches that no task holds and that are due (see the module docstring)."""
        claimed = _ranges(self.client, keys.CLAIMED, now - self.settings.reap_after_seconds, REAP_MAX_BATCHES)
        batches = [keys.Batch.from_claim_ref(raw.decode()) for raw, _ in claimed]
        pipe = self.client.pipeline(transaction=False)
        for batch in batches:
            pipe.hmget(batch.meta, "claimed_at", "queued", "parked", "waiting")
        states = pipe.execute()
        # Read at once for every parked or waiting batch: thousands may be parked by one quota, or wait for one provider.
        pauses = pause.ends(self.client, [batch.target for batch, (claimed_at, _, parked, waiting) in zip(batches, states)
                                          if claimed_at is not None and parked and not waiting], now)
        waits = prerequisites.pending_many(self.client, [batch for batch, (claimed_at, _, _, waiting)
                                                         in zip(batches, states) if claimed_at is not None and waiting])
        due, gone, later, unstarted = [], [], [], 0
        for (raw, enqueued_at), batch, state in zip(claimed, batches, states):
            claimed_at, queued, parked, waiting = state
            if claimed_at is None:
                # Finished, or its window was found empty; or registered by a claim still under way, so give it time.
                if enqueued_at <= now - self.settings.reap_after_seconds:
                    gone.append(batch)
                continue
            if waiting:
                ready = not waits[batch]
            elif parked:
                ready = batch.target not in pauses
                if not ready:
                    # Not looked at again before its pause ends (the reaper sees a score reap_after_seconds late).
                    later.append((batch, pauses[batch.target] - self.settings.reap_after_seconds))
            else:
                ready = now >= enqueued_at + self._requeue_delay(int(queued or 0))
            if ready:
                due.append((batch, bool(queued), bool(waiting or parked)))
        requeued = run_many(self.client, self._requeue, [([batch.meta, batch.lease], []) for batch, _, _ in due])
        reaped = [(batch, queued, conditional) for (batch, queued, conditional), again in zip(due, requeued) if again]
        if gone:
            # A claimer that died after finding a window empty may have dropped the deadline a refilled window relied on.
            self._reschedule([batch.target for batch in gone], now, settled=gone)
        pipe = self.client.pipeline(transaction=False)
        for batch, _, _ in reaped:
            pipe.zadd(batch.target.claimed, {batch.claim_ref: now})
        for batch, score in later:
            pipe.zadd(batch.target.claimed, {batch.claim_ref: score}, xx=True)
        pipe.execute()
        for batch, queued, conditional in reaped:
            if queued:
                unstarted += 1
            elif not conditional:
                log.warning("batch %s of %s has no live task; enqueuing it again", batch.id, batch.target.ref)
        if reaped:
            self.enqueue([batch for batch, _, _ in reaped])
        if unstarted:
            log.info("%d batch(es) still not started by a task after their wait; enqueuing them again", unstarted)
        return [batch for batch, _, _ in reaped]

    def _requeue_delay(self, queued: int) -> float:
        """Seconds after its last enqueue before a batch is enqueued again; `queued` counts the enqueues
        of it that no task started (0: its task started, so it is lost once its lease is gone)."""
        doublings = max(queued - 1, 0)
        return min(self.settings.reap_after_seconds * 2 ** min(doublings, MAX_DOUBLINGS), self.settings.reap_max_seconds)


def _ranges(client: redis.Redis, shards: Iterable[str], until: float, limit: int) -> list[tuple[bytes, float]]:
    """The members of the sorted sets `shards` scored `until` or less (at most `limit` of each), lowest first."""
    pipe = client.pipeline(transaction=False)
    for shard in shards:
        pipe.zrangebyscore(shard, "-inf", until, start=0, num=limit, withscores=True)
    return sorted((member for found in pipe.execute() for member in found), key=lambda member: member[1])
