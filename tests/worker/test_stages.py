"""Flush, push, status brackets and dead letters, in-process, against real Redis and real HTTP.

These drive the same objects the Celery tasks call, one step at a time, so each rule can be
checked at the instant it matters; the end-to-end tests run them in real worker processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import redis.exceptions as redis_errors

from producers.events import complete_event, parse_event
from tests.support.scripted_server import UPLOAD_PREFIX, ScriptedServer
from tests.worker.test_many_sources import commands_of
from worker.deadletter.operator import DeadLetterBrowser
from worker.push import pause, prerequisites
from worker.push.batch import BatchPush
from worker.push.brackets import StatusBrackets
from worker.pushapi.client import PushApiClient
from worker.settings import load_settings
from worker.store import indexes, keys, recent
from worker.store.ranks import rank
from worker.windows import flush as flush_module
from worker.windows.coalesce import Coalescer
from worker.windows.flush import Flusher

SOURCE = keys.Target(keys.SOURCE, "src")
RETRY_AFTER_SECONDS = 120
SHORT_PAUSE_SECONDS = 0.2


def wait_until(condition, seconds: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not reached in {seconds}s: {what}"
        time.sleep(0.01)


def item(n: int, version: int, source: str = "src", **item_fields) -> object:
    fields = item_fields or {"data": f"v{version}"}
    return parse_event(complete_event({"kind": "item.upsert", "source": source, "version": version,
                                       "documentId": f"https://example.com/{n}", "item": fields}))


def delete(n: int, version: int) -> object:
    return parse_event(complete_event({"kind": "item.delete", "source": "src", "version": version,
                                       "documentId": f"https://example.com/{n}"}))


class Stages:
    """The worker's parts wired to one Redis database, one broker and one HTTP server."""

    def __init__(self, redis_client, broker_url: str, server: ScriptedServer, **overrides) -> None:
        # Every window through a file container unless a test says otherwise: these tests script the batch call.
        self.settings = load_settings(**{"window_seconds": 5, "idle_after_seconds": 0, "single_call_max_items": 0,
                                         **overrides})
        self.redis = redis_client
        self.server = server
        self.api = PushApiClient(base_url=server.push_url, organization_id="org", api_key="key",
                                 retry_budget_seconds=2, read_timeout=5)
        self.coalescer = Coalescer(redis_client, self.settings)
        self.enqueued: list[keys.Batch] = []
        self.flusher = Flusher(redis_client, self.settings, self.enqueued.extend)
        self.brackets = StatusBrackets(redis_client, self.api, self.settings)
        self.dead_letters = DeadLetterBrowser(broker_url)
        self.push = BatchPush(redis_client, self.api, self.brackets, self.dead_letters, self.settings)

    def flush(self, now: float | None = None):
        return self.flusher.sweep(now=(time.time() + 10) if now is None else now)

    def push_all(self):
        outcomes = [self.push.run(batch) for batch in self.enqueued]
        self.enqueued.clear()
        return outcomes

    def batch_items(self) -> list[dict]:
        return [json.loads(r.body) for r in self.server.matching("PUT", "^" + UPLOAD_PREFIX)]

    def statuses(self) -> list[str]:
        return [r.query["statusType"][0] for r in self.server.matching("POST", r"/status$")]


@pytest.fixture()
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture()
def stages(redis_client, redis_broker_url, server):
    return Stages(redis_client, redis_broker_url, server)


def test_window_is_claimed_pushed_and_released(stages):
    stages.coalescer.add([item(1, 1), item(1, 3), item(1, 2), item(2, 1), delete(3, 5)])
    assert stages.flush(now=time.time()).claimed == []
    (batch,) = stages.flush().claimed
    (outcome,) = stages.push_all()
    assert outcome.state == "pushed" and outcome.pushed == 3
    (batch_file,) = stages.batch_items()
    assert sorted(d["documentId"] for d in batch_file["addOrUpdate"]) == ["https://example.com/1", "https://example.com/2"]
    assert {d["documentId"]: d["data"] for d in batch_file["addOrUpdate"]}["https://example.com/1"] == "v3"
    assert batch_file["delete"] == [{"documentId": "https://example.com/3", "deleteChildren": False}]
    redis = stages.redis
    assert not redis.exists(batch.events) and not redis.smembers(SOURCE.inflight) and not indexes.count(redis, keys.CLAIMED)
    assert redis.get(SOURCE.high_water("https://example.com/1")).startswith(b"3.0@")
    assert stages.statuses() == ["REFRESH"]


def test_one_batch_in_flight_per_source_while_the_next_window_fills(stages):
    stages.coalescer.add([item(1, 1)])
    (first,) = stages.flush().claimed
    stages.coalescer.add([item(1, 2), item(2, 1)])
    result = stages.flush()
    assert result.claimed == [] and result.busy == [SOURCE]
    stages.push_all()
    (second,) = stages.flush().claimed
    stages.push_all()
    assert [sorted((d["documentId"], d["data"]) for d in b["addOrUpdate"]) for b in stages.batch_items()] == [
        [("https://example.com/1", "v1")], [("https://example.com/1", "v2"), ("https://example.com/2", "v1")]]


def test_older_event_arriving_during_flight_is_skipped_at_push(stages):
    stages.coalescer.add([item(1, 5)])
    stages.flush()
    stages.coalescer.add([item(1, 4)])
    stages.push_all()
    stages.flush()
    (outcome,) = stages.push_all()
    assert outcome.stale == 1 and outcome.pushed == 0
    assert len(stages.batch_items()) == 1


