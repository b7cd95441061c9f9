"""Invariant 9: a pause is nobody's failure. However many pause periods a batch goes through
(a wrong key, a spent daily quota), it is pushed once they end, and nothing is dead-lettered."""

from __future__ import annotations

import pytest

from producers import Publisher
from tests.worker.e2e import converge, expected, history, index, pipeline_env, wait_for
from worker.deadletter.operator import DeadLetterBrowser

pytestmark = pytest.mark.slow

SOURCE = "paused"
PAUSES = 30
"""Pause periods in a row: many more than PUSHSYNC_MAX_PUSH_ATTEMPTS (5)."""
PAUSE_SECONDS = "0.2"


@pytest.mark.parametrize(("status", "code", "setting"), [
    (401, "INVALID_TOKEN", "PUSHSYNC_AUTH_PAUSE_SECONDS"),
    (429, "TOO_MANY_DOCUMENTS_DAILY", "PUSHSYNC_PAUSE_SECONDS"),
])
def test_a_batch_paused_30_times_in_a_row_is_pushed_once_the_answer_changes(
        workers, clean_emulator, redis_client, redis_url, redis_broker_url, status, code, setting):
    emulator = clean_emulator
    emulator.create_source(SOURCE)
    emulator.add_fault(method="PUT", path="*/documents/batch", status=status, errorCode=code, times=PAUSES)
    env = pipeline_env(redis_url, redis_broker_url, emulator, PUSHSYNC_SWEEP_SECONDS="0.2", **{setting: PAUSE_SECONDS})
    workers.start("beat", env)
    workers.start("worker", env)
    events = history([SOURCE], items=4, seed=13, deletes=0)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    letters = DeadLetterBrowser(redis_broker_url)
    want = expected(events, SOURCE)
    wait_for(lambda: letters.depth() or index(emulator, SOURCE) == want, 90, what="the batch pushed or dead-lettered")
    assert letters.depth() == 0
    converge(emulator, events, [SOURCE])
    refused = [r for r in emulator.requests() if r["path"].endswith("/documents/batch") and r["status"] == status]
    assert len(refused) == PAUSES
