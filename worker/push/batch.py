"""Push: send one claimed batch to the Push API, then release it, exactly once in effect.

The task is idempotent by batch id: a batch that is gone was finished; a batch whose lease is
held is being pushed by a live task. Errors follow invariant 5 (docs/architecture.md): retryable ones
are retried inside the client within the budget; 413 splits the batch into smaller files;
quota and item-limit answers, a paused organization and a wrong key pause the target (the
batch stays claimed, parked until the pause ends, and events keep buffering; once a batch met a
pause, its pushes send one item alone first, so that a refusal costs one small call and no upload:
see `pause.py`); everything else dead-letters the batch. A batch of at most
`PUSHSYNC_SINGLE_CALL_MAX_ITEMS` goes by single-item calls, one each, under the same lease.
Items that cannot be sent at all (too large, invalid) are dead-lettered alone.

Attempts count only deliveries that died without finishing: a run counts one when it starts
to push and gives it back when it comes back paused (`attempt.lua`), so pauses, however long,
never dead-letter a batch. Every Push API call of a run is fenced by the batch's lease
(`Lease.check` before each request): a task that stalled past its lease makes no further call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from pydantic_core import from_json

from producers.events.limits import MIB
from worker import hooks
from worker.deadletter.queue import DeadLetters
from worker.logs import log_context
from worker.push import pause, prerequisites
from worker.push.brackets import StatusBrackets
from worker.push.lease import Lease, LeaseLost
from worker.push.operations import to_operation
from worker.pushapi.batches import ContainerPusher, PushReport
from worker.pushapi.client import PushApiClient
from worker.pushapi.errors import (
    AuthError,
    OrganizationPausedError,
    PayloadTooLargeError,
    PushApiError,
    QuotaError,
    ThrottledError,
)
from worker.pushapi.retry import RetryHook
from worker.settings import Settings
from worker.store import keys, recent
from worker.store.durability import Durability
from worker.store.outages import STORE_ERRORS
from worker.store.ranks import RANK_LUA, is_newer, rank
from worker.store.scripts import script

HERE = Path(__file__).parent

log = logging.getLogger(__name__)

SCAN_COUNT = 500
"""Batch entries read from Redis per round trip while streaming a batch."""
MIN_SPLIT_BYTES = MIB
"""Below this, a batch that still gets 413 is dead-lettered rather than split again."""


PUSHED = "pushed"
"""The state of a push the service accepted, and the target's counter of the events it carried."""
DEAD_LETTERED = "dead_lettered"
"""The state of a push whose whole batch went to the dead-letter queue, and the counter of its events."""


@dataclass
class PushOutcome:
    """What became of one push task run."""

    state: str
    """pushed, dead_lettered, paused, waiting (for identities), held (another task has it), lost (the
    lease went during the push: another task has it now) or done."""
    pushed: int = 0
    stale: int = 0
    dead_lettered: int = 0
    file_ids: list[str] = field(default_factory=list)


