"""Status brackets: REFRESH (or INCREMENTAL) before the first batch of a burst, IDLE after it.

The claim of a source's first batch after IDLE opens a burst and bumps its epoch
(`claim.lua`). `close_quiet` finds bursts with nothing buffered or in flight for the quiet
period and marks them closing. It looks only at bursts that may be quiet: `keys.BURSTS` scores
each open burst with its last activity seen (or when to look at it again), so a sweep's cost
follows the bursts whose quiet period is over, not those open; `close` sends IDLE only if no claim reopened the burst since
(the epoch fences it). Both status calls are made under one per-source lock, which also
guards the `service` field: the status the service last received. The push task sends the
opening status only when the service last heard IDLE (or nothing), so a burst that reopened
before its IDLE went out carries on without a second REFRESH, and an IDLE that did go out is
always followed by a fresh REFRESH before the next batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import redis

from worker.pushapi.client import PushApiClient
from worker.pushapi.errors import PushApiError
from worker.settings import Settings
from worker.store import keys
from worker.store.scripts import run_many, script

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

SERVICE_ACTIVE = b"active"
SERVICE_IDLE = b"idle"
LOCK_MARGIN_SECONDS = 60.0
"""Extra life of the status lock beyond one status call's retry budget."""
RECHECK_SECONDS = 5.0
"""A burst kept open by a buffered window, a batch in flight, a rebuild or its closing is looked at
again this long after (its next activity is seen then)."""
CLOSE_MAX_BURSTS = 2000
"""Bursts looked at per sweep at most, those quiet longest first; the rest at the next sweep."""
MIGRATE_BURSTS = 1000
"""Members moved from the unsharded burst set into the shards per sweep."""


class StatusBrackets:
    """Sends each source's status calls at the edges of its bursts of work."""

    def __init__(self, client: redis.Redis, api: PushApiClient, settings: Settings) -> None:
        """
        client: the coalescing store.
        api: the Push API client.
        settings: the opening status type and the quiet period before IDLE.
        """
        self.client = client
        self.api = api
        self.settings = settings
        self._idle = script(client, HERE / "idle.lua")

    @property
    def _lock_seconds(self) -> float:
        """How long one status call may hold the lock: its retry budget and a margin."""
        return self.api.retry_budget_seconds + LOCK_MARGIN_SECONDS

    def _lock(self, target: keys.Target) -> redis.lock.Lock:
        return self.client.lock(target.burst_lock, timeout=self._lock_seconds)

    def open(self, target: keys.Target) -> None:
        """Send the opening status unless the service's last status for `target` was it."""
        with self._lock(target):
            if self.client.hget(target.burst, "service") == SERVICE_ACTIVE:
                return
            self.api.set_source_status(target.id, self.settings.burst_status.value)
            self.client.hset(target.burst, "service", SERVICE_ACTIVE)
            self._track(target)
        log.info("%s: burst opened with %s", target.ref, self.settings.burst_status.value,
                 extra={target.kind: target.id, "status": self.settings.burst_status.value})

    def begin_rebuild(self, target: keys.Target, run_id: str) -> None:
        """Send REBUILD and hold the burst open (no IDLE) until `end_rebuild`."""
        with self._lock(target):
            self.api.set_source_status(target.id, "REBUILD")
            self.client.hset(target.burst, mapping={"state": "open", "service": SERVICE_ACTIVE, "rebuild": run_id,
                                                    "last_activity": repr(time.time())})
            self.client.hsetnx(target.burst, "epoch", 1)
            self._track(target)
        log.info("%s: rebuild %s opened with REBUILD", target.ref, run_id,
                 extra={target.kind: target.id, "status": "REBUILD", "run": run_id})

    def end_rebuild(self, target: keys.Target) -> None:
        """Let the burst close as any other: IDLE once the source has been quiet."""
        self.client.hdel(target.burst, "rebuild")

    def _track(self, target: keys.Target) -> None:
        """List `target`'s burst as open, its activity now."""
        self.client.zadd(target.bursts, {target.ref: time.time()}, gt=True)

    def close_quiet(self, enqueue: Callable[[keys.Target, int], None], now: float | None = None) -> int:
        """Mark quiet bursts closing and enqueue their IDLE; returns how many."""
        now = time.time() if now is None else now
        quiet_since = now - self.settings.idle_after_seconds
        self._migrate(quiet_since)
        pipe = self.client.pipeline(transaction=False)
        for shard in keys.BURSTS:
            pipe.zrangebyscore(shard, "-inf", quiet_since, start=0, num=CLOSE_MAX_BURSTS)
        targets = [keys.Target.from_ref(raw.decode()) for found in pipe.execute() for raw in found][:CLOSE_MAX_BURSTS]
        if not targets:
            return 0
        epochs = run_many(self.client, self._idle, [
            (self._idle_keys(target), [repr(now), self.settings.idle_after_seconds, "check", 0, self._lock_seconds])
            for target in targets])
        pipe = self.client.pipeline(transaction=False)
        for target in targets:
            pipe.hget(target.burst, "last_activity")
        activity = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        closing = 0
        for target, epoch, last in zip(targets, epochs, activity):
            if epoch == -1:
                pipe.zrem(target.bursts, target.ref)
                continue
            # Not quiet yet (or closing): looked at again once it may be.
            pipe.zadd(target.bursts, {target.ref: max(float(last or 0), quiet_since + RECHECK_SECONDS)}, xx=True)
            if epoch > 0:
                enqueue(target, epoch)
                closing += 1
        pipe.execute()
        return closing

    def _migrate(self, quiet_since: float) -> None:
        """Move bursts from the unsharded set that a version before the sharding wrote into their shards,
        to be looked at at once."""
        found = self.client.srandmember(keys.UNSHARDED_BURSTS, MIGRATE_BURSTS)
        if not found:
            return
        pipe = self.client.pipeline(transaction=False)
        for raw in found:
            pipe.zadd(keys.Target.from_ref(raw.decode()).bursts, {raw: quiet_since}, nx=True)
        pipe.execute()
        # Removed only once the shards hold them: a crash in between leaves a copy, never nothing.
        self.client.srem(keys.UNSHARDED_BURSTS, *found)

    def close(self, target: keys.Target, epoch: int) -> bool:
        """Send IDLE for burst `epoch` if nothing reopened it; returns whether IDLE was sent."""
        lock = self._lock(target)
        if not lock.acquire(blocking=False):
            return False  # a status call for this source is under way; a later sweep hands the burst out again
        try:
            if not self._idle(keys=self._idle_keys(target), args=[repr(time.time()), 0, "verify", epoch]):
                return False
            try:
                self.api.set_source_status(target.id, "IDLE")
            except PushApiError as exc:
                if exc.retryable:
                    raise
                log.error("%s: IDLE refused for good, closing the burst anyway: %s", target.ref, exc,
                          extra={target.kind: target.id, **exc.log_fields()})
            self.client.hset(target.burst, "service", SERVICE_IDLE)
            self._idle(keys=self._idle_keys(target), args=[repr(time.time()), 0, "close", epoch])
        finally:
            lock.release()
        log.info("%s: burst %d closed with IDLE", target.ref, epoch,
                 extra={target.kind: target.id, "status": "IDLE", "epoch": epoch})
        return True

    @staticmethod
    def _idle_keys(target: keys.Target) -> list[str]:
        return [target.burst, target.window, target.inflight]
