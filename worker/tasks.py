"""The Celery tasks: the periodic sweep, the push of claimed batches (several per task), and closing a quiet burst."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

from celery import Task, shared_task
from celery.exceptions import Reject

from worker.ingest.ingestor import REBUILD_BEGIN_TASK
from worker.logs import Outage
from worker.observe import liveness, metrics
from worker.push.batch import DEAD_LETTERED, PushOutcome
from worker.runs import broker_runs
from worker.runtime import flusher, runtime
from worker.store import keys
from worker.store.durability import ReplicasUnconfirmed
from worker.store.outages import is_outage

SWEEP_TASK = "pushsync.sweep"
ROUTINE_TASKS = frozenset({SWEEP_TASK})
"""Tasks too frequent to log each run of: they log what they do."""
log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_OUTAGE = Outage(log, "the store (Redis)", "sweeps wait for it, and windows stay buffered")
SWEEP_LOCK_SECONDS = 30
"""A sweep that takes longer than this (it should take milliseconds) lets the next one run."""
PUSH_TASK_MAX_BATCHES = 16
"""Batches one push task carries at most (a sweep's batches are spread over the pool processes)."""
HAND_ON_SECONDS = 2.0
"""A push task that has run this long sends the batches it has not started on to another task."""
HAND_BACK_DELAY_SECONDS = 5.0
"""How long a push whose writes the replicas did not confirm waits before handing its message back: on
RabbitMQ each hand-back counts toward the tasks queue's delivery limit, so an outage of the replicas
must not use it up in seconds."""


class BatchDeadLettered(Exception):
    """A push task's batch went to the dead-letter queue: the task fails, so that a monitor such
    as Flower shows it failed (the message is acknowledged all the same: the batch is kept there)."""


def _push(target_ref: str, batch_id: str) -> PushOutcome:
    target = keys.Target.from_ref(target_ref)
    with metrics.PUSHES_RUNNING.labels(target.kind).track_inprogress():
        # The push logs its outcome with the batch's fields.
        return runtime().push.run(target.batch(batch_id))


def _push_all(task: Task, refs: Sequence[Sequence[str]]) -> dict:
    """Push the batches `refs` names ([target ref, batch id] each) one after the other.

    A batch that fails does not stop the others (each is the reaper's once its task is gone); a run
    longer than HAND_ON_SECONDS sends the batches it has not started to the queue in a task of their
    own, so that an idle pool process takes them."""
    started = time.monotonic()
    outcomes, dead_lettered, failure = [], [], None
    for index, (target_ref, batch_id) in enumerate(refs):
        if index and time.monotonic() - started > HAND_ON_SECONDS:
            _hand_on(task, refs[index:])
            log.info("%d batch(es) of this task handed on to another task after %.1f s", len(refs) - index,
                     time.monotonic() - started)
            break
        try:
            outcome = _push(target_ref, batch_id)
        except ReplicasUnconfirmed as exc:
            # Its next delivery finds each batch as the store has it (those pushed already are done).
            _hand_back(exc, f"push of batch {batch_id} of {target_ref}")
        except Exception as exc:
            if is_outage(exc):
                # The store is gone for every batch alike: the reaper enqueues them again once it is back.
                raise
            log.exception("push of batch %s of %s failed; the reaper enqueues it again", batch_id, target_ref)
            failure = failure or exc
            continue
        outcomes.append(outcome.__dict__)
        if outcome.state == DEAD_LETTERED:
            dead_lettered.append(f"{batch_id} of {target_ref}")
    if failure is not None:
        raise failure
    if dead_lettered:
        raise BatchDeadLettered(f"batch {', '.join(dead_lettered)} dead-lettered: see `pushsync dlq list`")
    return outcomes[0] if len(outcomes) == 1 else {"batches": outcomes}


# `throws`: an expected failure, logged in one line without a traceback (the push logged why).
@shared_task(name="pushsync.push_batch", acks_late=True, throws=(BatchDeadLettered,))
def push_batch(target_ref: str, batch_id: str, *more: Sequence[str]) -> dict:
    """Push one claimed batch of items (idempotent by batch id), then each of `more` ([target ref, batch id])."""
    return _push_all(push_batch, [(target_ref, batch_id), *more])


@shared_task(name="pushsync.push_identities", acks_late=True, throws=(BatchDeadLettered,))
def push_identities(target_ref: str, batch_id: str, *more: Sequence[str]) -> dict:
    """Push one claimed batch of a provider's identity changes (idempotent by batch id), then each of `more`."""
    return _push_all(push_identities, [(target_ref, batch_id), *more])


TASK_OF_KIND = {keys.PROVIDER: push_identities, keys.SOURCE: push_batch}
"""Providers first: a source's batch claimed by the same sweep as its provider's would wait for its identities."""


def _hand_back(exc: ReplicasUnconfirmed, what: str) -> NoReturn:
    """Give the task's message back to the broker, unacknowledged, after HAND_BACK_DELAY_SECONDS: the
    store's replicas did not confirm what `what` wrote, so the work is not known to be safe yet."""
    log.warning("%s handed back to the broker in %.0f s: %s", what, HAND_BACK_DELAY_SECONDS, exc)
    time.sleep(HAND_BACK_DELAY_SECONDS)
    raise Reject(str(exc), requeue=True) from exc


def _hand_on(task: Task, refs: Sequence[Sequence[str]]) -> None:
    """Send `refs` in a new task, their enqueue time now: the reaper counts from there, not from the first task."""
    now = time.time()
    pipe = runtime().store.pipeline(transaction=False)
    for target_ref, batch_id in refs:
        batch = keys.Target.from_ref(target_ref).batch(batch_id)
        pipe.zadd(batch.target.claimed, {batch.claim_ref: now}, xx=True, gt=True)
    pipe.execute()
    _send(task, refs)


def _send(task: Task, refs: Sequence[Sequence[str]]) -> None:
    """Send `task` for the batches `refs` names: the first as its two arguments (what a task of one batch always
    was), the others after it."""
    task.apply_async(args=[*refs[0], *[list(ref) for ref in refs[1:]]])


def pushes_enqueuer(pool_processes: int) -> Callable[[Sequence[keys.Batch]], None]:
    """What sends the push tasks of a sweep's batches, spread over `pool_processes` (see `spread`)."""
    def enqueue(batches: Sequence[keys.Batch]) -> None:
        for kind, task in TASK_OF_KIND.items():
            for refs in spread([(batch.target.ref, batch.id) for batch in batches if batch.target.kind == kind],
                               pool_processes):
                _send(task, refs)

    return enqueue


def spread(refs: Sequence[T], pool_processes: int) -> list[Sequence[T]]:
    """`refs` cut into the tasks that carry them: as many as `pool_processes` (the workers' pools; 0 when
    unknown: one task each), PUSH_TASK_MAX_BATCHES each at most, in order. A task per batch would cost
    more than the push of a small batch itself (a message, its task events, a round trip to the pool)."""
    if pool_processes <= 0:
        return [refs[index:index + 1] for index in range(len(refs))]
    count = max(-(-len(refs) // PUSH_TASK_MAX_BATCHES), min(len(refs), pool_processes))
    chunks, start = [], 0
    for index in range(count):
        # Sizes differ by one at most, so no pool process waits on a task twice another's.
        size = len(refs) // count + (index < len(refs) % count)
        chunks.append(refs[start:start + size])
        start += size
    return chunks


@shared_task(name="pushsync.close_burst", acks_late=True)
def close_burst(target_ref: str, epoch: int) -> bool:
    """Send IDLE for a quiet source unless its burst reopened."""
    return _close_burst(target_ref, epoch)


def _close_burst(target_ref: str, epoch: int) -> bool:
    current = runtime()
    since = current.durability.mark()
    closed = current.brackets.close(keys.Target.from_ref(target_ref), epoch)
    try:
        # Lost in a failover, the closed burst would look open still: the next push would skip its REFRESH.
        current.durability.confirm(since)
    except ReplicasUnconfirmed as exc:
        _hand_back(exc, f"IDLE of burst {epoch} of {target_ref}")
    return closed


@shared_task(name=REBUILD_BEGIN_TASK, acks_late=True)
def rebuild_begin(target_ref: str, run_id: str) -> bool:
    """Start a full run announced by a rebuild.begin event (idempotent by run id)."""
    return runtime().broker_runs.begin(keys.Target.from_ref(target_ref), run_id)


@shared_task(name="pushsync.rebuild_finish", acks_late=True)
def rebuild_finish(target_ref: str, run_id: str) -> dict:
    """Conclude a full run whose rebuild.end came, if it can be now (the sweep sends this again until then)."""
    outcome = runtime().broker_runs.finish(keys.Target.from_ref(target_ref), run_id)
    return outcome.__dict__ if outcome else {"concluded": False}


# No task events: a sweep runs twice a second, and a monitor's task list is for pushes. Each worker's
# main process runs the sweeps (`worker.sweeper`); the task is what beat sends, and what a pool runs
# when told to consume the sweep queue.
@shared_task(name=SWEEP_TASK, acks_late=True, send_events=False)
def sweep() -> dict:
    """Claim due windows, re-enqueue lost batches, close quiet bursts; one sweep at a time."""
    return run_sweep(sweep.request.hostname)


def announce(hostname: str, pool_processes: int | None) -> None:
    """Record the pool of the worker named `hostname` among those push tasks are spread over (best effort:
    its every sweep records it too)."""
    try:
        liveness.record_pool(runtime().store, hostname, pool_processes)
    except Exception as exc:
        if not is_outage(exc):
            raise
        STORE_OUTAGE.down(exc)


def run_sweep(hostname: str, pool_processes: int | None = None) -> dict:
    """One sweep, on the worker named `hostname` (whose pool runs `pool_processes` tasks at once, None when
    unknown), unless another one is under way."""
    try:
        outcome = _sweep(hostname, pool_processes)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # Nothing is lost: what was due is due at the next sweep that reaches the store.
        STORE_OUTAGE.down(exc)
        return {"store": "unreachable"}
    STORE_OUTAGE.up()
    return outcome


def _sweep(hostname: str, pool_processes: int | None) -> dict:
    current = runtime()
    liveness.record_sweep(current.store, hostname, pool_processes)
    lock = current.store.lock(keys.SWEEP_LOCK, timeout=SWEEP_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return {"skipped": True}
    try:
        pools = liveness.pool_processes(current.store)
        result = flusher(pushes_enqueuer(pools)).sweep(pool_processes=pools)
        closing = current.brackets.close_quiet(lambda target, epoch: close_burst.delay(target.ref, epoch))
        for target, run_id in broker_runs.due(current.store, current.settings.run_poll_seconds):
            rebuild_finish.delay(target.ref, run_id)
    finally:
        lock.release()
    return {"claimed": len(result.claimed), "reaped": len(result.reaped), "closing": closing}
