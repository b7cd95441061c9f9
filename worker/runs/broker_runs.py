"""Full runs started through the broker: `rebuild.begin`, tagged events, `rebuild.end`.

A system without shell access rebuilds a source (or syncs a provider's identities) by publishing
`rebuild.begin`, then its export as events tagged `{"run": id, "seq": n}`, then `rebuild.end`
with the number of tagged events. Several workers may ingest these in any order, so nothing here
relies on order:
- ingest records what begin and end say in the run's state hash (Redis only, no HTTP) and sends
  a task for each;
- the coalescer sets bit `seq` of the run's bitmap once the tagged event is in its window, after
  recording any push that made it stale (see `Coalescer._count_runs`); a redelivered event sets
  the same bit, so the count is exact;
- the begin task starts the run as `worker/runs/rebuild.py` does for `pushsync rebuild` (REBUILD
  status, the cut-off from the begin event's time);
- once the end event is in, the sweep sends a task every `PUSHSYNC_RUN_POLL_SECONDS` (never a
  countdown, which a Redis broker would hold back for its visibility timeout if the worker
  died) that concludes the run as soon as every tagged event arrived and was pushed: it deletes
  (or disables) what the run did not touch, under the same guards as the command line. A run
  that does not get there within `PUSHSYNC_RUN_TIMEOUT_SECONDS` of its end event deletes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from redis.client import Pipeline

from producers.events import InvalidEvent, RebuildBegin, RebuildEnd
from worker.runs.rebuild import RebuildError, Rebuilds, Run, RunOutcome
from worker.store import keys

log = logging.getLogger(__name__)

REFUSED = "refused"
"""State field holding why the begin task could not start the run."""


def target_of_run(event: RebuildBegin | RebuildEnd) -> keys.Target:
    """The source or provider a run event names."""
    if event.source is not None:
        return keys.Target(keys.SOURCE, event.source)
    return keys.Target(keys.PROVIDER, event.target)


def record(pipe: Pipeline, event: RebuildBegin | RebuildEnd) -> None:
    """Queue on `pipe` what `event` says about its run (its target's keys only); writing it twice changes
    nothing. An ended run is then `mark_ending`."""
    target = target_of_run(event)
    state = target.run_state(event.run)
    if isinstance(event, RebuildBegin):
        pipe.hset(state, mapping={
            "start_ms": min(int(event.occurred_at.timestamp() * 1000), int(time.time() * 1000)),
            "queue_delay": event.queue_delay, "max_delete_share": repr(event.max_delete_share),
            "allow_empty": int(event.allow_empty),
        })
    else:
        pipe.hset(state, mapping={"expected": event.events, "complete": int(event.complete)})
        pipe.hsetnx(state, "ended_at", repr(time.time()))
    pipe.expire(state, keys.RUN_TTL_SECONDS)


def mark_ending(pipe: Pipeline, event: RebuildBegin | RebuildEnd) -> None:
    """Queue on `pipe` the note that `event`'s run ended, for the sweep to look at it; once its state is
    written (`record`), since the sweep reads it from there."""
    if isinstance(event, RebuildEnd):
        pipe.sadd(keys.RUNS_ENDING, target_of_run(event).compound_ref(event.run))


def due(client: redis.Redis, poll_seconds: float) -> list[tuple[keys.Target, str]]:
    """The ended runs to look at now: each at most once per `poll_seconds`, until it is concluded."""
    ending = [keys.Target.from_compound_ref(member.decode()) for member in client.smembers(keys.RUNS_ENDING)]
    # One round trip for every ended run: the sweep asks twice a second.
    pipe = client.pipeline(transaction=False)
    for target, run_id in ending:
        pipe.set(target.run_looked_at(run_id), 1, nx=True, px=int(poll_seconds * 1000))
    return [run for run, looked_at in zip(ending, pipe.execute()) if looked_at]


def record_invalid(pipe: Pipeline, invalid: InvalidEvent) -> None:
    """Note on its run's state that a run-tagged event was quarantined: that run must not delete."""
    raw = invalid.raw if isinstance(invalid.raw, dict) else {}
    tag = raw.get("rebuild")
    if not isinstance(tag, dict) or not isinstance(tag.get("run"), str) or invalid.target is None:
        return
    kind = keys.SOURCE if "source" in raw else keys.PROVIDER
    state = keys.Target(kind, invalid.target).run_state(tag["run"])
    pipe.hincrby(state, "invalid", 1)
    pipe.expire(state, keys.RUN_TTL_SECONDS)


@dataclass(frozen=True)
class RunState:
    """What a broker-started run's events said so far."""

    start_ms: int | None
    queue_delay: int
    max_delete_share: float
    allow_empty: bool
    expected: int | None
    complete: bool
    ended_at: float | None
    invalid: int
    refused: str
    first_arrival_ms: int | None
    """When the first of the run's tagged events was coalesced (epoch ms)."""

    @classmethod
    def read(cls, client: redis.Redis, target: keys.Target, run_id: str) -> RunState:
        raw = {k.decode(): v.decode() for k, v in client.hgetall(target.run_state(run_id)).items()}
        return cls(
            start_ms=int(raw["start_ms"]) if "start_ms" in raw else None,
            queue_delay=int(raw.get("queue_delay", 0)),
            max_delete_share=float(raw.get("max_delete_share", 0)),
            allow_empty=raw.get("allow_empty") == "1",
            expected=int(raw["expected"]) if "expected" in raw else None,
            complete=raw.get("complete") == "1",
            ended_at=float(raw["ended_at"]) if "ended_at" in raw else None,
            invalid=int(raw.get("invalid", 0)),
            refused=raw.get(REFUSED, ""),
            first_arrival_ms=int(raw["first_arrival_ms"]) if "first_arrival_ms" in raw else None,
        )


class BrokerRuns:
    """Drives broker-started runs with `Rebuilds`; each call returns at once (tasks poll)."""

    def __init__(self, runs: Rebuilds, timeout: float) -> None:
        """
        runs: the full runs of this process (store, Push API client, settings).
        timeout: seconds after its end event within which a run must be pushed, or it deletes nothing.
        """
        self.runs = runs
        self.client = runs.client
        self.timeout = timeout

    def begin(self, target: keys.Target, run_id: str) -> bool:
        """Start the run (REBUILD for a source); False, with the reason kept, when another run holds the target."""
        if (self.client.hget(target.rebuild, "id") or b"").decode() == run_id:
            return True  # a redelivered begin task
        state = RunState.read(self.client, target, run_id)
        try:
            self.runs.start(target, run_id=run_id, start_ms=state.start_ms)
        except RebuildError as exc:
            self.client.hset(target.run_state(run_id), REFUSED, str(exc))
            log.error("full run %s of %s not started: %s", run_id, target.ref, exc)
            return False
        return True

    def finish(self, target: keys.Target, run_id: str) -> RunOutcome | None:
        """Conclude the run if it can be concluded now; None means "not yet, ask again"."""
        state = RunState.read(self.client, target, run_id)
        if state.expected is None:
            self.client.srem(keys.RUNS_ENDING, target.compound_ref(run_id))
            log.warning("full run %s of %s: no rebuild.end on record (concluded already?); nothing to do",
                        run_id, target.ref)
            return RunOutcome(False, "no rebuild.end on record", 0, 0)
        if state.refused:
            self._forget(target, run_id)
            log.error("full run %s of %s was never started (%s); nothing deleted", run_id, target.ref, state.refused)
            return RunOutcome(False, state.refused, 0, 0)
        overdue = time.time() - (state.ended_at or time.time()) > self.timeout
        current = (self.client.hget(target.rebuild, "id") or b"").decode()
        if current != run_id:
            if not overdue:
                return None  # the begin event or its task has not come yet
            self._forget(target, run_id)
            reason = f"its rebuild.begin never started it within {self.timeout:.0f}s; nothing deleted"
            log.error("full run %s of %s: %s", run_id, target.ref, reason)
            return RunOutcome(False, reason, 0, 0)
        run = self.runs.resume(target, run_id)
        arrived = self.client.bitcount(target.run_seen(run_id))
        waiting = self._waiting(state, arrived)
        if waiting is None and not self._pushed(run):
            waiting = "the workers are still pushing its events"
        if waiting and not overdue:
            return None
        run.fed = arrived
        cutoff = self.client.zscore(target.run_cutoffs, run_id)
        self.runs.stale_before(run, int(cutoff) if cutoff is not None else None)
        if state.first_arrival_ms is not None and state.first_arrival_ms < run.ordering_id:
            run.cutoff_ms = state.first_arrival_ms
        refusal = self._refusal(state, arrived) or (f"{waiting} after {self.timeout:.0f}s; nothing deleted" if waiting else "")
        outcome = self.runs.conclude(run, queue_delay=state.queue_delay, max_delete_share=state.max_delete_share,
                                     refusal=refusal)
        self._forget(target, run_id)
        return outcome

    @staticmethod
    def _waiting(state: RunState, arrived: int) -> str | None:
        """What the run still waits for before it can be pushed, if anything."""
        if state.complete and state.expected is not None and arrived < state.expected and not state.invalid:
            return f"only {arrived} of its {state.expected} event(s) arrived"
        return None

    def _pushed(self, run: Run) -> bool:
        if run.seq is None:  # the first look once everything arrived; later looks only compare
            self.runs.begin_finishing(run)
        return self.runs.pushed(run)

    @staticmethod
    def _refusal(state: RunState, arrived: int) -> str:
        if not state.complete:
            return "its producer abandoned it (rebuild.end with complete false); nothing deleted"
        if state.invalid:
            return f"{state.invalid} of its event(s) were invalid and quarantined; nothing deleted"
        if arrived == 0 and not state.allow_empty:
            return "it carried no event: it would remove everything (set allowEmpty on rebuild.begin); nothing deleted"
        return ""

    def _forget(self, target: keys.Target, run_id: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        # A run's seen bitmap has a bit per event it carried: freed in the background, not while Redis waits.
        # One key per UNLINK: a Cluster pipeline sends no multi-key one (these share a slot all the same).
        for key in (target.run_state(run_id), target.run_seen(run_id), target.run_looked_at(run_id)):
            pipe.unlink(key)
        pipe.zrem(target.run_cutoffs, run_id)
        pipe.srem(keys.RUNS_ENDING, target.compound_ref(run_id))
        pipe.execute()
