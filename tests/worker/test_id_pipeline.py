"""Any source id, provider id, documentId and identity name the schema accepts goes through
ingest, claim, reap and push: in-process against real Redis and the emulator over HTTP, and in
a real worker fed through the broker.

Generated (hypothesis). `PUSHSYNC_LONG_PROPERTIES=1` runs many more examples (see tests/support/ids.py).
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producers import Publisher
from producers.events import complete_event, parse_event
from tests.support.ids import accepted_ids, accepted_names, accepted_uris, examples
from tests.worker.e2e import pipeline_env, wait_for
from worker.deadletter.operator import DeadLetterBrowser
from worker.observe import overview
from worker.push.batch import BatchPush
from worker.push.brackets import StatusBrackets
from worker.pushapi.client import PushApiClient
from worker.settings import load_settings
from worker.store import indexes, keys
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

WINDOW_SECONDS = 5
REAP_AFTER_SECONDS = 30


def sharing_fixtures(short: int) -> settings:
    """`short` examples (more in a long run) that share the test's fixtures (Redis, the emulator, a
    worker); each example starts from a state of its own."""
    return settings(max_examples=examples(short), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def upsert(source: str, document_id: str, version: int = 1) -> dict:
    return {"kind": "item.upsert", "source": source, "documentId": document_id, "version": version,
            "item": {"data": f"{document_id} v{version}"}}


def identity(provider: str, name: str) -> dict:
    return {"kind": "identity.upsert", "provider": provider, "version": 1, "identity": {"name": name, "type": "USER"}}


class Parts:
    """The worker's parts wired to the test's Redis, broker and emulator, as the tasks call them."""

    def __init__(self, redis_client, broker_url: str, emulator, **overrides) -> None:
        self.redis = redis_client
        self.settings = load_settings(**{"window_seconds": WINDOW_SECONDS, "idle_after_seconds": 0,
                                         "reap_after_seconds": REAP_AFTER_SECONDS, "single_call_max_items": 0,
                                         **overrides})
        api = PushApiClient(base_url=emulator.push_url, organization_id=emulator.organization,
                            api_key=emulator.api_key, retry_budget_seconds=2, read_timeout=5)
        self.enqueued: list[keys.Batch] = []
        self.coalescer = Coalescer(redis_client, self.settings)
        self.flusher = Flusher(redis_client, self.settings, self.enqueued.extend)
        self.push = BatchPush(redis_client, api, StatusBrackets(redis_client, api, self.settings),
                              DeadLetterBrowser(broker_url), self.settings)

    def add(self, *events: dict) -> None:
        self.coalescer.add([parse_event(complete_event(event)) for event in events])

    def rows(self, now: float) -> dict[str, list[tuple[str, list[str]]]]:
        """What `pushsync status` lists: (id, batches in flight) of each source and provider."""
        shown = overview.Overview(at=now, store=overview.Service(""), broker=overview.Service(""))
        overview._from_store(shown, self.redis, self.settings)
        return {kind: [(row.id, [f.batch for f in row.in_flight]) for row in rows]
                for kind, rows in ((keys.SOURCE, shown.sources), (keys.PROVIDER, shown.providers))}


def test_the_lost_batch_of_a_source_whose_id_holds_a_bar_is_enqueued_again(redis_client, redis_broker_url,
                                                                            clean_emulator):
    source = "news|eu"
    clean_emulator.create_source(source)
    parts = Parts(redis_client, redis_broker_url, clean_emulator)
    parts.add(upsert(source, "https://example.com/1"))
    now = time.time() + WINDOW_SECONDS
    (batch,) = parts.flusher.sweep(now).claimed
    parts.enqueued.clear()  # its task is lost
    assert parts.flusher.reap(now + REAP_AFTER_SECONDS + 1) == [batch] and parts.enqueued == [batch]
    assert parts.push.run(batch).state == "pushed"
    assert clean_emulator.item(source, "https://example.com/1") is not None


@sharing_fixtures(25)
@given(source=accepted_ids(), provider=accepted_ids(), document_id=accepted_uris(), name=accepted_names())
@example(source="a|b", provider="p|q:r", document_id="https://ex.com/a|b", name="ann|x")
def test_any_accepted_id_is_claimed_reaped_and_pushed(redis_client, redis_broker_url, emulator, source, provider,
                                                      document_id, name):
    redis_client.flushdb()
    emulator.reset()
    emulator.create_source(source)
    emulator.create_provider(provider)
    parts = Parts(redis_client, redis_broker_url, emulator, source_providers={source: [provider]})
    parts.add(identity(provider, name), upsert(source, document_id))
    now = time.time() + WINDOW_SECONDS

    claimed = parts.flusher.sweep(now).claimed
    items, identities = sorted(claimed, key=lambda batch: batch.target.kind != keys.SOURCE)
    assert (items.target, identities.target) == (keys.Target(keys.SOURCE, source), keys.Target(keys.PROVIDER, provider))
    assert parts.rows(now) == {keys.SOURCE: [(source, [items.id])], keys.PROVIDER: [(provider, [identities.id])]}

    # The items wait for the identities, whose task is lost: the reaper brings it back, then wakes the items.
    assert parts.push.run(items).state == "waiting"
    parts.enqueued.clear()
    later = now + REAP_AFTER_SECONDS + 1
    assert parts.flusher.reap(later) == [identities] and parts.enqueued == [identities]
    assert parts.push.run(identities).state == "pushed"
    assert parts.flusher.reap(later) == [items]
    assert parts.push.run(items).state == "pushed"

    assert not indexes.count(redis_client, keys.CLAIMED) and not redis_client.smembers(items.target.inflight)
    assert emulator.item(source, document_id)["content"] == f"{document_id} v1"
    assert [(i["name"], i["type"]) for i in emulator.identities(provider)] == [(name, "USER")]


@sharing_fixtures(2)
@given(targets=st.lists(st.tuples(accepted_ids(), accepted_uris()), min_size=3, max_size=4, unique_by=lambda t: t[0]))
@example(targets=[("a|b", "https://ex.com/a|b"), ("a", "https://ex.com/a"), ("c:d|e%41", "file://x/%41|y")])
def test_a_worker_pushes_what_it_ingests_for_any_accepted_id(workers, emulator, redis_client, redis_url,
                                                             redis_broker_url, targets):
    if not workers.children:
        env = pipeline_env(redis_url, redis_broker_url, emulator)
        workers.start("worker", env)
        workers.start("beat", env)
    for source, _ in targets:
        emulator.create_source(source)
    with Publisher(redis_broker_url) as publisher:
        published = publisher.publish_many([upsert(source, document_id) for source, document_id in targets])
    for event in published:
        wait_for(lambda: emulator.item(event.source, event.document_id), 30,
                 what=f"{event.document_id!r} in {event.source!r}")
    wait_for(lambda: not indexes.count(redis_client, keys.CLAIMED), 10, what="every claim released")
