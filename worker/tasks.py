"""The Celery tasks: the periodic sweep, the push of one batch, and closing a quiet burst."""

from __future__ import annotations

import logging
import time

from celery import shared_task
from celery.exceptions import Reject

from worker.ingest.ingestor import REBUILD_BEGIN_TASK
from worker.logs import Outage
from worker.observe import liveness, metrics
from worker.push.batch import DEAD_LETTERED
from worker.runs import broker_runs
from worker.runtime import flusher, runtime
from worker.store import keys
from worker.store.durability import ReplicasUnconfirmed
from worker.store.outages import is_outage

SWEEP_TASK = "pushsync.sweep"
ROUTINE_TASKS = frozenset({SWEEP_TASK})
"""Tasks too frequent to log each run of: they log what they do."""
log = logging.getLogger(__name__)
STORE_OUTAGE = Outage(log, "the store (Redis)", "sweeps wait for it, and windows stay buffered")
SWEEP_LOCK_SECONDS = 30
"""A sweep that takes longer than this (it should take milliseconds) lets the next one run."""
HAND_BACK_DELAY_SECONDS = 5.0
"""How long a push whose writes the replicas did not confirm waits before handing its message back: on
RabbitMQ each hand-back counts toward the tasks queue's delivery limit, so an outage of the replicas
must not use it up in seconds."""


class BatchDeadLettered(Exception):
    """A push task's batch went to the dead-letter queue: the task fails, so that a monitor such
    as Flower shows it failed (the message is acknowledged all the same: the batch is kept there)."""


def _push(target_ref: str, batch_id: str) -> dict:
    target = keys.Target.from_ref(target_ref)
    with metrics.PUSHES_RUNNING.labels(target.kind).track_inprogress():
        # The push logs its outcome with the batch's fields.
        try:
            outcome = runtime().push.run(target.batch(batch_id))
        except ReplicasUnconfirmed as exc:
            # Not acknowledged: the message goes back, and its next delivery finds the batch as the store has it.
            log.warning("push of batch %s of %s handed back to the broker in %.0f s: %s", batch_id, target_ref,
                        HAND_BACK_DELAY_SECONDS, exc)
            time.sleep(HAND_BACK_DELAY_SECONDS)
            raise Reject(str(exc), requeue=True) from exc
    if outcome.state == DEAD_LETTERED:
        raise BatchDeadLettered(f"batch {batch_id} of {target_ref} was dead-lettered: see `pushsync dlq list`")
    return outcome.__dict__


# `throws`: an expected failure, logged in one line without a traceback (the push logged why).
@shared_task(name="pushsync.push_batch", acks_late=True, throws=(BatchDeadLettered,))
def push_batch(target_ref: str, batch_id: str) -> dict:
    """Push one claimed batch of items (idempotent by batch id)."""
    return _push(target_ref, batch_id)


@shared_task(name="pushsync.push_identities", acks_late=True, throws=(BatchDeadLettered,))
def push_identities(target_ref: str, batch_id: str) -> dict:
    """Push one claimed batch of a provider's identity changes (idempotent by batch id)."""
    return _push(target_ref, batch_id)


def enqueue_push(batch: keys.Batch) -> None:
    """Send the task that pushes `batch`: items and identities have tasks of their own."""
    task = push_batch if batch.target.kind == keys.SOURCE else push_identities
    task.delay(batch.target.ref, batch.id)


@shared_task(name="pushsync.close_burst", acks_late=True)
def close_burst(target_ref: str, epoch: int) -> bool:
    """Send IDLE for a quiet source unless its burst reopened."""
    return runtime().brackets.close(keys.Target.from_ref(target_ref), epoch)


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


def run_sweep(hostname: str) -> dict:
    """One sweep, on the worker named `hostname`, unless another one is under way."""
    try:
        outcome = _sweep(hostname)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # Nothing is lost: what was due is due at the next sweep that reaches the store.
        STORE_OUTAGE.down(exc)
        return {"store": "unreachable"}
    STORE_OUTAGE.up()
    return outcome


def _sweep(hostname: str) -> dict:
    current = runtime()
    liveness.record_sweep(current.store, hostname)
    lock = current.store.lock(keys.SWEEP_LOCK, timeout=SWEEP_LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        return {"skipped": True}
    try:
        result = flusher(enqueue_push).sweep()
        closing = current.brackets.close_quiet(lambda target, epoch: close_burst.delay(target.ref, epoch))
        for target, run_id in broker_runs.due(current.store, current.settings.run_poll_seconds):
            rebuild_finish.delay(target.ref, run_id)
    finally:
        lock.release()
    return {"claimed": len(result.claimed), "reaped": len(result.reaped), "closing": closing}
