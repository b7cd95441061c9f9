"""Full rebuilds against real workers and the emulator: stale items go, and only when it is safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from producers import Publisher
from tests.support.times import occurred
from tests.worker.e2e import pipeline_env, wait_for
from worker.cli import main
from worker.commands.services import COVEO_MISSING, INVALID_INPUT, RUN_INCOMPLETE
from worker.store import keys

SOURCE = "rebuilt"
TARGET = keys.Target(keys.SOURCE, SOURCE)
QUEUE_DELAY_MINUTES = 15


def item(n: int, version: int, text: str = "") -> dict:
    return {"kind": "item.upsert", "source": SOURCE, "version": version, "documentId": f"https://example.com/{n}",
            "item": {"data": text or f"{n} v{version}"}}


def export(tmp_path, items: list[dict], extra_lines: tuple[str, ...] = ()) -> str:
    path = tmp_path / "export.ndjson"
    path.write_text("\n".join([*(json.dumps(i) for i in items), *extra_lines]) + "\n")
    return str(path)


def contents(emulator) -> dict[str, str]:
    return {i["documentId"].rsplit("/", 1)[1]: i["content"] for i in emulator.items(SOURCE)}


def rebuild(env: dict, path: str, *args: str):
    return CliRunner().invoke(main, ["rebuild", SOURCE, path, "--timeout", "60", *args], env=env)


def seeded(workers, emulator, redis_url, broker_url, count: int = 10, **overrides) -> dict:
    """Workers running and `count` items indexed through change events, version 1."""
    emulator.create_source(SOURCE)
    env = pipeline_env(redis_url, broker_url, emulator, **overrides)
    workers.start("worker", env)
    workers.start("beat", env)
    with Publisher(broker_url) as publisher:
        publisher.publish_many([item(n, 1) for n in range(count)])
    wait_for(lambda: len(emulator.items(SOURCE)) == count, 60, what="the seeded items")
    return env


def test_rebuild_removes_exactly_the_stale_items_after_the_queue_delay(workers, clean_emulator, redis_client,
                                                                       redis_url, redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url)
    result = rebuild(env, export(tmp_path, [item(n, 2) for n in range(7)]))
    assert result.exit_code == 0, result.output
    assert f"deleted after {QUEUE_DELAY_MINUTES} minute(s)" in result.output
    assert sorted(contents(emulator)) == sorted(str(n) for n in range(10))
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    wait_for(lambda: contents(emulator) == {str(n): f"{n} v2" for n in range(7)}, 30, what="the stale items removed")
    statuses = [t["statusType"] for t in emulator.activities(SOURCE)["transitions"]]
    assert "REBUILD" in statuses and statuses.index("REBUILD") < len(statuses)
    wait_for(lambda: emulator.activities(SOURCE)["status"] == "IDLE", 30, what="IDLE after the rebuild")


def test_a_failed_batch_deletes_nothing_and_says_why(workers, clean_emulator, redis_client, redis_url,
                                                     redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url)
    emulator.add_fault(method="PUT", path="*/documents/batch", status=400, errorCode="INVALID_JSON", times=1)
    result = rebuild(env, export(tmp_path, [item(n, 2) for n in range(7)]))
    assert result.exit_code == RUN_INCOMPLETE, result.output
    assert "dead-lettered during the run; nothing deleted" in result.output
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    assert sorted(contents(emulator)) == sorted(str(n) for n in range(10))
    assert not any(r["path"].endswith("/olderthan") for r in emulator.requests())


def test_the_share_guard_refuses_a_run_that_would_delete_too_much(workers, clean_emulator, redis_client, redis_url,
                                                                  redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url)
    assert rebuild(env, export(tmp_path, [item(n, 2) for n in range(10)])).exit_code == 0
    result = rebuild(env, export(tmp_path, [item(n, 3) for n in range(2)]))
    assert result.exit_code == RUN_INCOMPLETE and "more than 50%" in result.output, result.output
    assert sum(r["path"].endswith("/olderthan") for r in emulator.requests()) == 1


def test_a_change_published_during_the_run_survives_it(workers, clean_emulator, redis_client, redis_url,
                                                       redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url, count=3)
    emulator.add_fault(method="PUT", path="*/documents/batch", latency=3, times=1)
    path = export(tmp_path, [item(n, 2) for n in range(3)])
    runner = subprocess.Popen([sys.executable, "-m", "worker", "rebuild", SOURCE, path, "--queue-delay", "0"],
                              env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wait_for(lambda: redis_client.hget(TARGET.rebuild, "state") == b"finishing", 30, 0.05, what="the export fed")
    with Publisher(redis_broker_url) as publisher:
        publisher.publish(item(1, 5, "changed during the rebuild"))
    output = runner.communicate(timeout=90)[0].decode()
    assert runner.returncode == 0, output
    wait_for(lambda: contents(emulator).get("1") == "changed during the rebuild", 30, what="the change kept")


def test_a_run_killed_halfway_resumes_without_pushing_twice(workers, clean_emulator, redis_client, redis_url,
                                                            redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url, count=5, PUSHSYNC_WINDOW_MAX_ITEMS="500")
    count = 6000
    path = export(tmp_path, [item(n, 2) for n in range(count)])
    command = [sys.executable, "-m", "worker", "rebuild", SOURCE, path, "--queue-delay", "0", "--max-delete-share", "1"]
    env = {**os.environ, **env}
    victim = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: int(redis_client.hget(TARGET.rebuild, "lines_done") or 0) >= 1500, 60, 0.01, what="half fed")
    victim.kill()
    victim.wait()
    run_id = redis_client.hget(TARGET.rebuild, "id").decode()
    assert int(redis_client.hget(TARGET.rebuild, "lines_done")) < count
    result = subprocess.run([*command, "--resume", run_id], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    wait_for(lambda: len(emulator.items(SOURCE)) == count, 60, what="the whole export indexed")
    assert int(redis_client.hget(TARGET.stats, "pushed")) == 5 + count


def test_bad_exports_are_refused_before_anything_is_pushed(workers, clean_emulator, redis_client, redis_url,
                                                           redis_broker_url, tmp_path):
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url, count=2)
    before = len(emulator.requests())
    bad = rebuild(env, export(tmp_path, [item(0, 2)], ('{"kind": "item.upsert"}', "not json")))
    assert bad.exit_code == INVALID_INPUT and "line 2:" in bad.output and "line 3:" in bad.output, bad.output
    assert "nothing pushed, nothing deleted" in bad.output
    empty = rebuild(env, export(tmp_path, []))
    assert empty.exit_code == INVALID_INPUT and "the export is empty" in empty.output
    assert len(emulator.requests()) == before
    elsewhere = {**item(0, 2), "source": "nowhere"}
    unknown = CliRunner().invoke(main, ["rebuild", "nowhere", export(tmp_path, [elsewhere])], env=env)
    assert unknown.exit_code == COVEO_MISSING and "does not know source nowhere" in unknown.output, unknown.output


def olderthan_calls(emulator) -> list[dict]:
    return [r for r in emulator.requests() if r["path"].endswith("/olderthan")]


def run_keys(redis_client) -> list[bytes]:
    return [key for key in redis_client.keys(f"pushsync:{{source:{SOURCE}}}:run:*")
            if not key.endswith(b":run:cutoffs") or redis_client.zcard(key)]


def test_a_rebuild_started_through_the_broker_removes_exactly_the_stale_items(workers, clean_emulator, redis_client,
                                                                              redis_url, redis_broker_url):
    emulator = clean_emulator
    seeded(workers, emulator, redis_url, redis_broker_url)
    with Publisher(redis_broker_url) as publisher:
        with publisher.full_run(source=SOURCE, queueDelay=QUEUE_DELAY_MINUTES) as run:
            for n in range(7):
                run.publish(item(n, 2))
    assert run.events == 7
    wait_for(lambda: olderthan_calls(emulator), 60, what="the delete of what the run did not push")
    assert contents(emulator) == {**{str(n): f"{n} v2" for n in range(7)}, **{str(n): f"{n} v1" for n in range(7, 10)}}
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    wait_for(lambda: contents(emulator) == {str(n): f"{n} v2" for n in range(7)}, 30, what="the stale items removed")
    assert "REBUILD" in [t["statusType"] for t in emulator.activities(SOURCE)["transitions"]]
    wait_for(lambda: not redis_client.exists(TARGET.rebuild) and not run_keys(redis_client), 30,
             what="the run's state cleared")
    assert redis_client.hget(TARGET.rebuild_last, "items") == b"7"


def test_a_broker_run_arriving_in_any_order_still_waits_for_all_its_events(workers, clean_emulator, redis_client,
                                                                         redis_url, redis_broker_url):
    """End first, then the items (one held back), then begin: nothing is deleted until the last item is in."""
    emulator = clean_emulator
    seeded(workers, emulator, redis_url, redis_broker_url)
    tagged = [{**item(n, 2), "rebuild": {"run": "late", "seq": n}} for n in range(7)]
    with Publisher(redis_broker_url, events_per_message=1) as publisher:
        publisher.publish_many([{"kind": "rebuild.end", "source": SOURCE, "run": "late", "events": 7}])
        publisher.publish_many(tagged[:6][::-1])
        publisher.publish_many([{"kind": "rebuild.begin", "source": SOURCE, "run": "late"}])
        wait_for(lambda: redis_client.bitcount(TARGET.run_seen("late")) == 6 and redis_client.exists(TARGET.rebuild),
                 30, what="six of the run's items and its start")
        wait_for(lambda: contents(emulator).get("5") == "5 v2", 30, what="the run's items pushed")
        assert not olderthan_calls(emulator), "a run missing an event must not delete"
        publisher.publish_many([tagged[6]])
    wait_for(lambda: olderthan_calls(emulator), 60, what="the delete once the last item arrived")
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    wait_for(lambda: contents(emulator) == {str(n): f"{n} v2" for n in range(7)}, 30, what="the stale items removed")


def test_an_abandoned_or_incomplete_broker_run_deletes_nothing(workers, clean_emulator, redis_client, redis_url,
                                                              redis_broker_url):
    emulator = clean_emulator
    seeded(workers, emulator, redis_url, redis_broker_url, PUSHSYNC_RUN_TIMEOUT_SECONDS="3",
           PUSHSYNC_RUN_POLL_SECONDS="0.5")
    with Publisher(redis_broker_url) as publisher:
        try:
            with publisher.full_run(source=SOURCE) as run:
                run.publish(item(0, 2))
                raise RuntimeError("the export broke off")
        except RuntimeError:
            pass
        wait_for(lambda: not redis_client.exists(TARGET.rebuild) and not run_keys(redis_client), 30,
                 what="the abandoned run ended")
        # An end that promises more events than ever come: after the timeout the run ends, deleting nothing.
        publisher.publish_many([{"kind": "rebuild.begin", "source": SOURCE, "run": "short"},
                                {**item(1, 3), "rebuild": {"run": "short", "seq": 0}},
                                {"kind": "rebuild.end", "source": SOURCE, "run": "short", "events": 2}])
        wait_for(lambda: contents(emulator).get("1") == "1 v3", 30, what="the short run's item pushed")
        wait_for(lambda: not redis_client.exists(TARGET.rebuild) and not run_keys(redis_client), 30,
                 what="the short run ended by its timeout")
    emulator.advance_clock(QUEUE_DELAY_MINUTES * 60 + 1)
    assert not olderthan_calls(emulator)
    assert len(contents(emulator)) == 10
    assert "REBUILD" in [t["statusType"] for t in emulator.activities(SOURCE)["transitions"]]
    wait_for(lambda: emulator.activities(SOURCE)["status"] == "IDLE", 30, what="IDLE once both runs ended")


def test_an_export_dated_long_ago_is_pushed_whole(workers, clean_emulator, redis_client, redis_url,
                                                  redis_broker_url, tmp_path):
    """The ordering horizon judges what goes through ingestion; `pushsync rebuild` feeds its export into
    the window itself, and an export is the source system's state now, whatever its lines' dates."""
    emulator = clean_emulator
    env = seeded(workers, emulator, redis_url, redis_broker_url, count=3)
    a_year_ago = occurred(365 * 24 * 3600)
    result = rebuild(env, export(tmp_path, [{**item(n, 2), "occurredAt": a_year_ago} for n in range(3)]))
    assert result.exit_code == 0, result.output
    assert contents(emulator) == {str(n): f"{n} v2" for n in range(3)}
    assert not redis_client.zcard(keys.QUARANTINE_INDEX)
