"""A window of one or two items goes by the single-item calls: one call each instead of a file
container, its upload and a batch call; larger windows still go through containers.

Real workers and beat against the emulator; the calls are read from its request log.
"""

from __future__ import annotations

import pytest

from producers import Publisher
from tests.worker.e2e import converge, index, pipeline_env, wait_for
from worker.deadletter.operator import DeadLetterBrowser
from worker.store import keys

ONE, TWO, THREE, BAD = "one", "two", "three", "bad"
SOURCES = [ONE, TWO, THREE, BAD]
PROVIDER = "people"
USER = {"name": "ann@example.com", "type": "USER", "additionalInfo": {}}
GROUP = {"name": "editors", "type": "GROUP", "additionalInfo": {}}
SINGLE_CALL_MAX_ITEMS = 2
"""The default of PUSHSYNC_SINGLE_CALL_MAX_ITEMS, set here so the test says what it relies on."""


def upsert(source: str, n: int, version: int) -> dict:
    return {"kind": "item.upsert", "source": source, "version": version, "documentId": f"https://example.com/{n}",
            "item": {"data": f"{source} {n} v{version}", "metadata": {"v": version}}}


def delete(source: str, n: int, version: int) -> dict:
    return {"kind": "item.delete", "source": source, "version": version, "documentId": f"https://example.com/{n}"}


def pushes(log: list[dict], source: str) -> list[str]:
    """The source's accepted item calls, as METHOD route: single-item PUT/DELETE or the batch PUT."""
    return [f"{entry['method']} {entry['path'].split(f'/sources/{source}/')[1]}" for entry in log
            if f"/sources/{source}/documents" in entry["path"] and entry["status"] == 202]


@pytest.fixture()
def pipeline(workers, clean_emulator, redis_url, redis_broker_url):
    for source in SOURCES:
        clean_emulator.create_source(source)
    clean_emulator.create_provider(PROVIDER)
    env = pipeline_env(redis_url, redis_broker_url, clean_emulator,
                       PUSHSYNC_SINGLE_CALL_MAX_ITEMS=str(SINGLE_CALL_MAX_ITEMS))
    workers.start("beat", env)
    workers.start("worker", env)
    return clean_emulator


def test_windows_of_one_or_two_items_take_one_call_per_item(pipeline, redis_client, redis_broker_url):
    emulator = pipeline
    first = [upsert(ONE, 1, 1), upsert(TWO, 1, 1), upsert(TWO, 2, 1), *(upsert(THREE, n, 1) for n in range(3))]
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(first)
        converge(emulator, first, [ONE, TWO, THREE])
        # An update and a delete in one window: the item calls in a batch file's order, adds first.
        second = [upsert(TWO, 1, 2), delete(TWO, 2, 2)]
        publisher.publish_many(second)
        converge(emulator, first + second, [TWO])
    log = emulator.requests()
    assert pushes(log, ONE) == ["PUT documents"]
    assert pushes(log, TWO) == ["PUT documents", "PUT documents", "PUT documents", "DELETE documents"]
    assert pushes(log, THREE) == ["PUT documents/batch"]
    # Only the three-item window made a file container and an upload.
    assert sum(entry["path"].endswith("/files") for entry in log) == 1
    assert sum(entry["path"].startswith("/_blob/") for entry in log) == 1
    # The high-water marks moved once the service took the items, as after a batch call.
    target = keys.Target(keys.SOURCE, TWO)
    assert all(redis_client.get(target.high_water(f"https://example.com/{n}")) for n in (1, 2))
    assert index(emulator, TWO) == {"https://example.com/1": f"{TWO} 1 v2"}


def test_an_item_its_single_call_refuses_is_dead_lettered_alone(pipeline, redis_broker_url):
    emulator = pipeline
    emulator.add_fault(method="PUT", path=f"*/sources/{BAD}/documents", status=400, errorCode="INVALID_JSON",
                       times=1)
    events = [upsert(BAD, 1, 1), upsert(BAD, 2, 1)]
    letters = DeadLetterBrowser(redis_broker_url)
    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many(events)
    wait_for(lambda: letters.depth() == 1 and len(index(emulator, BAD)) == 1, 60,
             what="one item dead-lettered, the other indexed")
    (entry,) = letters.list()
    assert len(entry.events) == 1


def test_identity_windows_of_one_or_two_take_one_call_each(pipeline, redis_broker_url):
    emulator = pipeline
    alias = {"kind": "identity.alias", "provider": PROVIDER, "version": 1, "identity": USER,
             "mappings": [{"name": "ann", "type": "USER", "provider": "Email Security Provider", "additionalInfo": {}}]}
    group = {"kind": "identity.upsert", "provider": PROVIDER, "version": 1, "identity": GROUP, "members": [USER]}
    disable = {"kind": "identity.disable", "provider": PROVIDER, "version": 2, "identity": GROUP}

    def calls() -> list[str]:
        return [f"{entry['method']} {entry['path'].split(f'/providers/{PROVIDER}/')[1]}" for entry in emulator.requests()
                if f"/providers/{PROVIDER}/" in entry["path"] and entry["status"] == 202]

    with Publisher(redis_broker_url) as publisher:
        publisher.publish_many([alias, group])
        wait_for(lambda: len(calls()) == 2, 60, what="the identity and the alias pushed")
        publisher.publish_many([disable])
        wait_for(lambda: len(calls()) == 3, 60, what="the group disabled")
    # A batch file's order: members, then mappings; no file container.
    assert calls() == ["PUT permissions", "PUT mappings", "DELETE permissions"]
    identities = {identity["name"]: identity for identity in emulator.identities(PROVIDER)}
    assert identities[GROUP["name"]]["disabled"] and not identities[USER["name"]]["disabled"]
    assert [m["name"] for m in identities[USER["name"]]["mappings"]] == ["ann"]
    assert not [entry for entry in emulator.requests() if entry["path"].endswith("/files")]