class BatchPush:
    """Pushes claimed batches of sources (items) and providers (identities)."""

    def __init__(self, client: redis.Redis, api: PushApiClient, brackets: StatusBrackets,
                 dead_letters: DeadLetters, settings: Settings, directory: str | None = None,
                 durability: Durability | None = None) -> None:
        """
        client: the coalescing store.
        api: the Push API client.
        brackets: opens a source's burst before its first batch.
        dead_letters: where batches and items that cannot succeed go.
        settings: container limit, pause lengths, attempt limit, high-water mark expiry.
        directory: where batch files are written while they are built (default: the temp dir).
        durability: confirms a run's writes (lease, high-water marks, release) by the store's replicas before
            the run returns (default: none); `client` must be its `client`.
        """
        self.client = client
        self.api = api
        self.directory = directory
        self.brackets = brackets
        self.dead_letters = dead_letters
        self.settings = settings
        self.durability = durability or Durability(client, 0)
        self._advance = script(client, HERE / "advance.lua", RANK_LUA)
        self._release = script(client, HERE / "release.lua")
        self._attempt = script(client, HERE / "attempt.lua")
        if brackets.api is not api:
            raise ValueError("the status brackets must call through the push's client, so its lease fences them")

    def run(self, batch: keys.Batch) -> PushOutcome:
        """Push `batch` if it still needs pushing and nobody else is; every line logged meanwhile names it.

        Returns once the store's replicas confirmed what the run wrote (raises ReplicasUnconfirmed otherwise:
        the task message must then go back to the broker, not be acknowledged)."""
        with log_context(**{batch.target.kind: batch.target.id}, batchId=batch.id):
            since = self.durability.mark()
            outcome = self._run(batch)
            self.durability.confirm(since)
            log.info("batch %s: %d pushed, %d stale, %d dead-lettered", outcome.state, outcome.pushed, outcome.stale,
                     outcome.dead_lettered, extra={"state": outcome.state, "pushed": outcome.pushed,
                                                   "stale": outcome.stale, "deadLettered": outcome.dead_lettered,
                                                   "fileIds": outcome.file_ids})
        return outcome

    def _run(self, batch: keys.Batch) -> PushOutcome:
        # A finished batch is told by its first step (it leaves no lease behind): no round trip asks first.
        lease = Lease(self.client, batch.lease, self.settings.lease_seconds, self.durability)
        if not lease.acquire():
            return PushOutcome("held")
        # Every Push API call of the push, status calls and retries included, is fenced by the lease.
        with lease, self.api.before_each_request(lease.check), self.api.on_each_retry(self._retrying(batch.target)):
            try:
                return self._run_leased(batch, lease)
            except LeaseLost as exc:
                log.error("stopping this push without another call: %s; the task that holds the lease now "
                          "finishes the batch", exc)
                return PushOutcome("lost")

    def _run_leased(self, batch: keys.Batch, lease: Lease) -> PushOutcome:
        if self._step(batch, lease, "start") < 0:
            return PushOutcome("done")
        # One round trip for the pause and the batch's meta (its needs, whether it probes, its window's start).
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(batch.target.pause, "until")
        pipe.hgetall(batch.meta)
        until, meta = pipe.execute()
        if pause.still_paused(self.client, batch.target, until):
            return self._park(batch, lease)
        if batch.target.kind == keys.SOURCE:
            meta = prerequisites.settle(self.client, batch, self.settings.providers_of(batch.target.id), meta)
        waiting_for = prerequisites.waiting(self.client, {batch: meta})[batch]
        if waiting_for:
            prerequisites.hasten(self.client, waiting_for)
            self.client.hset(batch.meta, "waiting", 1)
            self._await_condition(batch)
            log.info("batch waits for the identities of %s", ", ".join(provider.id for provider in waiting_for),
                     extra={"waitingFor": [provider.id for provider in waiting_for]})
            return PushOutcome("waiting")
        attempts = self._step(batch, lease, "push")
        if attempts < 0:
            return PushOutcome("done")
        if attempts > self.settings.max_push_attempts:
            error = RuntimeError(f"the push task of this batch was delivered {attempts} times without finishing: "
                                 f"{attempts - 1} deliveries died while pushing it")
            return self._dead_letter(batch, lease, error, attempts)
        # Only this task's park step sets 'probe', and the claim 'opened_at': the meta read above holds both.
        probe, opened_at = meta.get(b"probe"), meta.get(b"opened_at")
        try:
            return self._push(batch, lease, probe=probe is not None,
                              opened_at=float(opened_at) if opened_at is not None else None)
        except (QuotaError, ThrottledError) as exc:
            # A 429 the client stopped retrying asked for a longer wait than its budget (the day's calls
            # are spent): a pause for that long, not a failure of the batch.
            pause.pause(self.client, batch.target, cause=pause.QUOTA, reason=str(exc),
                        seconds=pause.length(exc, self.settings.pause_seconds))
        except OrganizationPausedError as exc:
            pause.pause(self.client, batch.target, cause=pause.ORGANIZATION_PAUSED, reason=str(exc),
                        seconds=pause.length(exc, self.settings.auth_pause_seconds))
        except AuthError as exc:
            log.critical("THE API KEY IS WRONG or lacks a privilege for %s; not pushing: %s", batch.target.ref, exc,
                         extra=exc.log_fields())
            pause.pause(self.client, batch.target, cause=pause.KEY_REFUSED, reason=f"API key refused: {exc}",
                        seconds=pause.length(exc, self.settings.auth_pause_seconds))
        except PushApiError as exc:
            log.error("batch cannot be pushed: %s", exc, extra=exc.log_fields())
            return self._dead_letter(batch, lease, exc, attempts)
        return self._park(batch, lease)

    def _park(self, batch: keys.Batch, lease: Lease) -> PushOutcome:
        """Leave `batch` claimed until its target's pause ends. A pause is nobody's failure: the
        attempt is given back, however long and often the pauses."""
        # Recorded before the step: a task that dies in between leaves a record whose batch the
        # sweep finds held or lost, and the reaper's rules take it from there.
        pause.park(self.client, batch)
        self._step(batch, lease, "park")
        self._await_condition(batch)
        return PushOutcome("paused")

    def _await_condition(self, batch: keys.Batch) -> None:
        """Have the reaper look at `batch` at every pass (it waits for a pause's end or identities, not for time)."""
        self.client.zadd(batch.target.claimed, {batch.claim_ref: keys.PARKED_SCORE}, xx=True)

    def _step(self, batch: keys.Batch, lease: Lease, step: str) -> int:
        """Record `step` of this task on the batch (see attempt.lua); -1 when the batch is gone.

        Raises `LeaseLost` when the lease went meanwhile, so that the task stops as lost, not as done."""
        done = int(self._attempt(keys=[batch.meta, batch.lease], args=[lease.token, step]))
        if done < 0:
            lease.check(f"the {step} step")
        return done

    def _push(self, batch: keys.Batch, lease: Lease, probe: bool, opened_at: float | None) -> PushOutcome:
        """Send the batch and release it; `probe`: its target was paused, so one item goes alone first;
        `opened_at`: when its window opened (epoch seconds, None if unknown)."""
        target = batch.target
        started = time.monotonic()
        if target.kind == keys.SOURCE:
            self.brackets.open(target)
        max_bytes = self.settings.container_max_bytes
        while True:
            stale: list[str] = []
            try:
                report = self._send(batch, stale, max_bytes, probe)
                break
            except PayloadTooLargeError:
                if max_bytes // 2 < MIN_SPLIT_BYTES:
                    raise
                max_bytes //= 2
                log.warning("413: splitting the batch into files of %d bytes", max_bytes, extra={"maxBytes": max_bytes})
        if report.counts:
            hooks.emit("after_push", target, report.counts, report.bytes, time.monotonic() - started, opened_at)
        rejected = [operation.ref for operation, _ in report.rejected]
        for operation, error in report.rejected:
            event = self.client.hget(batch.events, operation.ref)
            self.dead_letters.send(target.ref, batch.id, [event], error, attempts=1, file_ids=report.file_ids)
        if rejected:
            self.client.hdel(batch.versions, *rejected)
            self.client.hincrby(target.stats, DEAD_LETTERED, len(rejected))
        self._advance_high_water(batch)
        pushed = sum(report.counts.values())
        self._finish(batch, lease, PUSHED, pushed)
        return PushOutcome(PUSHED, pushed=pushed, stale=len(stale), dead_lettered=len(rejected), file_ids=report.file_ids)

    def _send(self, batch: keys.Batch, stale: list[str], max_bytes: int, probe: bool) -> PushReport:
        operations = self._operations(batch, stale)
        pusher = ContainerPusher(self.api, max_bytes=max_bytes, directory=self.directory,
                                 compress_data=self.settings.compress_data,
                                 single_max=self.settings.single_call_max_items)
        if batch.target.kind == keys.SOURCE:
            return pusher.push_documents(batch.target.id, operations, probe=probe)
        return pusher.push_identities(batch.target.id, operations, probe=probe)

    def _operations(self, batch: keys.Batch, stale: list[str]) -> Iterator[Any]:
        """The batch's events as push operations, streamed, skipping those already superseded."""
        for chunk in _scan(self.client, batch.events):
            marks = self.client.mget([batch.target.high_water(key.decode()) for key, _ in chunk])
            for (key, raw), mark in zip(chunk, marks):
                event = from_json(raw)
                if mark is not None and not is_newer(rank(event["kind"], event["version"]), mark.decode()):
                    stale.append(key.decode())
                    continue
                yield to_operation(event, key.decode())

    def _advance_high_water(self, batch: keys.Batch) -> None:
        for chunk in _scan(self.client, batch.versions):
            self._advance(keys=[batch.target.high_water(key.decode()) for key, _ in chunk],
                          args=[self.settings.high_water_ttl_seconds, int(time.time() * 1000),
                                *(version for _, version in chunk)])

    def _retrying(self, target: keys.Target) -> RetryHook:
        """A retry hook that makes the error being retried `target`'s last error, so that status
        shows why a push takes long while it still does (best effort: the push goes on without it)."""
        def note(operation: str, wait: float, retry_after: float | None, error: BaseException | None) -> None:
            try:
                recent.failed(self.client, target, f"retrying {operation} in {wait:.0f}s: {error}")
            except STORE_ERRORS:
                pass

        return note

    def _dead_letter(self, batch: keys.Batch, lease: Lease, error: BaseException, attempts: int) -> PushOutcome:
        lease.check("the batch to the dead-letter queue")  # a successor owns the batch and its failures now
        first = float(self.client.hget(batch.meta, "claimed_at") or time.time())
        events = (raw for chunk in _scan(self.client, batch.events) for _, raw in chunk)
        count = self.dead_letters.send(batch.target.ref, batch.id, events, error, attempts=attempts, first_failure=first,
                                       file_ids=getattr(error, "file_ids", []))
        self._finish(batch, lease, DEAD_LETTERED, count)
        fields = error.log_fields() if isinstance(error, PushApiError) else {"error": type(error).__name__}
        log.error("dead-lettered %d event(s): %s", count, error,
                  extra={"events": count, "attempts": attempts, "fileIds": getattr(error, "file_ids", []), **fields})
        return PushOutcome(DEAD_LETTERED, dead_lettered=count)

    def _finish(self, batch: keys.Batch, lease: Lease, counter: str, count: int) -> None:
        """Release `batch`, counting `count` events in its target's `counter` (PUSHED: the service
        accepted them, which is recorded as the target's last push even if the lease went meanwhile)."""
        target = batch.target
        # The release script deletes the lease: a renewal after it would report the lease as lost.
        lease.halt()
        released = self._release(
            keys=[batch.events, batch.versions, batch.meta, batch.lease, target.inflight, target.burst, target.stats,
                  target.window_meta],
            args=[batch.id, lease.token, repr(time.time()), counter, count],
        )
        pipe = self.client.pipeline(transaction=False)
        if counter == PUSHED:
            recent.pushed(pipe, target, batch.id, count)
        if not released:
            log.error("lease lost before release; the task that holds it finishes the batch")
            pipe.execute()
            return
        lease.forget()
        _, opened_at, since_claim = released
        # The sweep puts off a due window while its target's batch is in flight: once B is released,
        # the window that filled meanwhile is due at its own time again. Not xx: a claimer that died (or met a
        # store error) between B's claim and rescheduling a window that filled meanwhile left it no deadline,
        # and B's release comes surely (the reaper's, if need be). No since_claim (a window written before first
        # windows existed): a whole window, since B was claimed just before it.
        if opened_at is not None:
            due_at = self.settings.window_due(target.id, float(opened_at), float(since_claim) if since_claim else 0.0)
            pipe.zadd(target.deadlines, {target.ref: due_at}, lt=True)
            pipe.execute()
            pipe = self.client.pipeline(transaction=False)
        # Only once the deadline is back (a refused ZADD does not stop a pipeline, and on a Cluster the two
        # indexes are on different nodes): until then the registration leads the reaper to this target again.
        pipe.zrem(target.claimed, batch.claim_ref)
        pipe.execute()


def _scan(client: redis.Redis, key: str) -> Iterator[list[tuple[bytes, bytes]]]:
    """A hash's fields in chunks of about `SCAN_COUNT`, never the whole hash at once."""
    cursor = 0
    while True:
        cursor, chunk = client.hscan(key, cursor, count=SCAN_COUNT)
        if chunk:
            yield list(chunk.items())
        if cursor == 0:
            return