def test_a_delete_wins_a_tie_with_the_upsert_of_the_same_version(stages):
    stages.coalescer.add([delete(1, 5), item(1, 5)])
    stages.flush()
    stages.push_all()
    stages.coalescer.add([item(2, 3)])
    stages.flush()
    stages.push_all()
    stages.coalescer.add([delete(2, 3), item(2, 3)])
    stages.flush()
    stages.push_all()
    first, second, third = stages.batch_items()
    assert first == {"addOrUpdate": [], "delete": [{"documentId": "https://example.com/1", "deleteChildren": False}]}
    assert third == {"addOrUpdate": [], "delete": [{"documentId": "https://example.com/2", "deleteChildren": False}]}


def test_full_window_closes_early(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, window_max_items=3)
    stages.coalescer.add([item(n, 1) for n in range(3)])
    assert len(stages.flush(now=time.time() + 0.01).claimed) == 1


def deadline_in(stages, target: keys.Target = SOURCE) -> float:
    """Seconds from now until `target`'s window is due."""
    return stages.redis.zscore(target.deadlines, target.ref) - time.time()


def first_window_claimed(redis_client, redis_broker_url, server, window: float) -> "Stages":
    """Stages with windows of `window` seconds and first windows of 0.05 s, the first one (an item) claimed."""
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=window, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    (_,) = stages.flush(now=time.time() + 0.05).claimed
    return stages


def test_a_quiet_sources_first_window_is_short_and_the_next_one_whole(redis_client, redis_broker_url, server):
    window = 0.4
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=window, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    assert deadline_in(stages) <= 0.05
    (first,) = stages.flush(now=time.time() + 0.05).claimed
    stages.coalescer.add([item(1, 2)])
    # Claimed a moment ago: this window is whole, so the source gets no more than a batch per window.
    assert deadline_in(stages) > window - 0.1
    stages.push_all()
    assert stages.flush(now=time.time() + 0.05).claimed == []
    claimed = []
    wait_until(lambda: claimed.extend(stages.flush(now=time.time()).claimed) or claimed, what="the whole window due")
    stages.push_all()
    # Quiet for a whole window since that claim: short again.
    time.sleep(window)
    stages.coalescer.add([item(2, 1)])
    assert deadline_in(stages) <= 0.05
    assert [[d["data"] for d in batch["addOrUpdate"]] for batch in stages.batch_items()] == [["v1"], ["v2"]]


def test_a_claim_is_timed_by_the_store_not_by_a_sweep_that_started_late(redis_client, redis_broker_url, server):
    window = 1.0
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=window, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    # The claimer's `now` is a second old (a slow sweep, or a host whose clock is behind).
    (claimed, _, _) = stages.flusher.claim([SOURCE], now=time.time() - 1.0)
    claimed_at = time.time()
    assert claimed
    stages.push_all()
    time.sleep(max(0.0, claimed_at + window - 0.5 - time.time()))
    stages.coalescer.add([item(1, 2)])
    # Half a window after the real claim: this window is whole, so the two batches come a window apart.
    assert deadline_in(stages) > window - 0.5 - 0.1


def test_a_window_that_filled_during_a_slow_push_is_due_after_its_first_window_once_released(
        redis_client, redis_broker_url, server):
    window = 0.5
    stages = first_window_claimed(redis_client, redis_broker_url, server, window)
    time.sleep(window)
    stages.coalescer.add([item(2, 1)])  # a window after the claim: a first window, while the batch is in flight
    assert deadline_in(stages) <= 0.05
    assert stages.flush(now=time.time() + 0.05).claimed == []  # put off until the release
    assert deadline_in(stages) > 1
    stages.push_all()
    assert deadline_in(stages) <= 0.05


@pytest.mark.parametrize("max_items", [1, 100], ids=["full", "quiet"])
def test_a_claim_between_the_coalescing_round_trips_leaves_no_deadline_behind(redis_client, redis_broker_url, server,
                                                                               max_items):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=5, first_window_seconds=0.05,
                    window_max_items=max_items)
    event = item(1, 1)
    # The first round trip writes the window and its deadline; the second (full or quiet) brings it forward.
    _, second = stages.coalescer._write({SOURCE: [(event.coalescing_key, rank(event.kind, event.version),
                                                   event.encoded)]}, time.time())
    assert len(second) == 1
    stages.flush()  # a sweep claims the window in between, and its deadline goes with it
    second.execute()
    assert stages.redis.zscore(SOURCE.deadlines, SOURCE.ref) is None


class KilledHere(BaseException):
    """The claiming process dies at this instant."""


class StoreBlip(redis_errors.ConnectionError):
    """The store fails the claimer's next call (the sweep takes it as an outage: due again at the next one)."""


def an_event_arrives_right_after_the_claim(stages: Stages, monkeypatch, outcome: int) -> None:
    """The sweep's claim ends with `outcome`, and an event arrives right after it while the target's old deadline is
    still there (so its window gets none of its own)."""
    claim_scripts = flush_module.run_many

    def arrives(*args, **kwargs):
        outcomes = claim_scripts(*args, **kwargs)
        assert [found[0] for found in outcomes] == [outcome]
        stages.coalescer.add([item(2, 1)])
        return outcomes

    monkeypatch.setattr(flush_module, "run_many", arrives)


def claimer_fails_after_an_event_arrives(stages: Stages, monkeypatch, failure: type[BaseException], outcome: int) -> None:
    """`an_event_arrives_right_after_the_claim`, and the claimer failing with `failure` before it reschedules."""
    an_event_arrives_right_after_the_claim(stages, monkeypatch, outcome)

    def fails(self, targets, now, settled=()):
        raise failure()

    monkeypatch.setattr(Flusher, "_reschedule", fails)
    with pytest.raises(failure):
        stages.flush(now=time.time() + 1)
    monkeypatch.undo()


