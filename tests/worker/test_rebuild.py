"""Full rebuilds against real workers and the emulator: stale items go, and only when it is safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from producers import Publisher
from tests.worker.e2e import pipeline_env, wait_for
from worker import keys
from worker.cli import main

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
    assert result.exit_code == 3, result.output
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
    assert result.exit_code == 3 and "more than 50%" in result.output, result.output
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
    assert bad.exit_code == 1 and "line 2:" in bad.output and "line 3:" in bad.output, bad.output
    assert "nothing pushed, nothing deleted" in bad.output
    empty = rebuild(env, export(tmp_path, []))
    assert empty.exit_code == 1 and "the export is empty" in empty.output
    assert len(emulator.requests()) == before
    elsewhere = {**item(0, 2), "source": "nowhere"}
    unknown = CliRunner().invoke(main, ["rebuild", "nowhere", export(tmp_path, [elsewhere])], env=env)
    assert unknown.exit_code == 1 and "does not know source nowhere" in unknown.output, unknown.output
