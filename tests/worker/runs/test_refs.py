"""Refs that name a target, or a target and a batch or run, read back whole for any id the
schema accepts, and in the format earlier versions stored (see worker/store/keys.py).

Generated (hypothesis). `PUSHSYNC_LONG_PROPERTIES=1` runs many more examples (see tests/support/ids.py).
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from producers.events import complete_event, parse_event
from tests.support.ids import accepted_ids, examples, run_ids
from worker.pushapi.client import PushApiClient
from worker.runs import broker_runs
from worker.runs.rebuild import Rebuilds
from worker.settings import load_settings
from worker.store import keys

KINDS = st.sampled_from([keys.SOURCE, keys.PROVIDER])
TOKENS = st.one_of(run_ids(), st.builds(lambda: uuid.uuid4().hex))


@settings(max_examples=examples(500), deadline=None)
@given(kind=KINDS, target_id=accepted_ids(), token=TOKENS)
@example(kind=keys.SOURCE, target_id="a|b", token="0" * 32)
@example(kind=keys.PROVIDER, target_id="x:y|z:", token="run-1")
@example(kind=keys.SOURCE, target_id="|", token="r")
def test_refs_read_back_whole_in_the_format_stored_before(kind, target_id, token):
    target = keys.Target(kind, target_id)
    assert keys.Target.from_ref(target.ref) == target
    assert keys.Target.from_compound_ref(target.compound_ref(token)) == (target, token)
    batch = target.batch(token)
    assert keys.Batch.from_claim_ref(batch.claim_ref) == batch
    # What earlier versions wrote, and may still be stored in CLAIMED and RUNS_ENDING.
    assert target.compound_ref(token) == f"{kind}:{target_id}|{token}"


def test_a_token_holding_the_separator_is_refused():
    with pytest.raises(ValueError, match="holds no"):
        keys.Target(keys.SOURCE, "s").compound_ref("a|b")


def test_an_ended_run_of_a_source_whose_id_holds_a_bar_is_due_and_forgotten(redis_client):
    source = keys.Target(keys.SOURCE, "news|eu")
    end = parse_event(complete_event({"kind": "rebuild.end", "source": source.id, "run": "nightly", "events": 0}))
    pipe = redis_client.pipeline()
    broker_runs.record(pipe, end)
    broker_runs.mark_ending(pipe, end)
    pipe.execute()
    assert broker_runs.due(redis_client, poll_seconds=60) == [(source, "nightly")]
    # Nothing began: once overdue, the run is concluded and forgotten, which only its exact ref can do.
    redis_client.hset(source.run_state("nightly"), "ended_at", 1)
    # No call reaches the service on this path: the client points nowhere.
    api = PushApiClient(base_url="http://127.0.0.1:9", organization_id="org", api_key="key")
    runs = broker_runs.BrokerRuns(Rebuilds(redis_client, api, load_settings()), timeout=1)
    assert runs.finish(source, "nightly").deleted is False
    assert not redis_client.smembers(keys.RUNS_ENDING)