OUT_OF_MEMORY = "return redis.error_reply(\"OOM command not allowed when used memory > 'maxmemory'.\")"
"""What a store at maxmemory (noeviction) answers a write it refuses."""


@contextmanager
def deadlines_refused() -> Iterator[None]:
    """The store refuses every write to the deadlines, as one at maxmemory refuses a ZADD (and, on a Cluster, as their
    node alone may fail: the registrations are on others); the other commands of a pipeline still run."""
    zadd = redis.Redis.zadd

    def refused(self, name, mapping, *args, **kwargs):
        if name in keys.DEADLINES:
            return self.execute_command("EVAL", OUT_OF_MEMORY, 0)
        return zadd(self, name, mapping, *args, **kwargs)

    redis.Redis.zadd = refused
    try:
        yield
    finally:
        redis.Redis.zadd = zadd


def pushed_in_the_end(stages: Stages, later: float, *expected: list[str]) -> None:
    """After a reaper pass and a sweep at `later`, the batches pushed so far carry `expected`."""
    stages.flusher.reap(later)
    stages.flush(now=later + 1)
    stages.push_all()
    assert [[d["documentId"] for d in batch["addOrUpdate"]] for batch in stages.batch_items()] == list(expected), (
        f"deadline: {stages.redis.zscore(SOURCE.deadlines, SOURCE.ref)}, window: {stages.redis.hkeys(SOURCE.window)}")


@pytest.mark.parametrize("failure", [KilledHere, StoreBlip], ids=["killed", "store error"])
def test_a_window_that_filled_during_a_claim_the_claimer_did_not_finish_is_pushed(
        redis_client, redis_broker_url, server, monkeypatch, failure):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    claimer_fails_after_an_event_arrives(stages, monkeypatch, failure, outcome=1)
    for batch in stages.flusher.reap(time.time() + stages.settings.reap_after_seconds + 1):
        stages.push.run(batch)
    (second,) = stages.flush(now=time.time() + 1).claimed
    stages.push_all()
    assert [[d["documentId"] for d in batch["addOrUpdate"]] for batch in stages.batch_items()] == [
        ["https://example.com/1"], ["https://example.com/2"]]


@pytest.mark.parametrize("failure", [KilledHere, StoreBlip], ids=["killed", "store error"])
def test_a_window_that_filled_while_a_claimer_found_it_empty_is_pushed_though_the_claimer_did_not_finish(
        redis_client, redis_broker_url, server, monkeypatch, failure):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    # A deadline without a window: a coalescing whose window a sweep claimed between its script and its deadline.
    redis_client.zadd(SOURCE.deadlines, {SOURCE.ref: time.time()})
    claimer_fails_after_an_event_arrives(stages, monkeypatch, failure, outcome=-1)
    later = time.time() + stages.settings.reap_after_seconds + 1
    assert stages.flusher.reap(later) == []  # nothing to push again: it reschedules the window
    (batch,) = stages.flush(now=later + 1).claimed
    stages.push_all()
    assert [[d["documentId"] for d in batch["addOrUpdate"]] for batch in stages.batch_items()] == [
        ["https://example.com/2"]]
    assert indexes.count(redis_client, keys.CLAIMED) == 0  # the reaper dropped the empty claim's registration


def test_a_window_that_filled_while_a_claimer_found_it_empty_is_pushed_though_its_deadline_was_refused(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    redis_client.zadd(SOURCE.deadlines, {SOURCE.ref: time.time()})  # a deadline without a window
    an_event_arrives_right_after_the_claim(stages, monkeypatch, outcome=-1)
    reschedule = Flusher._reschedule

    def refused(self, *args, **kwargs):
        with deadlines_refused():
            return reschedule(self, *args, **kwargs)

    monkeypatch.setattr(Flusher, "_reschedule", refused)
    with pytest.raises(redis_errors.ResponseError):
        stages.flush(now=time.time() + 1)
    monkeypatch.undo()
    pushed_in_the_end(stages, time.time() + stages.settings.reap_after_seconds + 1, ["https://example.com/2"])


def test_a_reaper_whose_deadline_was_refused_keeps_the_registration_that_leads_it_to_the_window(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    redis_client.zadd(SOURCE.deadlines, {SOURCE.ref: time.time()})
    claimer_fails_after_an_event_arrives(stages, monkeypatch, KilledHere, outcome=-1)
    later = time.time() + stages.settings.reap_after_seconds + 1
    with deadlines_refused(), pytest.raises(redis_errors.ResponseError):
        stages.flusher.reap(later)
    pushed_in_the_end(stages, later + stages.settings.reap_after_seconds + 1, ["https://example.com/2"])


def test_a_release_keeps_its_registration_until_the_deadline_it_owes_a_refilled_window_is_back(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    # The claimer dies before rescheduling the window that filled meanwhile: B's release owes it a deadline.
    claimer_fails_after_an_event_arrives(stages, monkeypatch, KilledHere, outcome=1)
    later = time.time() + stages.settings.reap_after_seconds + 1
    (batch,) = stages.flusher.reap(later)
    with deadlines_refused(), pytest.raises(redis_errors.ResponseError):
        stages.push.run(batch)
    pushed_in_the_end(stages, later + stages.settings.reap_after_seconds + 1,
                      ["https://example.com/1"], ["https://example.com/2"])


def test_a_claimer_that_stalled_past_the_reaper_and_then_died_leaves_its_batch_to_the_reaper(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=0.3, first_window_seconds=0.05)
    stages.coalescer.add([item(1, 1)])
    claim_scripts = flush_module.run_many
    stalled_until = time.time() + stages.settings.reap_after_seconds + 5

    def a_reaper_runs_before_the_claim(*args, **kwargs):
        monkeypatch.setattr(flush_module, "run_many", claim_scripts)  # the reaper's own calls, then the claim's
        assert stages.flusher.reap(stalled_until) == []  # the registration looks like a finished batch's
        return claim_scripts(*args, **kwargs)

    def killed(batches):
        raise KilledHere()

    monkeypatch.setattr(flush_module, "run_many", a_reaper_runs_before_the_claim)
    monkeypatch.setattr(stages.flusher, "enqueue", killed)
    with pytest.raises(KilledHere):
        stages.flush(now=time.time() + 1)
    monkeypatch.undo()
    (batch,) = stages.flusher.reap(stalled_until + stages.settings.reap_after_seconds + 1)
    stages.push.run(batch)
    assert [[d["documentId"] for d in batch["addOrUpdate"]] for batch in stages.batch_items()] == [
        ["https://example.com/1"]]


def test_a_window_written_before_first_windows_is_whole_once_the_batch_before_it_is_released(
        redis_client, redis_broker_url, server):
    window = 2
    stages = first_window_claimed(redis_client, redis_broker_url, server, window)
    stages.coalescer.add([item(2, 1)])
    redis_client.hdel(SOURCE.window_meta, "since_claim")  # as an earlier version's coalescing wrote it
    stages.push_all()
    assert deadline_in(stages) > window - 0.5


@pytest.mark.parametrize("recorded", ["", "garbage", "1.7e9x"])
def test_a_claim_time_that_is_no_number_is_taken_as_none(redis_client, redis_broker_url, server, recorded):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=5, first_window_seconds=0.05)
    redis_client.hset(SOURCE.stats, "claimed_at", recorded)
    stages.coalescer.add([item(1, 1)])
    assert deadline_in(stages) <= 0.05


def test_first_windows_as_long_as_the_window_keep_every_window_whole(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=5, first_window_seconds=5)
    stages.coalescer.add([item(1, 1)])
    assert deadline_in(stages) > 4.5
    # A first window is never longer than the target's own window (here a provider's).
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=5, source_windows={"prov": 0.02})
    stages.coalescer.add([identity("group", 1, ["a@example.com"])])
    assert deadline_in(stages, keys.Target(keys.PROVIDER, "prov")) <= 0.02


def test_idle_after_quiet_and_never_while_in_flight(stages):
    stages.coalescer.add([item(1, 1)])
    stages.flush()
    closing = []
    assert stages.brackets.close_quiet(lambda t, e: closing.append((t, e))) == 0
    stages.push_all()
    assert stages.brackets.close_quiet(lambda t, e: closing.append((t, e))) == 1
    ((target, epoch),) = closing
    assert stages.brackets.close(target, epoch)
    assert stages.statuses() == ["REFRESH", "IDLE"]
    stages.coalescer.add([item(2, 1)])
    stages.flush()
    stages.push_all()
    assert stages.statuses() == ["REFRESH", "IDLE", "REFRESH"]


def test_a_claim_after_the_idle_check_fences_the_stale_idle(stages):
    stages.coalescer.add([item(1, 1)])
    stages.flush()
    stages.push_all()
    closing = []
    stages.brackets.close_quiet(lambda t, e: closing.append((t, e)))
    stages.coalescer.add([item(2, 1)])
    stages.flush()
    ((target, epoch),) = closing
    assert not stages.brackets.close(target, epoch)
    stages.push_all()
    assert stages.statuses() == ["REFRESH"]


def test_permanent_400_dead_letters_then_replay_restores(stages, redis_broker_url):
    stages.server.script("PUT", r"/documents/batch$", 400, error_code="INVALID_JSON", message="bad batch")
    stages.coalescer.add([item(1, 7), item(2, 8)])
    stages.flush()
    (outcome,) = stages.push_all()
    assert outcome.state == "dead_lettered" and outcome.dead_lettered == 2
    (entry,) = stages.dead_letters.list()
    assert entry.target == "source:src" and entry.error.status == 400 and entry.error.error_code == "INVALID_JSON"
    (batch_call,) = stages.server.matching("PUT", r"/documents/batch$")
    assert entry.file_ids == batch_call.query["fileId"] and entry.attempts == 1 and entry.host
    assert sorted(e["version"] for e in entry.events) == [7, 8]
    assert "key" not in entry.to_json().decode().replace("documentId", "")
    assert stages.redis.get(SOURCE.high_water("https://example.com/1")) is None
    assert [e.id for e in stages.dead_letters.replay(target="src")] == [entry.id]
    assert stages.dead_letters.list() == []
    from producers.events import decode_message
    from tests.support.raw import drain
    (body,) = drain(redis_broker_url)
    assert sorted(e.version for e in decode_message(body)) == [7, 8]


def test_replay_and_purge_pick_dead_letters_by_error(stages, redis_broker_url):
    from tests.support.raw import drain
    from worker.pushapi.errors import InvalidInputError, NotFoundError

    letters = stages.dead_letters
    gone = NotFoundError("gone", status=404, error_code="SOURCE_NOT_FOUND")
    letters.send("source:src", "b1", [item(1, 1).encoded], gone, attempts=1)
    letters.send("source:src", "b2", [item(2, 2).encoded], InvalidInputError("too large"), attempts=1)
    letters.send("source:other", "b3", [item(3, 3, "other").encoded], InvalidInputError("too large"), attempts=1)
    assert [e.batch_id for e in letters.replay(error="SOURCE_NOT_FOUND")] == ["b1"]
    (body,) = drain(redis_broker_url)
    assert b'"version":1' in body.replace(b" ", b"")
    assert letters.purge(target="src", error="NotFoundError") == 0, "b1 was replayed away already"
    assert letters.purge(target="src", error="InvalidInputError") == 1
    assert [e.batch_id for e in letters.list()] == ["b3"]


def test_oversized_item_is_dead_lettered_alone(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, container_max_bytes=1024 * 1024)
    import base64
    import os
    big = base64.b64encode(os.urandom(1536 * 1024)).decode()
    stages.coalescer.add([item(1, 1), item(2, 1, binaryData=big, compressionType="GZIP")])
    stages.flush()
    (outcome,) = stages.push_all()
    assert outcome.state == "pushed" and outcome.pushed == 1 and outcome.dead_lettered == 1
    (entry,) = stages.dead_letters.list()
    assert entry.error.error_class == "ItemTooLargeError" and entry.events[0]["documentId"] == "https://example.com/2"
    assert redis_client.get(SOURCE.high_water("https://example.com/2")) is None
    assert redis_client.get(SOURCE.high_water("https://example.com/1")).startswith(b"1.0@")


@pytest.mark.parametrize(("status", "code", "cause"), [
    (412, "DOCUMENT_LIMIT_EXCEEDED", pause.QUOTA), (429, "TOO_MANY_DOCUMENTS_DAILY", pause.QUOTA),
    (401, "UNAUTHORIZED", pause.KEY_REFUSED), (400, "ORGANIZATION_IS_PAUSED", pause.ORGANIZATION_PAUSED)])
def test_quota_auth_and_paused_organization_pause_the_source_and_keep_the_batch(stages, status, code, cause):
    stages.server.script("PUT", r"/documents/batch$", status, error_code=code)
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush().claimed
    (outcome,) = stages.push_all()
    assert outcome.state == "paused"
    assert pause.active(stages.redis, SOURCE) and code in pause.describe(stages.redis, SOURCE)["reason"]
    assert pause.paused(stages.redis, [SOURCE]) == {SOURCE: cause}
    assert stages.redis.exists(batch.events) and stages.dead_letters.list() == []
    assert stages.redis.hget(batch.meta, "attempts") == b"0", "a pause gives its attempt back"
    stages.coalescer.add([item(2, 1)])
    assert stages.flush().claimed == []
    # Once the pause is over (its end, here brought forward for the push), the reaper hands the batch out again.
    until = float(stages.redis.hget(SOURCE.pause, "until"))
    stages.redis.delete(SOURCE.pause)
    assert [b.id for b in stages.flusher.reap(until + 1)] == [batch.id]
    (outcome,) = stages.push_all()
    assert outcome.state == "pushed"


def test_a_pause_found_over_is_not_cleared_once_another_push_paused_the_target_again(stages):
    redis = stages.redis
    redis.hset(SOURCE.pause, mapping={"cause": pause.QUOTA, "reason": "spent", "until": repr(time.time() - 1)})
    until = redis.hget(SOURCE.pause, "until")
    # Between this push's read and its clearing of the pause, another push met the quota again.
    pause.pause(redis, SOURCE, cause=pause.QUOTA, reason="spent again", seconds=RETRY_AFTER_SECONDS)
    assert not pause.still_paused(redis, SOURCE, until)
    assert pause.active(redis, SOURCE) and pause.describe(redis, SOURCE)["reason"] == "spent again"
    assert not pause.still_paused(redis, SOURCE, redis.hget(SOURCE.pause, "until"), now=time.time() + 2 * RETRY_AFTER_SECONDS)
    assert not pause.active(redis, SOURCE) and redis.exists(SOURCE.pause) == 0


def test_a_pause_lasts_its_retry_after_and_the_sweep_resumes_the_batch_the_moment_it_ends(stages):
    stages.server.script("PUT", r"/documents/batch$", 429, error_code="TOO_MANY_DOCUMENTS_DAILY",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    stages.coalescer.add([item(n, 1) for n in range(5)])
    (batch,) = stages.flush().claimed
    (outcome,) = stages.push_all()
    assert outcome.state == "paused"
    until = float(stages.redis.hget(SOURCE.pause, "until"))
    # What the service said, not PUSHSYNC_PAUSE_SECONDS (an hour).
    assert abs(until - time.time() - RETRY_AFTER_SECONDS) < 5
    stages.flush(now=until - 1)
    assert stages.enqueued == []
    stages.flush(now=until + 0.01)
    assert [b.id for b in stages.enqueued] == [batch.id]


def test_a_parked_batch_costs_the_reaper_nothing_more_until_its_pause_ends(stages):
    stages.server.script("PUT", r"/documents/batch$", 429, error_code="TOO_MANY_DOCUMENTS_DAILY",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    stages.coalescer.add([item(n, 1) for n in range(3)])
    (batch,) = stages.flush().claimed
    assert [outcome.state for outcome in stages.push_all()] == ["paused"]
    until = float(stages.redis.hget(SOURCE.pause, "until"))
    # Its record taken by a sweep while the parking task still held the lease: the reaper's rule is left.
    stages.redis.zrem(keys.PARKED, batch.claim_ref)
    assert stages.flusher.reap(time.time()) == []
    # A quota parks every source's batch at once: each pass must not read them all again.
    seen = commands_of(stages.redis, lambda: stages.flusher.reap(time.time() + 1))
    assert seen["HMGET"] == 0 and seen["HGET"] == 0, seen
    assert stages.flusher.reap(until - 1) == []
    assert stages.flusher.reap(until + 0.01) == [batch]


def test_a_429_that_asks_for_longer_than_the_retry_budget_pauses_the_source_instead_of_failing_it(stages):
    stages.server.script("PUT", r"/documents/batch$", 429, error_code="TOO_MANY_REQUESTS",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush().claimed
    (outcome,) = stages.push_all()
    assert outcome.state == "paused" and stages.dead_letters.list() == []
    assert pause.paused(stages.redis, [SOURCE]) == {SOURCE: pause.QUOTA}
    assert float(stages.redis.hget(SOURCE.pause, "until")) > time.time() + RETRY_AFTER_SECONDS - 5


def test_a_batch_that_met_a_pause_probes_with_one_item_and_uploads_nothing_while_it_is_refused(
        redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, pause_seconds=SHORT_PAUSE_SECONDS)
    stages.server.script("PUT", r"/documents/batch$", 412, error_code="DOCUMENT_LIMIT_EXCEEDED")
    stages.server.script("PUT", r"/sources/src/documents$", 412, error_code="DOCUMENT_LIMIT_EXCEEDED")
    stages.coalescer.add([item(n, 1) for n in range(5)])
    (batch,) = stages.flush().claimed
    assert [outcome.state for outcome in stages.push_all()] == ["paused"]
    for _ in range(2):  # the pause ends; the first probe is refused, the second taken
        wait_until(lambda: not pause.active(redis_client, SOURCE), what="the pause's end")
        assert stages.flusher.resume(time.time()) == [batch]
        (outcome,) = stages.push_all()
    assert outcome.state == "pushed" and outcome.pushed == 5
    probes = stages.server.matching("PUT", r"/sources/src/documents$")
    assert len(probes) == 2
    (refused, taken) = stages.batch_items()
    # The refused attempt uploaded the whole batch; the push after the taken probe, the four others only.
    assert len(refused["addOrUpdate"]) == 5 and len(taken["addOrUpdate"]) == 4
    assert probes[1].query["documentId"][0] not in {entry["documentId"] for entry in taken["addOrUpdate"]}
    assert len(stages.server.matching("POST", r"/files$")) == 2


def test_413_splits_the_batch(stages):
    stages.server.script("PUT", "^" + UPLOAD_PREFIX, 413)
    stages.coalescer.add([item(n, 1) for n in range(5)])
    stages.flush()
    (outcome,) = stages.push_all()
    assert outcome.state == "pushed" and outcome.pushed == 5


def test_lost_task_is_reaped_and_redelivery_is_idempotent(stages):
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush().claimed
    stages.enqueued.clear()
    assert stages.flusher.reap(time.time() + 10) == []
    (reaped,) = stages.flusher.reap(time.time() + 10 + stages.settings.reap_after_seconds + 1)
    assert reaped == batch
    first, second = stages.push.run(batch), stages.push.run(batch)
    assert (first.state, second.state) == ("pushed", "done")
    assert len(stages.batch_items()) == 1


def test_poison_batch_is_dead_lettered_after_max_attempts(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, max_push_attempts=2)
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush().claimed
    redis_client.hset(batch.meta, "attempts", 2)
    assert stages.push.run(batch).state == "dead_lettered"
    (entry,) = stages.dead_letters.list()
    assert "delivered 3 times" in entry.error.message


def reaped_periods(stages, batch, claimed_at: float, periods: int) -> list[int]:
    """The reap periods after `claimed_at` (1, 2, ...) at whose end the reaper enqueued `batch` again."""
    step = stages.settings.reap_after_seconds
    return [k for k in range(1, periods + 1) if batch in stages.flusher.reap(claimed_at + k * step + 0.001)]


def test_a_batch_whose_task_never_started_is_enqueued_again_less_and_less_often(stages):
    # Its task may just be waiting behind others in a busy queue: enqueuing it every period grows that queue.
    claimed_at = time.time() + 10
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush(now=claimed_at).claimed
    assert reaped_periods(stages, batch, claimed_at, 12) == [1, 3, 7]


def test_the_waits_between_enqueues_of_a_batch_that_never_started_are_capped(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, reap_after_seconds=30, reap_max_seconds=60)
    claimed_at = time.time() + 10
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush(now=claimed_at).claimed
    assert reaped_periods(stages, batch, claimed_at, 12) == [1, 3, 5, 7, 9, 11]


def test_a_batch_whose_task_died_mid_push_is_enqueued_again_after_one_period_each_time(redis_client,
                                                                                       redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, lease_seconds=1, reap_after_seconds=2)
    server.script("PUT", "^" + UPLOAD_PREFIX, delay=60, times=2)
    stages.coalescer.add([item(1, 1)])
    (batch,) = stages.flush().claimed
    for death in (1, 2):
        # A real push task in a process of its own, killed while the server holds its upload.
        task = multiprocessing.get_context("fork").Process(target=stages.push.run, args=(batch,))
        task.start()
        wait_until(lambda: len(server.matching("PUT", "^" + UPLOAD_PREFIX)) == death, what="the task uploading")
        os.kill(task.pid, signal.SIGKILL)
        task.join()
        wait_until(lambda: not redis_client.exists(batch.lease), what="the dead task's lease expired")
        enqueued_at = redis_client.zscore(batch.target.claimed, batch.claim_ref)
        assert reaped_periods(stages, batch, enqueued_at, 1) == [1]
    assert int(redis_client.hget(batch.meta, "attempts")) == 2


def identity(name: str, version: int, members: list[str]) -> object:
    return parse_event(complete_event({"kind": "identity.upsert", "provider": "prov", "version": version,
                                       "identity": {"name": name, "type": "GROUP"},
                                       "members": [{"name": m, "type": "USER"} for m in members]}))


def test_items_wait_for_the_identities_of_their_providers(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, source_providers={"src": ["prov"]})
    stages.coalescer.add([identity("editors", 1, ["ann"]), item(1, 1)])
    claimed = stages.flush().claimed
    source_batch = next(b for b in claimed if b.target == SOURCE)
    provider_batch = next(b for b in claimed if b.target.kind == keys.PROVIDER)
    assert stages.push.run(source_batch).state == "waiting"
    assert stages.flusher.reap(time.time()) == []
    assert stages.push.run(provider_batch).state == "pushed"
    assert stages.flusher.reap(time.time()) == [source_batch]
    assert stages.push.run(source_batch).state == "pushed"
    order = [r.path for r in server.requests if r.path.endswith("/batch")]
    assert order == ["/push/v1/organizations/org/providers/prov/permissions/batch",
                     "/push/v1/organizations/org/sources/src/documents/batch"]


def round_trips_of(client, action) -> int:
    """Requests (a command, or a whole pipeline) that `action(counted)` sent, given a client like `client` that counts
    them (its `sent`, read at any moment, says how many so far)."""
    pool = client.connection_pool

    class CountingClient(type(client)):
        sent = 0
        """Requests sent so far."""

    class Counted(pool.connection_class):
        def send_packed_command(self, command, check_health=True):
            CountingClient.sent += 1
            return super().send_packed_command(command, check_health)

    counted = CountingClient(connection_pool=type(pool)(connection_class=Counted, **pool.connection_kwargs))
    action(counted)
    counted.close()
    return CountingClient.sent


def test_the_reaper_reads_every_batch_waiting_for_identities_in_a_few_round_trips(
        redis_client, redis_broker_url, server):
    sources = [f"src{n}" for n in range(50)]
    stages = Stages(redis_client, redis_broker_url, server, source_providers={source: ["prov"] for source in sources})
    stages.coalescer.add([identity("editors", 1, ["ann"])] + [item(1, 1, source=source) for source in sources])
    claimed = stages.flush().claimed
    provider_batch = next(b for b in claimed if b.target.kind == keys.PROVIDER)
    source_batches = [b for b in claimed if b.target.kind == keys.SOURCE]
    assert {stages.push.run(batch).state for batch in source_batches} == {"waiting"}
    # Thousands of sources may wait for one provider: a pass must not cost a round trip or two per source.
    trips = round_trips_of(redis_client, lambda counted: Flusher(counted, stages.settings, stages.enqueued.extend)
                           .reap(time.time()))
    assert trips < 2 * keys.INDEX_SHARDS, trips
    assert stages.push.run(provider_batch).state == "pushed"
    assert sorted(b.id for b in stages.flusher.reap(time.time())) == sorted(b.id for b in source_batches)


PUSH_ROUND_TRIPS = 13
"""Round trips to the store of a push of a small batch through a container once its source's burst is
open: the lease, two steps, the pause and the meta together, the burst, the events and their marks,
the versions and the new marks, the release, then the claim's index with the last push."""


def test_a_small_batch_is_pushed_in_a_few_round_trips(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server)
    trips = []

    def pushes(counted) -> None:
        push = BatchPush(counted, stages.api, StatusBrackets(counted, stages.api, stages.settings), stages.dead_letters,
                         stages.settings)
        for version in (1, 2):
            stages.coalescer.add([item(n, version) for n in range(5)])
            (batch,) = stages.flush().claimed
            push.run(batch)
            trips.append(counted.sent)

    # The first push opens the burst and the client's connection; the second is counted alone.
    round_trips_of(redis_client, pushes)
    # Each round trip costs the pool more than what it carries (a loopback send runs the receiver's side too).
    assert trips[1] - trips[0] <= PUSH_ROUND_TRIPS, trips[1] - trips[0]
    assert len(server.matching("PUT", r"/documents/batch$")) == 2


def test_a_claimer_killed_before_it_recorded_what_a_batch_waits_for_still_leaves_the_items_after_the_identities(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, source_providers={"src": ["prov"]})
    stages.coalescer.add([identity("editors", 1, ["ann"]), item(1, 1)])

    def killed(client, batch, providers):
        if providers:
            raise KilledHere

    due = time.time() + stages.settings.window_seconds
    with monkeypatch.context() as patched:
        patched.setattr(prerequisites, "record", killed)
        with pytest.raises(KilledHere):
            stages.flush(due)
    assert stages.enqueued == []  # killed before any task was sent
    lost = stages.flusher.reap(due + stages.settings.reap_after_seconds + 1)
    source_batch = next(b for b in lost if b.target == SOURCE)
    provider_batch = next(b for b in lost if b.target.kind == keys.PROVIDER)
    assert stages.push.run(source_batch).state == "waiting"
    assert stages.push.run(provider_batch).state == "pushed"
    assert stages.flusher.reap(time.time()) == [source_batch]
    assert stages.push.run(source_batch).state == "pushed"
    order = [r.path.rsplit("/", 3)[-3] for r in server.requests if r.path.endswith("/batch")]
    assert order == ["prov", "src"]


def test_a_claimer_slower_than_the_pushes_writes_back_no_meta_of_a_finished_batch(
        redis_client, redis_broker_url, server, monkeypatch):
    stages = Stages(redis_client, redis_broker_url, server, source_providers={"src": ["prov"]})
    stages.coalescer.add([identity("editors", 1, ["ann"]), item(1, 1)])
    late = []
    with monkeypatch.context() as patched:
        patched.setattr(prerequisites, "record", lambda client, batch, providers: late.append((client, batch, providers)))
        stages.flush()
    provider_batch = next(b for b in stages.enqueued if b.target.kind == keys.PROVIDER)
    source_batch = next(b for b in stages.enqueued if b.target == SOURCE)
    assert stages.push.run(provider_batch).state == "pushed"
    assert stages.push.run(source_batch).state == "pushed"  # it noted its needs itself
    assert not redis_client.exists(source_batch.meta)
    for client, batch, providers in late:  # the claimer goes on only now
        prerequisites.record(client, batch, providers)
    assert not redis_client.exists(source_batch.meta), "a finished batch's meta came back, with no TTL"


def test_identities_ingested_after_the_claim_do_not_hold_items_back(redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, source_providers={"src": ["prov"]})
    stages.coalescer.add([item(1, 1)])
    (source_batch,) = stages.flush().claimed
    stages.coalescer.add([identity("editors", 1, ["ann"])])
    assert stages.push.run(source_batch).state == "pushed"


def test_a_closing_burst_is_handed_out_once_until_its_idle_task_is_presumed_lost(stages):
    stages.coalescer.add([item(1, 1)])
    stages.flush()
    stages.push_all()
    handed = []
    assert stages.brackets.close_quiet(lambda t, e: handed.append(e)) == 1
    assert stages.brackets.close_quiet(lambda t, e: handed.append(e)) == 0
    later = time.time() + stages.brackets._lock_seconds + 1
    assert stages.brackets.close_quiet(lambda t, e: handed.append(e), now=later) == 1
    assert handed == [1, 1]


def tagged(n: int, version: int, seq: int, run: str = "r1") -> object:
    return parse_event(complete_event({"kind": "item.upsert", "source": "src", "version": version,
                                       "documentId": f"https://example.com/{n}", "item": {"data": f"v{version}"},
                                       "rebuild": {"run": run, "seq": seq}}))


def test_run_events_count_once_each_however_often_they_arrive(stages):
    stages.coalescer.add([tagged(n, 1, n) for n in range(5)])
    stages.coalescer.add([tagged(n, 1, n) for n in (0, 1, 4)])  # redelivered
    stages.coalescer.add([tagged(7, 2, 9)])
    seen = stages.redis.get(SOURCE.run_seen("r1"))
    assert stages.redis.bitcount(SOURCE.run_seen("r1")) == 6
    assert [n for n in range(16) if stages.redis.getbit(SOURCE.run_seen("r1"), n)] == [0, 1, 2, 3, 4, 9]
    assert seen is not None and stages.redis.ttl(SOURCE.run_seen("r1")) > 0
    assert int(stages.redis.hget(SOURCE.run_state("r1"), "first_arrival_ms")) <= time.time() * 1000


def test_a_stale_run_event_moves_its_runs_cut_off_before_the_push_that_made_it_stale(stages):
    stages.coalescer.add([item(1, 5)])
    stages.flush()
    stages.push_all()
    before = int(time.time() * 1000)
    stages.coalescer.add([tagged(1, 4, 0), tagged(2, 1, 1)])
    cutoff = stages.redis.zscore(SOURCE.run_cutoffs, "r1")
    assert cutoff is not None and cutoff <= before
    assert stages.redis.bitcount(SOURCE.run_seen("r1")) == 2


def test_while_a_call_is_retried_its_error_is_the_targets_last_error(stages):
    # What `pushsync status` shows as the last error: the 503 being retried now, not an older one.
    recent.failed(stages.redis, SOURCE, "an older error")
    stages.server.script("PUT", r"/documents/batch$", 503, error_code="SERVICE_UNAVAILABLE", times=1)
    stages.coalescer.add([item(1, 1)])
    stages.flush()
    (outcome,) = stages.push_all()
    assert outcome.state == "pushed"
    last = recent.parse({k.decode(): v.decode() for k, v in stages.redis.hgetall(SOURCE.recent).items()})
    assert last.error.startswith("retrying push_documents_batch in ") and "503 SERVICE_UNAVAILABLE" in last.error


def test_a_last_error_never_keeps_a_presigned_upload_url(stages):
    upload = "https://bucket.s3.amazonaws.com/abc?X-Amz-Credential=AKIA123%2F&X-Amz-Signature=deadbeef"
    recent.failed(stages.redis, SOURCE, f"retrying upload in 2s: connection failed: PUT {upload} reset")
    error = stages.redis.hget(SOURCE.recent, "error").decode()
    assert error == "retrying upload in 2s: connection failed: PUT https://bucket.s3.amazonaws.com/abc?… reset"


def test_a_window_due_while_its_batch_is_in_flight_waits_for_the_release_not_for_every_sweep(
        redis_client, redis_broker_url, server):
    stages = Stages(redis_client, redis_broker_url, server, window_seconds=1)
    stages.coalescer.add([item(1, 1)])
    (first,) = stages.flush().claimed
    stages.coalescer.add([item(2, 1)])
    later = time.time() + 10
    assert stages.flusher.sweep(later).busy == [SOURCE]
    assert stages.flusher.sweep(later + 1).busy == [], "put off while its batch is in flight"
    assert stages.push.run(first).state == "pushed"
    (second,) = stages.flusher.sweep(later + 1).claimed
    assert second.target == SOURCE and second != first, "due at its own time again once the batch is released"
